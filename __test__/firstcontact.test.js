'use strict';
// Issue 20, what a PM2 user meets first: the foreground mode (--no-daemon, RPM2_NO_DAEMON) and
// --attach, PM2's flags rpm2 ignores, log lines for people (no Rust Debug text, no null/undefined),
// PM2's jlist fields (compared with pm2 itself when node_modules/.bin/pm2 is there), and progress
// lines of slow commands. Run:
//   node --test --test-concurrency=2 __test__/firstcontact.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./helpers');
const { ok } = h;

const IDLE = h.fixture('cli-idle.js');
const EXIT = h.fixture('cli-exit.js');
const HTTP = h.fixture('cluster-http.js');
const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');

/** Rust Debug text or JavaScript's null/undefined in a line meant for people. */
const NOT_FOR_PEOPLE = /\bSome\(|\bNone\b|\bnull\b|\bundefined\b|\("SIG|Ok\(|Err\(/;

/** Spawns `bin/rpm2 ...args` in the background; collects its output in `.out`/`.err`. */
function background(args, home, env = {}) {
  const child = spawn(h.BIN, args, { cwd: h.ROOT, env: h.homeEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.out = '';
  child.err = '';
  child.stdout.on('data', (d) => { child.out += d; });
  child.stderr.on('data', (d) => { child.err += d; });
  child.done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return child;
}

/** Waits for a background CLI to exit; SIGKILLs it after `ms` so a hung test ends. */
async function exitOf(child, ms = 30000) {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const r = await child.done;
  clearTimeout(timer);
  return r;
}

describe('foreground and attach', () => {
  test('start --no-daemon streams the logs here and SIGINT stops every app gracefully (exit 0)', async (t) => {
    const { home } = h.useHome(t);
    const child = background(['start', IDLE, '--name', 'fg', '--no-daemon', '--', 'fgtag'], home);
    t.after(() => child.kill('SIGKILL'));
    await h.waitFor(() => /fgtag stdout line/.test(child.out) && /fgtag stderr line/.test(child.err),
      { message: 'the app logs on the foreground CLI', timeout: 20000 });
    const p = await h.waitForProc(home, 'fg', (x) => x.pm2_env.status === 'online');
    child.kill('SIGINT');
    const r = await exitOf(child);
    assert.equal(r.code, 0, `exit after SIGINT\n${child.out}\n${child.err}`);
    assert.ok(!h.isAlive(p.pid), 'the app is stopped');
    await h.waitFor(() => h.daemonPids(home).length === 0, { message: 'the daemon is gone' });
  });

  test('RPM2_NO_DAEMON=1: the exit code says how the app ended', async (t) => {
    const { home } = h.useHome(t);
    const child = background(['start', EXIT, '--name', 'ends', '--no-autorestart', '--', '3', '300'], home,
      { RPM2_NO_DAEMON: '1' });
    t.after(() => child.kill('SIGKILL'));
    const r = await exitOf(child, 40000);
    assert.equal(r.code, 3, `the app's exit code\n${child.out}\n${child.err}`);
    assert.match(child.out, /cli-exit: exiting with 3/);
  });

  test('start --attach streams the app logs until Ctrl-C; the app keeps running', async (t) => {
    const { home } = h.useHome(t);
    const child = background(['start', h.fixture('logs-tick.js'), '--name', 'att', '--attach'], home);
    t.after(() => child.kill('SIGKILL'));
    const p = await h.waitForProc(home, 'att', (x) => x.pm2_env.status === 'online');
    await h.waitFor(() => /att/.test(child.out) && child.out.split('\n').some((l) => /\d+\|att\s*\|/.test(l)),
      { message: `streamed log lines on the attached CLI: ${child.out}`, timeout: 20000 });
    child.kill('SIGINT');
    await exitOf(child);
    const after = await h.proc(home, 'att');
    assert.equal(after.pm2_env.status, 'online');
    assert.equal(after.pid, p.pid);
  });

  test('PM2 flags rpm2 has no use for are accepted, listed in help, and change nothing', async (t) => {
    const { home } = h.useHome(t);
    const flags = ['--no-pmx', '--no-vizion', '--no-automation', '--disable-trace', '--trace',
      '--disable-source-map-support', '--source-map-support'];
    const help = await ok(['start', '--help'], { home });
    assert.match(help.stdout, /Accepted for PM2 compatibility:/);
    for (const f of flags) assert.ok(help.stdout.includes(f), `${f} in start --help`);
    let i = 0;
    for (const f of flags) {
      const r = await h.rpm2(['start', IDLE, '--name', `compat${i++}`, f], { home });
      assert.equal(r.code, 0, `start ${f}\n${h.show(r)}`);
    }
    const list = await h.jlist(home);
    assert.equal(list.length, flags.length);
    for (const p of list) assert.equal(p.pm2_env.exec_mode, 'fork_mode');
  });
});

describe('log lines for people', () => {
  test('crash, stop, cluster listen and reload write no Debug text and no null/undefined', async (t) => {
    const { home } = h.useHome(t);
    const port = await h.freePort();
    const outputs = [];
    const run = async (args, opts = {}) => {
      const r = await h.rpm2(args, { home, ...opts });
      outputs.push(`$ rpm2 ${args.join(' ')}\n${r.stdout}${r.stderr}`);
      assert.equal(r.code, 0, h.show(r));
      return r;
    };
    await run(['start', EXIT, '--name', 'crash', '--no-autorestart', '--', '1', '200']);
    await run(['start', IDLE, '--name', 'idle']);
    await run(['start', HTTP, '--name', 'web', '-i', '2'], { env: { PORT: port } });
    await h.waitForProc(home, 'crash', (p) => p.pm2_env.status === 'stopped', { timeout: 20000 });
    await h.waitFor(() => /listening on/.test(h.daemonLog(home)), { message: 'the cluster listen line' });
    await run(['stop', 'idle']);
    await run(['reload', 'web']);
    await run(['restart', 'crash']);
    await run(['list']);
    const log = h.daemonLog(home);
    const bad = log.split('\n').filter((l) => NOT_FOR_PEOPLE.test(l));
    assert.deepEqual(bad, [], `daemon log lines with Debug text or null/undefined:\n${log}`);
    assert.match(log, /App \[crash:\d+\] exited with code 1/);
    assert.match(log, /App \[idle:\d+\] stopped \(killed by SIGINT\)/);
    assert.match(log, new RegExp(`listening on 0\\.0\\.0\\.0:${port}\\b`));
    const cli = outputs.join('\n').split('\n').filter((l) => NOT_FOR_PEOPLE.test(l));
    assert.deepEqual(cli, [], `CLI lines with Debug text or null/undefined:\n${outputs.join('\n')}`);
  });
});

/** The JSON type of a value, telling arrays and null apart. */
function jsonType(v) {
  if (v === null) return 'null';
  return Array.isArray(v) ? 'array' : typeof v;
}

/** Runs pm2 7 (the devDependency) with its own PM2_HOME; resolves {code, stdout, stderr}. */
function pm2(args, pm2Home) {
  const r = spawnSync(PM2, args, { cwd: h.ROOT, env: { ...process.env, PM2_HOME: pm2Home }, encoding: 'utf8', timeout: 60000 });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
}

describe("PM2's jlist fields", () => {
  test('every key pm2 7 puts in a jlist object and its pm2_env is in rpm2\'s, with the same JSON type', async (t) => {
    if (!fs.existsSync(PM2)) {
      t.skip(`pm2 is not installed (${PM2}): npm install to compare with it`);
      return;
    }
    const pm2Home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-fc-pm2-'));
    let theirs;
    try {
      const s = pm2(['start', IDLE, '--name', 'diff'], pm2Home);
      assert.equal(s.code, 0, `pm2 start\n${s.stdout}${s.stderr}`);
      theirs = await h.waitFor(() => {
        const r = pm2(['jlist'], pm2Home);
        const list = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
        const p = list.find((x) => x.name === 'diff');
        return p && p.pm2_env.status === 'online' && p.pm2_env.node_version ? p : undefined;
      }, { message: 'pm2 jlist shows the app online', timeout: 30000 });
    } finally {
      pm2(['kill'], pm2Home);
      fs.rmSync(pm2Home, { recursive: true, force: true });
    }
    const { home } = h.useHome(t);
    await ok(['start', IDLE, '--name', 'diff'], { home });
    const ours = await h.waitForProc(home, 'diff', (p) => p.pm2_env.status === 'online');

    const missing = [];
    const compare = (a, b, where, skip = new Set()) => {
      for (const k of Object.keys(a)) {
        if (skip.has(k)) continue;
        if (!(k in b)) missing.push(`${where}.${k} (${jsonType(a[k])})`);
        else if (jsonType(a[k]) !== jsonType(b[k])) missing.push(`${where}.${k}: ${jsonType(a[k])} in pm2, ${jsonType(b[k])} in rpm2`);
      }
    };
    compare(theirs, ours, 'jlist');
    compare(theirs.monit, ours.monit, 'monit');
    // pm2's own env (PM2_HOME, PM2_USAGE...) is not the app's; axm_actions is added with the commands.
    const theirEnvKeys = new Set([...Object.keys(theirs.pm2_env.env), 'axm_actions']);
    compare(theirs.pm2_env, ours.pm2_env, 'pm2_env', theirEnvKeys);
    assert.deepEqual(missing, [], 'fields pm2 has and rpm2 lacks (or types that differ)');

    // The app's env keys are at the top level of pm2_env too, hidden like the env block.
    for (const [k, v] of Object.entries(ours.pm2_env.env)) {
      assert.ok(k in ours.pm2_env, `pm2_env.${k} at the top level`);
      if (!['name', 'status', 'env', 'version'].includes(k)) assert.equal(ours.pm2_env[k], v, `pm2_env.${k}`);
    }
    assert.equal(ours.pm2_env.PATH, '[hidden]');
    const shown = (await h.jlistEnv(home)).find((p) => p.name === 'diff');
    assert.equal(shown.pm2_env.RPM2_HOME, home);
    // node_version is the interpreter's real version.
    const node = spawnSync('node', ['--version'], { encoding: 'utf8' }).stdout.trim().replace(/^v/, '');
    assert.equal(ours.pm2_env.node_version, node);
    assert.equal(ours.pm2_env.vizion, true);
    // Metrics arrive about a second after the start (issue 22): {} until then, an object always.
    assert.equal(jsonType(ours.pm2_env.axm_monitor), 'object');
  });

  test('logs --json --nostream carries the timestamp each log line recorded', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', IDLE, '--name', 'stamped', '--time'], { home });
    await h.waitLog(home, 'stamped', /stdout line/);
    const r = await ok(['logs', 'stamped', '--json', '--nostream', '--lines', '5'], { home });
    const lines = h.lines(r.stdout).map((l) => JSON.parse(l));
    const out = lines.find((l) => l.type === 'out');
    assert.ok(out, r.stdout);
    assert.match(out.message, /^cli-idle stdout line/);
    assert.match(String(out.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  });
});

describe('progress of slow commands', () => {
  /** A cluster app that takes `ms` to start listening on PORT. */
  function slowApp(dir, ms) {
    const file = path.join(dir, 'slow-app.js');
    fs.writeFileSync(file, `setTimeout(() => require('http').createServer((q, s) => s.end('ok'))
      .listen(Number(process.env.PORT)), ${ms});\n`);
    return file;
  }

  test('off a terminal: one plain line per instance as it comes online, nothing that redraws; -s prints none', async (t) => {
    const { home, dir } = h.useHome(t);
    const port = await h.freePort();
    const app = slowApp(dir, 600);
    await ok(['start', app, '--name', 'slow', '-i', '3'], { home, env: { PORT: port } });
    await h.waitFor(async () => (await h.jlist(home)).filter((p) => p.pm2_env.status === 'online').length === 3,
      { message: '3 instances online' });
    const r = await ok(['reload', 'slow'], { home });
    const steps = h.lines(r.stderr).filter((l) => /^\[rpm2\] slow:\d+ online$/.test(l));
    assert.equal(steps.length >= 2, true, `a line per instance on stderr\n${h.show(r)}`);
    assert.ok(!/\r|\x1b\[/.test(r.stderr), `nothing redraws off a terminal\n${h.show(r)}`);
    // stdout keeps its table only.
    assert.ok(!/slow:\d+ online/.test(r.stdout), h.show(r));
    const quiet = await ok(['reload', 'slow', '-s'], { home });
    assert.equal(quiet.stderr, '', h.show(quiet));
    assert.equal(quiet.stdout, '', h.show(quiet));
    const del = await ok(['delete', 'all'], { home });
    assert.ok(!/online/.test(del.stderr), h.show(del));
  });
  test('the first start of a new home (which starts the daemon) shows its progress too', async (t) => {
    const { home, dir } = h.useHome(t);
    const app = path.join(dir, 'late-ready.js');
    fs.writeFileSync(app, "setTimeout(() => process.send('ready'), 1500); setInterval(() => {}, 1000);\n");
    const r = await ok(['start', app, '--name', 'late', '-i', '2', '--wait-ready'], { home });
    assert.match(r.stderr, /Spawned the rpm2 daemon/, h.show(r));
    const steps = h.lines(r.stderr).filter((l) => /^\[rpm2\] late:\d+ online$/.test(l));
    assert.equal(steps.length, 2, `a line per instance on stderr\n${h.show(r)}`);
  });
});
