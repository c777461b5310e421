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
