#!/usr/bin/env node
// Writes crates/rpm2d/hot.ld: the functions rpm2d runs, in the order it first runs them, for the
// linker to place together at the start of the code (a linker script that INSERTs one output
// section before .text; crates/rpm2d/build.rs passes it on Linux). The daemon's resident memory is
// mostly the code pages it has touched, and the kernel maps code 64 kB around each page it faults
// in: spread over the whole executable, the few hundred kB of code a daemon runs touch most of it.
//
//   node scripts/hot-order.js        (needs valgrind; cargo-zigbuild for the packaged build's names)
//
// The daemon's functions come first, then the CLI's. Names are exact (the build's symbol names do not
// change with the source, only with Cargo.lock, the features, the profile or the compiler), taken
// from both builds users get: the checkout's `cargo build` and the packaged `cargo zigbuild`, whose
// names differ. A name that no longer exists matches nothing and costs nothing; run this again after
// a dependency or compiler update, or when `bench/daemon-rss.sh` shows the RSS creeping up.
'use strict';
const { spawnSync, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const target = 'x86_64-unknown-linux-gnu';
const app = path.join(root, 'bench', 'apps', 'idle.js');

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 120000, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return r;
}

/** Builds rpm2d as `npm run build` (zig: `npm run package`) does, with its symbols kept (a link
 * argument: the names stay those of the real build), and returns its path. */
function build(zig) {
  const dir = path.join(root, 'target', zig ? 'order-zig' : 'order-native');
  const env = { ...process.env, CARGO_TARGET_DIR: dir, RPM2_KEEP_SYMBOLS: '1' };
  const t = zig ? `${target}.2.17` : target;
  execFileSync('cargo', [zig ? 'zigbuild' : 'build', '--release', '--target', t, '-p', 'rpm2d'], { env, stdio: 'inherit', cwd: root });
  return path.join(dir, target, 'release', 'rpm2d');
}

/** Function names in a callgrind output file, in the order they appear. */
function callgrindNames(file) {
  const names = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^c?fn=\(\d+\) (.+)$/.exec(line);
    if (m) names.push(m[1]);
  }
  return names;
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs a day of rpm2 under callgrind; returns [daemon names, CLI names] defined in `bin`. */
function trace(bin) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-order-'));
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-order-home-'));
  const env = { ...process.env, RPM2_HOME: home };
  // valgrind's messages go to a file: it keeps its own copy of stderr, which would hold the pipe
  // of the command that started the daemon open for the daemon's whole life.
  const vg = (file, children) => ['valgrind', ['--tool=callgrind', '--demangle=no', '-q', `--callgrind-out-file=${path.join(out, file)}`, `--log-file=${path.join(out, 'valgrind.%p.log')}`,
    ...(children ? ['--trace-children=yes', '--trace-children-skip=*node*,*/sh,*/bash'] : [])]];
  const cli = (args, traced) => {
    const [cmd, pre] = vg('cli.%p', false);
    const r = traced ? sh(cmd, [...pre, bin, ...args], { env }) : sh(bin, args, { env });
    if (r.status !== 0) console.error(`rpm2 ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  try {
    // The daemon starts under callgrind (its children do not).
    const [cmd, pre] = vg('daemon.%p', true);
    sh(cmd, [...pre, bin, 'ping'], { env });
    cli(['start', app, '--name', 'a0'], true);
    for (let i = 1; i < 10; i++) cli(['start', app, '--name', `a${i}`]);
    cli(['start', app, '--name', 'c', '-i', '2'], true);
    sleep(6000);
    for (const args of [['list'], ['jlist'], ['describe', 'a1'], ['restart', 'a2'], ['reload', 'c'], ['stop', 'a3'],
      ['delete', 'a3'], ['logs', '--nostream', '--lines', '5'], ['save'], ['ls']]) cli(args, true);
    // A crash and its restart.
    const list = JSON.parse(sh(bin, ['jlist'], { env }).stdout);
    const a4 = list.find((p) => p.name === 'a4');
    if (a4 && a4.pid) process.kill(a4.pid, 'SIGKILL');
    sleep(8000);
    cli(['list'], true);
    const pidFile = path.join(home, 'rpm2d.pid');
    if (!fs.existsSync(pidFile)) {
      const logs = fs.readdirSync(out).filter((f) => f.startsWith('valgrind.')).map((f) => fs.readFileSync(path.join(out, f), 'utf8')).join('');
      throw new Error(`rpm2d's daemon did not start under callgrind (no rpm2d.pid in its home); valgrind said: ${logs.trim() || 'nothing'}`);
    }
    const daemonPid = fs.readFileSync(pidFile, 'utf8').trim();
    cli(['kill'], true);
    sleep(2000);
    const defined = new Set(execFileSync('nm', ['--defined-only', bin], { encoding: 'utf8', maxBuffer: 1 << 28 })
      .split('\n').map((l) => l.split(' ')).filter((p) => /^[tTwW]$/.test(p[1] || '')).map((p) => p[2]));
    const keep = (names) => [...new Set(names)].filter((n) => defined.has(n));
    const daemon = keep(callgrindNames(path.join(out, `daemon.${daemonPid}`)));
    const clis = keep(fs.readdirSync(out).filter((f) => f.startsWith('cli.')).flatMap((f) => callgrindNames(path.join(out, f))));
    return [daemon, clis];
  } finally {
    sh(bin, ['kill'], { env });
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(home, { recursive: true, force: true });
  }
}

/** Stops with one line saying what to install when a tool the script needs is missing. */
function need(cmd, args, install) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    console.error(`hot-order: \`${[cmd, ...args].join(' ')}\` failed (${r.error ? r.error.code : `exit ${r.status}`}): ${install}`);
    process.exit(1);
  }
}

function main() {
  need('valgrind', ['--version'], 'install valgrind (Debian: apt-get install valgrind)');
  need('cargo', ['zigbuild', '--help'], 'pip install ziglang cargo-zigbuild');
  const sets = [false, true].map((zig) => trace(build(zig)));
  const daemon = new Set(sets.flatMap(([d]) => d));
  const names = [...new Set([...daemon, ...sets.flatMap(([, c]) => c)])]
    .filter((n) => /^[A-Za-z0-9_.$]+$/.test(n));
  const lines = names.map((n) => `    *(.text.${n} .text.unlikely.${n})`);
  const text = `/* Written by scripts/hot-order.js: the functions rpm2d runs (${daemon.size} of the daemon's first,
   then the CLI's), placed together before the rest of the code. See that script. */
SECTIONS {
  .text.rpm2 : {
${lines.join('\n')}
  }
}
INSERT BEFORE .text;
`;
  fs.writeFileSync(path.join(root, 'crates', 'rpm2d', 'hot.ld'), text);
  console.log(`crates/rpm2d/hot.ld: ${names.length} functions (${daemon.size} of them the daemon's)`);
}

main();
