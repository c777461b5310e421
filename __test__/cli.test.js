'use strict';
// End-to-end tests of the rpm2 CLI for issue 2 (the foundation): the real bin/rpm2 launcher, the real
// rpm2d daemon, real apps (fixtures/cli-*), one temporary RPM2_HOME per test. Each test cleans up its
// daemon and apps (helpers.cleanup, registered with t.after). Run:
//   node --test --test-concurrency=2 __test__/cli.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const vm = require('node:vm');
const h = require('./helpers');
const { ok } = h;

const IDLE = h.fixture('cli-idle.js');
const CRASH = h.fixture('cli-crash-interval.js');
const EXIT = h.fixture('cli-exit.js');
const EXIT_SH = h.fixture('cli-exit.sh');
const ENV_DUMP = h.fixture('cli-env-dump.js');
const ENV_DUMP_PY = h.fixture('cli-env-dump.py');
const IDLE_SH = h.fixture('cli-idle.sh');
const EXEC_BIN = h.fixture('cli-exec-bin');
const IGNORE_SIGINT = h.fixture('cli-ignore-sigint.js');
const GRACEFUL = h.fixture('cli-graceful.js');
const SPAWN_CHILD = h.fixture('cli-spawn-child.js');
const FLOOD = h.fixture('cli-flood.js');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEED_COLUMNS = ['App name', 'id', 'mode', 'pid', 'status', 'restart', 'uptime', 'cpu', 'memory', 'watching'];

/** Starts `script` as `name` (extra flags/args appended) and waits for it to be online. */
async function startApp(home, name, script = IDLE, extra = [], opts = {}) {
  await ok(['start', script, '--name', name, ...extra], { home, ...opts });
  return h.waitForProc(home, name, (p) => p.pm2_env.status === 'online' && p.pid > 0);
}

/** A command line without rpm2's metrics preload (`--require <home>/metrics-preload.cjs`). */
function withoutPreload(argv) {
  return argv.filter((a, i) => a !== '--require' && argv[i - 1] !== '--require');
}

function byName(list) {
  return Object.fromEntries(list.map((p) => [p.name, p]));
}

/** Asserts a failed command: non-zero exit, exactly one line on stderr, mentioning every `needles`. */
function assertOneLineError(r, needles, what) {
  assert.notEqual(r.code, 0, `${what}: should fail\n${h.show(r)}`);
  assert.equal(r.signal, null, `${what}: should exit, not be killed\n${h.show(r)}`);
  const errLines = h.lines(r.stderr);
  assert.equal(errLines.length, 1, `${what}: stderr should be exactly one line\n${h.show(r)}`);
  for (const n of needles) {
    assert.ok(errLines[0].includes(n), `${what}: the error should name ${JSON.stringify(n)}\n${h.show(r)}`);
  }
}

/** A home with a daemon and one online app ("bystander") that bad input must leave alone. */
async function withBystander(t) {
  const env = h.useHome(t);
  const p = await startApp(env.home, 'bystander');
  const daemon = h.daemonPid(env.home);
  assert.ok(h.isAlive(daemon), 'the daemon runs');
  return { ...env, bystander: p, daemon };
}

/** Asserts that the daemon and the bystander are untouched, and that the table holds `count` apps. */
async function assertUntouched(ctx, count = 1) {
  assert.equal(h.daemonPid(ctx.home), ctx.daemon, 'same daemon');
  assert.ok(h.isAlive(ctx.daemon), 'the daemon is still alive');
  assert.deepEqual(h.daemonPids(ctx.home), [ctx.daemon], 'exactly one daemon for the home');
  const list = await h.jlist(ctx.home);
  const b = list.find((p) => p.name === 'bystander');
  assert.ok(b, 'the bystander is still listed');
  assert.equal(b.pm2_env.status, 'online');
  assert.equal(b.pid, ctx.bystander.pid, 'the bystander kept its pid');
  assert.equal(b.pm2_env.restart_time, 0, 'the bystander was not restarted');
  assert.ok(h.isAlive(b.pid));
  assert.equal(list.length, count, `the table holds ${count} app(s): ${list.map((p) => p.name)}`);
}

describe('rpm2 CLI (issue 2: foundation)', { concurrency: 4 }, () => {
  // 1 ------------------------------------------------------------------------------------------------
  test('--version / -v print the package.json version and start no daemon', async (t) => {
    const { home } = h.useHome(t);
    for (const flag of ['--version', '-v']) {
      const r = await h.rpm2([flag], { home });
      assert.equal(r.code, 0, h.show(r));
      assert.equal(r.stdout.trim(), h.PKG_VERSION, h.show(r));
    }
    assert.ok(!fs.existsSync(path.join(home, 'rpc.sock')), 'no rpc.sock: no daemon was started');
    assert.deepEqual(h.daemonPids(home), []);
  });

  test('--help prints usage naming the rpm2 command and starts no daemon', async (t) => {
    const { home } = h.useHome(t);
    const r = await ok(['--help'], { home });
    assert.match(r.stdout, /Usage: rpm2 /, r.stdout);
    assert.doesNotMatch(r.stdout, /rpm2d/, r.stdout);
    assert.ok(!fs.existsSync(path.join(home, 'rpc.sock')), 'no daemon was started');
  });

  // 2 ------------------------------------------------------------------------------------------------
  test('start app.js --name my-app: auto-starts the daemon, prints the table, runs the app, writes logs and pid file', async (t) => {
    const { home } = h.useHome(t);
    assert.ok(!fs.existsSync(path.join(home, 'rpc.sock')));
    const r = await ok(['start', IDLE, '--name', 'my-app'], { home });

    // The daemon was started by the CLI.
    assert.ok(fs.existsSync(path.join(home, 'rpc.sock')), 'rpc.sock exists');
    const daemon = h.daemonPid(home);
    assert.ok(h.isAlive(daemon), `the daemon (pid file ${daemon}) is alive`);

    // The table: the seed's columns (+ cpu), the app online.
    const { headers, rows } = h.parseTable(r.stdout);
    for (const c of SEED_COLUMNS) assert.ok(headers.includes(c), `column ${c} in ${JSON.stringify(headers)}\n${r.stdout}`);
    const row = rows.find((x) => x['App name'] === 'my-app');
    assert.ok(row, `a row for my-app\n${r.stdout}`);
    assert.equal(row.id, '0');
    assert.equal(row.mode, 'fork');
    assert.equal(row.status, 'online');
    assert.equal(row.restart, '0');
    assert.equal(row.watching, 'disabled');
    assert.match(row.uptime, /^\d+[smhD]$/);
    assert.match(row.memory, /^[\d.]+(b|kb|mb|gb)$/i);
    assert.match(row.cpu, /^[\d.]+%$/);
    const pid = Number(row.pid);
    assert.ok(pid > 0, `pid cell ${row.pid}`);

    // The app runs as itself: node <script> (after rpm2's metrics preload, `--require <file>`).
    assert.ok(h.isAlive(pid), 'the app pid is alive');
    const argv = withoutPreload(h.cmdline(pid));
    assert.match(path.basename(argv[0]), /^node/, `argv ${JSON.stringify(argv)}`);
    assert.equal(argv[1], IDLE, `argv[1] is the script: ${JSON.stringify(argv)}`);

    // Logs and pid file.
    const out = path.join(home, 'logs', 'my-app-out.log');
    const err = path.join(home, 'logs', 'my-app-error.log');
    await h.waitFor(() => fs.readFileSync(out, 'utf8').includes(`cli-idle stdout line pid=${pid}`),
      { message: `stdout line in ${out}` });
    await h.waitFor(() => fs.readFileSync(err, 'utf8').includes(`cli-idle stderr line pid=${pid}`),
      { message: `stderr line in ${err}` });
    assert.ok(!fs.readFileSync(out, 'utf8').includes('stderr line'), 'stderr does not go to the out log');
    assert.equal(fs.readFileSync(path.join(home, 'pids', 'my-app-0.pid'), 'utf8').trim(), String(pid));
  });

  test('log and pid files: default name from the script, sanitised names, -o/-e/-p overrides', async (t) => {
    const { dir, home } = h.useHome(t);
    // No --name: the name is the script's base name; a relative script resolves against the shell's cwd.
    await ok(['start', 'cli-idle.js'], { home, cwd: h.FIXTURES });
    const d = await h.waitForProc(home, 'cli-idle', (x) => x.pm2_env.status === 'online');
    assert.equal(d.pm2_env.pm_exec_path, IDLE);
    assert.equal(d.pm2_env.pm_cwd, h.FIXTURES);
    assert.equal(d.pm2_env.pm_out_log_path, path.join(home, 'logs', 'cli-idle-out.log'));
    // A name with characters PM2 replaces ([^a-zA-Z0-9.-] -> -) in file names.
    const odd = await startApp(home, 'my app/1_x', IDLE, ['-f']);
    assert.equal(odd.pm2_env.pm_out_log_path, path.join(home, 'logs', 'my-app-1-x-out.log'));
    assert.equal(odd.pm2_env.pm_err_log_path, path.join(home, 'logs', 'my-app-1-x-error.log'));
    await h.waitFor(() => fs.readFileSync(path.join(home, 'logs', 'my-app-1-x-out.log'), 'utf8').includes(`pid=${odd.pid}`),
      { message: 'sanitised out log written' });
    // -o/-e relative to the app's cwd; -p gets the pm_id inserted (PM2: -p echo.pid -> echo-<id>.pid).
    const wd = path.join(dir, 'wd');
    fs.mkdirSync(wd);
    const o = await startApp(home, 'custom', IDLE, ['--cwd', wd, '-o', 'o.log', '-e', path.join(dir, 'e.log'),
      '-p', path.join(dir, 'app.pid')]);
    assert.equal(o.pm2_env.pm_out_log_path, path.join(wd, 'o.log'));
    assert.equal(o.pm2_env.pm_err_log_path, path.join(dir, 'e.log'));
    assert.equal(o.pm2_env.pm_pid_path, path.join(dir, `app-${o.pm_id}.pid`));
    await h.waitFor(() => fs.readFileSync(path.join(wd, 'o.log'), 'utf8').includes(`stdout line pid=${o.pid}`), { message: 'o.log' });
    await h.waitFor(() => fs.readFileSync(path.join(dir, 'e.log'), 'utf8').includes(`stderr line pid=${o.pid}`), { message: 'e.log' });
    assert.equal(fs.readFileSync(path.join(dir, `app-${o.pm_id}.pid`), 'utf8').trim(), String(o.pid));
    assert.ok(!fs.existsSync(path.join(home, 'logs', 'custom-out.log')), 'no default log when -o is given');
  });

  test('nothing a child writes is lost, and log files are appended across runs', async (t) => {
    const { home } = h.useHome(t);
    const n = 50000;
    await ok(['start', FLOOD, '--name', 'flood', '--no-autorestart', '--', String(n)], { home });
    await h.waitForProc(home, 'flood', (x) => x.pm2_env.status === 'stopped', { timeout: 20000, message: 'flood exited' });
    const out = path.join(home, 'logs', 'flood-out.log');
    const err = path.join(home, 'logs', 'flood-error.log');
    const check = (file, kind, runs) => {
      const got = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(`${kind} `));
      assert.equal(got.length, runs * n, `${file}: ${got.length} of ${runs * n} lines`);
      for (let i = 0; i < runs * n; i++) {
        if (got[i] !== `${kind} run ${i % n}`) assert.fail(`${file}: line ${i} is ${JSON.stringify(got[i])}`);
      }
    };
    const count = (file) => (fs.readFileSync(file, 'utf8').match(/\n/g) || []).length;
    // The exit may be seen before the last chunk is written: poll for the count, then check the order.
    await h.waitFor(() => count(out) >= n && count(err) >= n, { message: `${n} lines in each log` });
    check(out, 'out', 1);
    check(err, 'err', 1);
    // A second run appends.
    await ok(['restart', 'flood'], { home });
    await h.waitFor(() => count(out) >= 2 * n && count(err) >= 2 * n, { timeout: 20000, message: `${2 * n} lines in each log` });
    await h.waitForProc(home, 'flood', (x) => x.pm2_env.status === 'stopped', { timeout: 20000, message: 'second run exited' });
    check(out, 'out', 2);
    check(err, 'err', 2);
  });

  test('status is coloured unless NO_COLOR / --no-color', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'colour');
    const colour = { NO_COLOR: undefined, FORCE_COLOR: '1' };
    const r = await ok(['list'], { home, env: colour });
    // eslint-disable-next-line no-control-regex
    assert.match(r.stdout, /\x1b\[[0-9;]*32[0-9;]*m\s*online/, `online is green:\n${JSON.stringify(r.stdout)}`);
    await ok(['stop', 'colour'], { home });
    const r2 = await ok(['list'], { home, env: colour });
    // eslint-disable-next-line no-control-regex
    assert.match(r2.stdout, /\x1b\[[0-9;]*m\s*stopped/, 'stopped is coloured');
    for (const [args, env] of [[['list'], {}], [['list', '--no-color'], { NO_COLOR: undefined, FORCE_COLOR: '1' }]]) {
      const plain = await ok(args, { home, env });
      assert.ok(!plain.stdout.includes('\x1b['), `no escape codes with ${args.join(' ')} ${JSON.stringify(env)}`);
    }
  });

  // 3 ------------------------------------------------------------------------------------------------
  test('list aliases; stop/restart/delete by id, name, all and several targets; pm_id allocation', async (t) => {
    const { home } = h.useHome(t);
    for (const n of ['a', 'b', 'c']) await startApp(home, n);
    let list = byName(await h.jlist(home));
    assert.deepEqual([list.a.pm_id, list.b.pm_id, list.c.pm_id], [0, 1, 2]);

    for (const alias of ['list', 'ls', 'l', 'status']) {
      const r = await ok([alias], { home });
      const names = h.parseTable(r.stdout).rows.map((x) => x['App name']).sort();
      assert.deepEqual(names, ['a', 'b', 'c'], `rpm2 ${alias}\n${r.stdout}`);
    }

    const pids0 = { a: list.a.pid, b: list.b.pid, c: list.c.pid };
    // restart by id
    await ok(['restart', '1'], { home });
    list = byName(await h.jlist(home));
    assert.equal(list.b.pm2_env.restart_time, 1);
    assert.notEqual(list.b.pid, pids0.b, 'restart changes the pid');
    assert.equal(list.b.pm2_env.status, 'online');
    await h.waitFor(() => !h.isAlive(pids0.b), { message: 'old pid of b gone' });
    assert.equal(list.a.pm2_env.restart_time, 0, 'a untouched');
    assert.equal(list.a.pid, pids0.a, 'a untouched');
    // restart by name
    await ok(['restart', 'c'], { home });
    // restart several targets (name + id)
    await ok(['restart', 'a', '2'], { home });
    list = byName(await h.jlist(home));
    assert.deepEqual([list.a.pm2_env.restart_time, list.b.pm2_env.restart_time, list.c.pm2_env.restart_time], [1, 1, 2]);
    // restart all
    const before = { a: list.a.pid, b: list.b.pid, c: list.c.pid };
    await ok(['restart', 'all'], { home });
    list = byName(await h.jlist(home));
    assert.deepEqual([list.a.pm2_env.restart_time, list.b.pm2_env.restart_time, list.c.pm2_env.restart_time], [2, 2, 3]);
    for (const n of ['a', 'b', 'c']) {
      assert.equal(list[n].pm2_env.status, 'online');
      assert.notEqual(list[n].pid, before[n], `${n} has a new pid`);
      assert.ok(h.isAlive(list[n].pid));
    }

    // stop by id: stopped, pid 0, the process is gone; others untouched.
    const pidA = list.a.pid;
    await ok(['stop', '0'], { home });
    list = byName(await h.jlist(home));
    assert.equal(list.a.pm2_env.status, 'stopped');
    assert.equal(list.a.pid, 0);
    await h.waitFor(() => !h.isAlive(pidA), { message: 'a is gone after stop' });
    assert.equal(list.b.pm2_env.status, 'online');
    assert.equal(list.c.pm2_env.status, 'online');
    const tbl = h.parseTable((await ok(['ls'], { home })).stdout).rows.find((x) => x['App name'] === 'a');
    assert.equal(tbl.status, 'stopped');
    assert.equal(tbl.pid, '0');
    // stop by name, several
    await ok(['stop', 'b', 'c'], { home });
    list = byName(await h.jlist(home));
    for (const n of ['a', 'b', 'c']) {
      assert.equal(list[n].pm2_env.status, 'stopped', n);
      assert.equal(list[n].pid, 0, n);
    }
    // restart all brings them back (PM2: restarting a stopped process just starts it, no ↺ increment);
    // stop all stops them all.
    const counts = [list.a.pm2_env.restart_time, list.b.pm2_env.restart_time, list.c.pm2_env.restart_time];
    await ok(['restart', 'all'], { home });
    list = byName(await h.jlist(home));
    for (const n of ['a', 'b', 'c']) assert.equal(list[n].pm2_env.status, 'online', n);
    assert.deepEqual([list.a.pm2_env.restart_time, list.b.pm2_env.restart_time, list.c.pm2_env.restart_time], counts,
      'restart of a stopped process does not count as a restart');
    await ok(['stop', 'all'], { home });
    list = byName(await h.jlist(home));
    for (const n of ['a', 'b', 'c']) assert.equal(list[n].pm2_env.status, 'stopped', n);

    // delete by id, del by name.
    await ok(['delete', '0'], { home });
    await ok(['del', 'b'], { home });
    list = await h.jlist(home);
    assert.deepEqual(list.map((p) => p.name), ['c']);
    // ids are not reused while the table is non-empty.
    const d = await startApp(home, 'd');
    assert.equal(d.pm_id, 3, 'next id after 0..2 (0 and 1 deleted, c still there) is 3');
    // delete several (name + id): the table is empty ...
    await ok(['delete', 'c', '3'], { home });
    assert.deepEqual(await h.jlist(home), []);
    // ... so the next id starts over at 0 (PM2).
    const e = await startApp(home, 'e');
    assert.equal(e.pm_id, 0, 'next id resets to 0 when the table is empty');
    await ok(['delete', 'all'], { home });
    assert.deepEqual(await h.jlist(home), []);
    assert.ok(!h.isAlive(e.pid), 'delete stops the process');
  });

  // 4 ------------------------------------------------------------------------------------------------
  test('show / describe print the process details', async (t) => {
    const { dir, home } = h.useHome(t);
    const p = await startApp(home, 'shown', IDLE, ['--', 'x', 'y'], { cwd: dir });
    const r = await ok(['show', 'shown'], { home });
    const kv = h.parseKeyValues(r.stdout);
    const expect = {
      status: 'online',
      name: 'shown',
      restarts: '0',
      'script path': IDLE,
      'script args': 'x y',
      'error log path': path.join(home, 'logs', 'shown-error.log'),
      'out log path': path.join(home, 'logs', 'shown-out.log'),
      'pid path': path.join(home, 'pids', 'shown-0.pid'),
      interpreter: 'node',
      'exec cwd': dir,
      'exec mode': 'fork_mode',
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(kv[k], v, `show: ${k}\n${r.stdout}`);
    assert.match(kv.uptime || '', /^\d+[smhD]$/, `show: uptime\n${r.stdout}`);
    assert.match(kv['created at'] || '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/, `show: created at\n${r.stdout}`);
    assert.ok(r.stdout.includes('shown'), r.stdout);
    // describe is an alias; a target may be an id.
    for (const args of [['describe', 'shown'], ['show', '0'], ['describe', '0']]) {
      const r2 = await ok(args, { home });
      const kv2 = h.parseKeyValues(r2.stdout);
      assert.equal(kv2['script path'], IDLE, `${args.join(' ')}\n${r2.stdout}`);
      assert.equal(kv2['out log path'], expect['out log path']);
    }
    assert.ok(h.isAlive(p.pid));
  });

  // 5 ------------------------------------------------------------------------------------------------
  test('jlist is JSON in PM2\'s shape; prettylist is util.inspect of the same data', async (t) => {
    const { dir, home } = h.useHome(t);
    await startApp(home, 'shape', IDLE, [], { cwd: dir });
    // Bytes of RSS: a Node app's is over 1 MiB once it runs (a sample taken in the first
    // milliseconds after the fork can read ~130 kB; a size in kB would never get there).
    await h.waitForProc(home, 'shape', (x) => x.monit.memory > 1 << 20, { message: 'memory sampled as bytes of RSS' });
    const list = await h.jlist(home);
    assert.ok(Array.isArray(list));
    assert.equal(list.length, 1);
    const [e] = list;
    assert.equal(e.name, 'shape');
    assert.equal(e.pm_id, 0);
    assert.equal(typeof e.pid, 'number');
    assert.ok(e.pid > 0 && h.isAlive(e.pid));
    assert.equal(typeof e.monit, 'object');
    assert.equal(typeof e.monit.memory, 'number');
    assert.equal(typeof e.monit.cpu, 'number');
    const env = e.pm2_env;
    assert.equal(env.status, 'online');
    assert.equal(env.restart_time, 0);
    assert.equal(env.unstable_restarts, 0);
    assert.equal(env.name, 'shape');
    assert.equal(env.pm_id, 0);
    assert.equal(env.exec_mode, 'fork_mode');
    assert.equal(env.pm_exec_path, IDLE);
    assert.equal(env.pm_cwd, dir);
    assert.equal(env.pm_out_log_path, path.join(home, 'logs', 'shape-out.log'));
    assert.equal(env.pm_err_log_path, path.join(home, 'logs', 'shape-error.log'));
    assert.equal(env.pm_pid_path, path.join(home, 'pids', 'shape-0.pid'));
    assert.equal(env.exec_interpreter, 'node');
    assert.equal(env.instances, 1);
    assert.equal(env.NODE_APP_INSTANCE, 0);
    assert.equal(typeof env.pm_uptime, 'number');
    assert.equal(typeof env.created_at, 'number');
    assert.ok(env.pm_uptime > 1.7e12 && env.created_at > 1.7e12, 'epoch ms');
    assert.match(env.unique_id, UUID);
    assert.equal(env.autorestart, true);
    assert.equal(env.kill_timeout, 1600, 'PM2 default kill_timeout');
    assert.equal(env.max_restarts, 16, 'PM2 default max_restarts');
    assert.equal(env.min_uptime, 1000, 'PM2 default min_uptime');
    assert.equal(typeof env.env, 'object');

    const r = await ok(['prettylist'], { home });
    assert.match(r.stdout, /status: 'online'/);
    assert.match(r.stdout, /restart_time: 0/);
    assert.match(r.stdout, /name: 'shape'/);
    assert.match(r.stdout, /exec_mode: 'fork_mode'/);
    // util.inspect output of plain data is a JS literal: evaluate it and compare with jlist.
    const pretty = vm.runInNewContext(`(${r.stdout})`);
    const fresh = await h.jlist(home);
    // monit and axm_monitor (the code metrics, refreshed every second) may change between the two calls.
    const norm = (l) => JSON.parse(JSON.stringify(l, (k, v) => (k === 'monit' || k === 'axm_monitor' ? {} : v)));
    assert.deepEqual(norm(pretty), norm(fresh), 'prettylist shows the same data as jlist');
    assert.equal(util.inspect(norm(fresh), false, null, false).split('\n')[0], '[');
  });

  // 6 ------------------------------------------------------------------------------------------------
  test('Listing 4-3: an app throwing an uncaught exception is restarted, restart count climbs, uptime resets', async (t) => {
    const { home } = h.useHome(t);
    const first = await startApp(home, 'bad-app', CRASH, ['--', '1200']);
    const p = await h.waitForProc(home, 'bad-app',
      (x) => x.pm2_env.restart_time >= 2 && x.pm2_env.status === 'online' && x.pid > 0,
      { timeout: 20000, message: 'restart_time >= 2 and online' });
    assert.notEqual(p.pid, first.pid, 'a new process');
    assert.ok(p.pm2_env.pm_uptime > first.pm2_env.pm_uptime, 'pm_uptime was reset at the restart');
    assert.ok(h.isAlive(p.pid));
    assert.equal(withoutPreload(h.cmdline(p.pid))[1], CRASH);
    // The list table shows it too.
    const row = h.parseTable((await ok(['list'], { home })).stdout).rows.find((x) => x['App name'] === 'bad-app');
    assert.ok(Number(row.restart) >= 2, `restart column ${row.restart}`);
    assert.ok(['online', 'launching'].includes(row.status), `status ${row.status}`);
    // The uncaught exception reached the error log.
    const errLog = fs.readFileSync(path.join(home, 'logs', 'bad-app-error.log'), 'utf8');
    assert.match(errLog, /Uh oh\./);
  });

  // 7 ------------------------------------------------------------------------------------------------
  test('crash loop: errored after max_restarts unstable exits (16 by default, --max-restarts 3)', async (t) => {
    const { home } = h.useHome(t);
    // An app that exits at once, with the default max_restarts (16) and min_uptime (1000 ms).
    await ok(['start', EXIT_SH, '--name', 'loop16'], { home });
    // The same with --max-restarts 3 (min_uptime raised so that every exit is unstable on a slow machine).
    await ok(['start', EXIT, '--name', 'loop3', '--max-restarts', '3', '--min-uptime', '5000', '--', '1'], { home });
    const p3 = await h.waitForProc(home, 'loop3', (x) => x.pm2_env.status === 'errored',
      { timeout: 20000, message: 'errored' });
    // 3 unstable exits: the start and 2 restarts, then errored (PM2: restart_time = max_restarts - 1).
    assert.equal(p3.pm2_env.restart_time, 2, 'restart_time after 3 unstable exits');
    assert.equal(p3.pid, 0);
    const p16 = await h.waitForProc(home, 'loop16', (x) => x.pm2_env.status === 'errored',
      { timeout: 30000, message: 'errored' });
    assert.equal(p16.pm2_env.restart_time, 15, 'PM2: 16 exits, restart_time 15');
    assert.equal(p16.pid, 0);
    // Errored apps are not restarted any more.
    await h.sleep(1500);
    const later = byName(await h.jlist(home));
    assert.equal(later.loop3.pm2_env.status, 'errored');
    assert.equal(later.loop3.pm2_env.restart_time, 2);
    assert.equal(later.loop16.pm2_env.status, 'errored');
    assert.equal(later.loop16.pm2_env.restart_time, 15);
    const row = h.parseTable((await ok(['ls'], { home })).stdout).rows.find((x) => x['App name'] === 'loop3');
    assert.equal(row.status, 'errored');
    assert.equal(row.pid, '0');
  });

  test('--no-autorestart: an app that exits 1 becomes stopped and is not restarted', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'once', '--no-autorestart', '--', '1', '300'], { home });
    const p = await h.waitForProc(home, 'once', (x) => x.pm2_env.status === 'stopped', { message: 'stopped' });
    assert.equal(p.pid, 0);
    assert.equal(p.pm2_env.restart_time, 0);
    assert.equal(p.pm2_env.autorestart, false);
    await h.sleep(1500);
    const later = await h.proc(home, 'once');
    assert.equal(later.pm2_env.status, 'stopped');
    assert.equal(later.pm2_env.restart_time, 0);
    const out = fs.readFileSync(path.join(home, 'logs', 'once-out.log'), 'utf8');
    assert.equal(out.match(/cli-exit: exiting/g).length, 1, `ran once:\n${out}`);
  });

  test('--stop-exit-codes 3: exit 3 leaves the app stopped; another code restarts it', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'code3', '--stop-exit-codes', '3', '--', '3', '300'], { home });
    await ok(['start', EXIT, '--name', 'code4', '--stop-exit-codes', '3', '--', '4', '300'], { home });
    const p = await h.waitForProc(home, 'code3', (x) => x.pm2_env.status === 'stopped', { message: 'stopped' });
    assert.equal(p.pid, 0);
    assert.equal(p.pm2_env.restart_time, 0);
    await h.waitForProc(home, 'code4', (x) => x.pm2_env.restart_time >= 1, { message: 'code4 restarted' });
    await h.sleep(1000);
    const later = await h.proc(home, 'code3');
    assert.equal(later.pm2_env.status, 'stopped');
    assert.equal(later.pm2_env.restart_time, 0, 'exit 3 is not restarted');
  });

  test('--restart-delay 1500: status is "waiting restart" between exit and restart', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'delayed', '--restart-delay', '1500', '--', '1'], { home });
    const w = await h.waitForProc(home, 'delayed', (x) => x.pm2_env.status === 'waiting restart',
      { interval: 50, message: 'waiting restart' });
    assert.equal(w.pm2_env.restart_delay, 1500);
    const r = await h.waitForProc(home, 'delayed', (x) => x.pm2_env.restart_time >= 1, { message: 'restarted' });
    assert.ok(['online', 'waiting restart', 'launching'].includes(r.pm2_env.status), r.pm2_env.status);
    const row = h.parseTable((await ok(['ls'], { home })).stdout).rows.find((x) => x['App name'] === 'delayed');
    assert.ok(row, 'listed');
  });

  test('--exp-backoff-restart-delay 200: restarts with growing delays (200, 300, 450, ...)', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'backoff', '--exp-backoff-restart-delay', '200', '--', '1'], { home });
    const delays = [];
    let sawWaiting = false;
    const p = await h.waitForProc(home, 'backoff', (x) => {
      const d = x.pm2_env.prev_restart_delay;
      if (typeof d === 'number' && d > 0 && delays[delays.length - 1] !== d) delays.push(d);
      if (x.pm2_env.status === 'waiting restart') sawWaiting = true;
      return x.pm2_env.restart_time >= 3 && delays.length >= 2;
    }, { interval: 50, timeout: 20000, message: 'restart_time >= 3' });
    assert.ok(sawWaiting, 'status went through "waiting restart"');
    // PM2: first delay = base, then floor(prev * 1.5), capped at 15 s.
    const expected = [200];
    while (expected.length < 20) expected.push(Math.min(15000, Math.floor(expected[expected.length - 1] * 1.5)));
    for (const d of delays) assert.ok(expected.includes(d), `delay ${d} in PM2's sequence (${delays})`);
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `growing: ${delays}`);
    assert.notEqual(p.pm2_env.status, 'errored', 'back-off never ends errored (PM2)');
  });

  // 8 ------------------------------------------------------------------------------------------------
  test('a node app runs as itself with --node-args, --cwd, -- args, and PM2\'s environment', async (t) => {
    const { dir, home } = h.useHome(t);
    const wd = path.join(dir, 'wd');
    fs.mkdirSync(wd);
    const dump = path.join(dir, 'env.json');
    // The daemon is started without the variable: the app must get the env of the client that starts it.
    await ok(['ping'], { home });
    await ok(['start', ENV_DUMP, '--name', 'envy', '--node-args=--max-old-space-size=64', '--cwd', wd,
      '--', dump, 'a', 'b'], { home, env: { RPM2_TEST_SHELL_VAR: 'from-the-shell-42' } });
    const d = await h.waitFor(() => h.readJson(dump), { message: dump });
    const p = await h.proc(home, 'envy');
    assert.equal(d.pid, p.pid, 'the dumping process is the listed pid');
    // argv / execArgv / cwd
    assert.equal(d.argv[1], ENV_DUMP, 'process.argv[1] is the script');
    assert.deepEqual(d.argv.slice(2), [dump, 'a', 'b'], 'args after -- reach process.argv');
    assert.ok(d.execArgv.includes('--max-old-space-size=64'), `execArgv ${d.execArgv}`);
    const argv = h.cmdline(p.pid);
    assert.ok(argv.indexOf('--max-old-space-size=64') > 0 && argv.indexOf('--max-old-space-size=64') < argv.indexOf(ENV_DUMP),
      `node args before the script in ${JSON.stringify(argv)}`);
    assert.equal(fs.realpathSync(d.cwd), fs.realpathSync(wd), '--cwd');
    // environment
    const e = d.env;
    const want = {
      pm_id: '0',
      name: 'envy',
      NODE_APP_INSTANCE: '0',
      pm_exec_path: ENV_DUMP,
      pm_cwd: wd,
      pm_out_log_path: path.join(home, 'logs', 'envy-out.log'),
      pm_err_log_path: path.join(home, 'logs', 'envy-error.log'),
      pm_pid_path: path.join(home, 'pids', 'envy-0.pid'),
      exec_mode: 'fork_mode',
      instances: '1',
      restart_time: '0',
      RPM2_HOME: home,
      RPM2_TEST_SHELL_VAR: 'from-the-shell-42',
    };
    for (const [k, v] of Object.entries(want)) assert.equal(e[k], v, `env ${k}`);
    assert.match(e.unique_id || '', UUID, 'env unique_id');
    assert.equal(e.unique_id, p.pm2_env.unique_id, 'the same unique_id as jlist');
    assert.equal(e.PATH, process.env.PATH, 'the shell PATH is passed on');
  });

  test('a .py script runs with python3', async (t) => {
    const { dir, home } = h.useHome(t);
    const dump = path.join(dir, 'py.json');
    await ok(['start', ENV_DUMP_PY, '--name', 'py', '--', dump, 'q'], { home });
    const d = await h.waitFor(() => h.readJson(dump), { message: dump });
    const p = await h.proc(home, 'py');
    assert.equal(d.pid, p.pid);
    const argv = h.cmdline(p.pid);
    assert.match(path.basename(argv[0]), /^python3/, `argv ${JSON.stringify(argv)}`);
    assert.equal(argv[1], ENV_DUMP_PY);
    assert.deepEqual(d.argv, [ENV_DUMP_PY, dump, 'q']);
    assert.equal(d.env.pm_id, '0');
    assert.equal(d.env.name, 'py');
    assert.equal(d.env.PYTHONUNBUFFERED, '1', 'PM2 sets PYTHONUNBUFFERED for python');
    assert.equal(p.pm2_env.exec_interpreter, 'python3');
  });

  test('a .sh script runs with bash', async (t) => {
    const { home } = h.useHome(t);
    const p = await startApp(home, 'shell', IDLE_SH);
    const argv = h.cmdline(p.pid);
    assert.equal(path.basename(argv[0]), 'bash', `argv ${JSON.stringify(argv)}`);
    assert.equal(argv[1], IDLE_SH);
    assert.equal(p.pm2_env.exec_interpreter, 'bash');
    const out = path.join(home, 'logs', 'shell-out.log');
    await h.waitFor(() => /bash=\d/.test(fs.readFileSync(out, 'utf8')), { message: `bash banner in ${out}` });
  });

  test('an executable file runs directly (its shebang, no interpreter)', async (t) => {
    const { home } = h.useHome(t);
    const p = await startApp(home, 'binary', EXEC_BIN);
    const argv = h.cmdline(p.pid);
    assert.deepEqual(argv.slice(0, 2), ['/bin/sh', EXEC_BIN], `argv ${JSON.stringify(argv)}`);
    assert.equal(p.pm2_env.exec_interpreter, 'none');
  });

  test('--interpreter runs the script with the given interpreter', async (t) => {
    const { dir, home } = h.useHome(t);
    const tool = path.join(dir, 'tool'); // no extension, not executable: without --interpreter it would be node
    fs.writeFileSync(tool, 'import time\nprint("tool under python")\nwhile True:\n    time.sleep(1)\n');
    const p = await startApp(home, 'tool', tool, ['--interpreter', 'python3']);
    assert.equal(p.pm2_env.exec_interpreter, 'python3');
    const out = path.join(home, 'logs', 'tool-out.log');
    // python3 may be a launcher (pyenv shim) that execs the real interpreter: wait until the script runs.
    await h.waitFor(() => fs.readFileSync(out, 'utf8').includes('tool under python'), { message: out });
    const argv = h.cmdline(p.pid);
    assert.match(path.basename(argv[0]), /^python3/, `argv ${JSON.stringify(argv)}`);
    assert.equal(argv[1], tool);
  });

  // 9 ------------------------------------------------------------------------------------------------
  test('stop: an app ignoring SIGINT gets SIGINT, then SIGKILL after --kill-timeout 500', async (t) => {
    const { dir, home } = h.useHome(t);
    const ready = path.join(dir, 'ready');
    const p = await startApp(home, 'stubborn', IGNORE_SIGINT, ['--kill-timeout', '500', '--', ready]);
    await h.waitFor(() => fs.existsSync(ready), { message: 'handlers installed' });
    assert.equal(p.pm2_env.kill_timeout, 500);
    await ok(['stop', 'stubborn'], { home });
    const s = await h.proc(home, 'stubborn');
    assert.equal(s.pm2_env.status, 'stopped');
    assert.equal(s.pid, 0);
    await h.waitFor(() => !h.isAlive(p.pid), { timeout: 5000, message: `pid ${p.pid} gone` });
    const out = path.join(home, 'logs', 'stubborn-out.log');
    await h.waitFor(() => fs.readFileSync(out, 'utf8').includes('got SIGINT, ignoring'),
      { message: 'SIGINT was sent first' });
    assert.ok(!fs.existsSync(path.join(home, 'pids', 'stubborn-0.pid')), 'the pid file is removed on stop');
  });

  test('stop: an app that handles SIGINT and exits 0 is stopped cleanly', async (t) => {
    const { dir, home } = h.useHome(t);
    const marker = path.join(dir, 'marker');
    const p = await startApp(home, 'polite', GRACEFUL, ['--', marker]);
    await h.waitFor(() => fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === 'ready', { message: 'ready' });
    await ok(['stop', 'polite'], { home });
    assert.equal(fs.readFileSync(marker, 'utf8'), 'SIGINT', 'the app received SIGINT and ran its handler');
    const s = await h.proc(home, 'polite');
    assert.equal(s.pm2_env.status, 'stopped');
    assert.equal(s.pid, 0);
    await h.waitFor(() => !h.isAlive(p.pid), { timeout: 5000, message: `pid ${p.pid} gone` });
  });

  test('stop: the app\'s own children (same process group) are gone after stop', async (t) => {
    const { dir, home } = h.useHome(t);
    const info = path.join(dir, 'children.json');
    const p = await startApp(home, 'parent', SPAWN_CHILD, ['--kill-timeout', '800', '--', info]);
    const d = await h.waitFor(() => h.readJson(info), { message: info });
    assert.equal(d.pid, p.pid);
    for (const c of d.children) {
      assert.ok(h.isAlive(c), `grandchild ${c} runs`);
      assert.equal(h.procStat(c).pgid, p.pid, 'grandchild is in the app\'s process group');
    }
    assert.equal(h.procStat(p.pid).pgid, p.pid, 'the app leads its own process group');
    await ok(['stop', 'parent'], { home });
    for (const pid of [p.pid, ...d.children]) {
      await h.waitFor(() => !h.isAlive(pid), { timeout: 5000, message: `pid ${pid} gone after stop` });
    }
  });

  test('the daemon answers while an app is being stopped (status stopping)', async (t) => {
    const { dir, home } = h.useHome(t);
    const ready = path.join(dir, 'ready');
    const p = await startApp(home, 'slow', IGNORE_SIGINT, ['--kill-timeout', '4000', '--', ready]);
    await h.waitFor(() => fs.existsSync(ready), { message: 'handlers installed' });
    const stopping = h.rpm2(['stop', 'slow'], { home });
    const seen = await h.waitForProc(home, 'slow', (x) => x.pm2_env.status === 'stopping',
      { interval: 50, timeout: 3500, message: 'stopping while the stop is in progress' });
    assert.equal(seen.pm_id, 0);
    assert.match((await ok(['ping'], { home })).stdout, /pong/);
    const r = await stopping;
    assert.equal(r.code, 0, h.show(r));
    const s = await h.proc(home, 'slow');
    assert.equal(s.pm2_env.status, 'stopped');
    await h.waitFor(() => !h.isAlive(p.pid), { timeout: 5000, message: 'gone' });
  });

  test('stop cancels a pending restart ("waiting restart" -> stopped for good)', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'pending', '--restart-delay', '2000', '--', '1'], { home });
    const w = await h.waitForProc(home, 'pending', (x) => x.pm2_env.status === 'waiting restart',
      { interval: 50, message: 'waiting restart' });
    await ok(['stop', 'pending'], { home });
    let s = await h.proc(home, 'pending');
    assert.equal(s.pm2_env.status, 'stopped');
    assert.equal(s.pid, 0);
    await h.sleep(2500);
    s = await h.proc(home, 'pending');
    assert.equal(s.pm2_env.status, 'stopped', 'the pending restart was cancelled');
    assert.equal(s.pm2_env.restart_time, w.pm2_env.restart_time, 'no restart happened');
    assert.equal(s.pid, 0);
  });

  test('the daemon does not leak file descriptors across restarts and crashes', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'fdapp');
    const daemon = h.daemonPid(home);
    const fds = () => fs.readdirSync(`/proc/${daemon}/fd`).length;
    const before = fds();
    for (let i = 0; i < 15; i++) await ok(['restart', 'fdapp'], { home });
    // A crash loop to errored: 16 spawns and exits.
    await ok(['start', EXIT_SH, '--name', 'fdloop'], { home });
    await h.waitForProc(home, 'fdloop', (x) => x.pm2_env.status === 'errored', { timeout: 30000, message: 'errored' });
    await ok(['delete', 'fdloop'], { home });
    const p = await h.proc(home, 'fdapp');
    assert.equal(p.pm2_env.restart_time, 15);
    // Client connections close when each command ends; allow a little slack for one in flight.
    await h.waitFor(() => fds() <= before + 2, { timeout: 5000, message: `daemon fds back to ~${before}` })
      .catch((e) => assert.fail(`${e.message}: ${fds()} open now, ${before} before`));
  });

  // 10 -----------------------------------------------------------------------------------------------
  test('restart keeps the stored environment; restart --update-env takes the new shell environment', async (t) => {
    const { dir, home } = h.useHome(t);
    const dump = path.join(dir, 'env.json');
    await ok(['start', ENV_DUMP, '--name', 'envapp', '--', dump], { home, env: { RPM2_TEST_VAR: 'one' } });
    let d = await h.waitFor(() => h.readJson(dump), { message: dump });
    assert.equal(d.env.RPM2_TEST_VAR, 'one');
    let pid = d.pid;

    fs.unlinkSync(dump);
    await ok(['restart', 'envapp'], { home, env: { RPM2_TEST_VAR: 'two' } });
    d = await h.waitFor(() => h.readJson(dump), { message: `${dump} after restart` });
    assert.notEqual(d.pid, pid, 'a new process');
    assert.equal(d.env.RPM2_TEST_VAR, 'one', 'restart keeps the stored env');
    pid = d.pid;

    fs.unlinkSync(dump);
    await ok(['restart', 'envapp', '--update-env'], { home, env: { RPM2_TEST_VAR: 'two' } });
    d = await h.waitFor(() => h.readJson(dump), { message: `${dump} after restart --update-env` });
    assert.notEqual(d.pid, pid, 'a new process');
    assert.equal(d.env.RPM2_TEST_VAR, 'two', '--update-env takes the new value');
    assert.equal(d.env.restart_time, '2', 'restart_time seen by the app');
  });

  // 11 -----------------------------------------------------------------------------------------------
  test('kill stops every app and the daemon', async (t) => {
    const { home } = h.useHome(t);
    const a = await startApp(home, 'node-app');
    const b = await startApp(home, 'bash-app', IDLE_SH);
    const daemon = h.daemonPid(home);
    assert.ok(h.isAlive(daemon));
    await ok(['kill'], { home });
    for (const pid of [a.pid, b.pid, daemon]) {
      await h.waitFor(() => !h.isAlive(pid), { timeout: 5000, message: `pid ${pid} gone after kill` });
    }
    assert.ok(!fs.existsSync(path.join(home, 'rpc.sock')), 'the socket is removed');
    assert.deepEqual(h.pidsOfHome(home), [], 'nothing of this home runs');
    // kill with no daemon running succeeds and starts none.
    await ok(['kill'], { home });
    assert.ok(!fs.existsSync(path.join(home, 'rpc.sock')));
    assert.deepEqual(h.daemonPids(home), []);
  });

  test('ping answers pong, starting the daemon when needed', async (t) => {
    const { home } = h.useHome(t);
    const r = await ok(['ping'], { home });
    assert.match(r.stdout, /\{ msg: 'pong' \}/);
    assert.ok(fs.existsSync(path.join(home, 'rpc.sock')));
    const daemon = h.daemonPid(home);
    assert.ok(h.isAlive(daemon));
    const st = h.procStat(daemon);
    assert.equal(st.sid, daemon, 'the daemon runs detached in its own session');
    assert.ok(h.cmdline(daemon).includes('--daemon'), `daemon argv ${h.cmdline(daemon)}`);
    const r2 = await ok(['ping'], { home });
    assert.match(r2.stdout, /pong/);
    assert.equal(h.daemonPid(home), daemon, 'the second ping uses the same daemon');
  });

  // 12 -----------------------------------------------------------------------------------------------
  test('concurrent first commands on a fresh home end with exactly one daemon', async (t) => {
    const rounds = [['ping', 'ping'], ['ping', 'ping'], ['ping', 'ping'], ['ping', 'list', 'jlist', 'ping']];
    for (const cmds of rounds) {
      const { home } = h.useHome(t);
      const rs = await Promise.all(cmds.map((c) => h.rpm2([c], { home })));
      rs.forEach((r, i) => assert.equal(r.code, 0, `${cmds[i]}\n${h.show(r)}`));
      const daemons = h.daemonPids(home);
      assert.equal(daemons.length, 1, `exactly one daemon: ${daemons}`);
      assert.equal(h.daemonPid(home), daemons[0], 'rpm2d.pid names it');
      const r = await ok(['ping'], { home });
      assert.match(r.stdout, /pong/);
      assert.deepEqual(h.daemonPids(home), daemons, 'still the same single daemon');
    }
  });

  // 13 -----------------------------------------------------------------------------------------------
  test('persistence: a SIGKILLed daemon is replaced by one that knows every app; nothing runs twice', async (t) => {
    const { home } = h.useHome(t);
    const k = await startApp(home, 'keeper');
    const ksh = await startApp(home, 'keeper-sh', IDLE_SH); // non-node apps outlive their daemon (PM2 quirk 12)
    await startApp(home, 'parked');
    await ok(['stop', 'parked'], { home });
    const d1 = h.daemonPid(home);
    assert.ok(h.isAlive(d1));
    // Let the app table reach the disk, then kill the daemon hard.
    await h.sleep(1000); // let the app table reach the disk
    process.kill(d1, 'SIGKILL');
    await h.waitFor(() => !h.isAlive(d1), { message: 'daemon dead' });
    assert.ok(fs.existsSync(path.join(home, 'rpc.sock')), 'a stale socket is left behind');

    const r = await ok(['list'], { home });
    const d2 = h.daemonPid(home);
    assert.notEqual(d2, d1);
    assert.ok(h.isAlive(d2), 'a new daemon runs');
    assert.deepEqual(h.daemonPids(home), [d2]);
    const rows = h.parseTable(r.stdout).rows;
    assert.ok(rows.some((x) => x['App name'] === 'keeper' && x.id === '0'), `keeper is listed with id 0\n${r.stdout}`);

    const p = await h.waitForProc(home, 'keeper', (x) => x.pm2_env.status === 'online' && x.pid > 0,
      { message: 'keeper online again' });
    assert.equal(p.pm_id, 0);
    const parked = await h.proc(home, 'parked');
    assert.equal(parked.pm_id, 2);
    assert.equal(parked.pm2_env.status, 'stopped', 'a stopped app stays stopped');
    const live = await h.waitFor(() => {
      const pids = h.pidsOfHome(home, (env, pid) => env.name === 'keeper' && env.pm_id === '0' && h.cmdline(pid).includes(IDLE));
      return pids.length === 1 ? pids : undefined;
    }, { message: 'exactly one live keeper process' });
    assert.deepEqual(live, [p.pid], 'the one keeper process is the listed one');
    if (live[0] !== k.pid) assert.ok(!h.isAlive(k.pid), 'the orphan was stopped');
    const psh = await h.waitForProc(home, 'keeper-sh', (x) => x.pm2_env.status === 'online' && x.pid > 0,
      { message: 'keeper-sh online again' });
    assert.equal(psh.pm_id, 1);
    const liveSh = await h.waitFor(() => {
      const pids = h.pidsOfHome(home, (env, pid) => env.name === 'keeper-sh' && env.pm_id === '1' && h.cmdline(pid).includes(IDLE_SH));
      return pids.length === 1 ? pids : undefined;
    }, { message: 'exactly one live keeper-sh process (the bash orphan was not left running)' });
    assert.deepEqual(liveSh, [psh.pid]);
    if (psh.pid !== ksh.pid) assert.ok(!h.isAlive(ksh.pid), 'the bash orphan was stopped');
    // The id counter survived too.
    const n = await startApp(home, 'next');
    assert.equal(n.pm_id, 3);
  });

  test('persistence: an errored app is still errored (not stopped) after the daemon is replaced', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', EXIT, '--name', 'broken', '--max-restarts', '2', '--min-uptime', '5000', '--', '1'], { home });
    await h.waitForProc(home, 'broken', (x) => x.pm2_env.status === 'errored', { message: 'errored' });
    await h.sleep(1000); // let the app table reach the disk (written within ms of a change)
    const d1 = h.daemonPid(home);
    process.kill(d1, 'SIGKILL');
    await h.waitFor(() => !h.isAlive(d1), { message: 'daemon dead' });
    await ok(['ping'], { home });
    const p = await h.proc(home, 'broken');
    assert.equal(p.pm2_env.status, 'errored');
    assert.equal(p.pm2_env.restart_time, 1);
  });

  test('kill after the daemon died still stops every app (the persisted table knows them)', async (t) => {
    const { home } = h.useHome(t);
    const a = await startApp(home, 'orphan-js');
    const b = await startApp(home, 'orphan-sh', IDLE_SH);
    await h.sleep(1000); // let the app table reach the disk (written within ms of a change)
    const d1 = h.daemonPid(home);
    process.kill(d1, 'SIGKILL');
    await h.waitFor(() => !h.isAlive(d1), { message: 'daemon dead' });
    await ok(['kill'], { home });
    for (const pid of [a.pid, b.pid]) {
      await h.waitFor(() => !h.isAlive(pid), { timeout: 5000, message: `app pid ${pid} stopped by kill` });
    }
    assert.deepEqual(h.daemonPids(home), [], 'no daemon after kill');
    // The next daemon does not bring the killed apps back.
    assert.deepEqual(await h.jlist(home), [], 'the table is empty after kill');
  });

  test('jlist prints only JSON, even when it has to start the daemon', async (t) => {
    const { home } = h.useHome(t);
    const r = await ok(['jlist'], { home });
    assert.deepEqual(JSON.parse(r.stdout), [], `stdout is JSON:\n${r.stdout}`);
    // After a daemon crash too (the usual case for a monitoring script).
    await startApp(home, 'watched');
    await h.sleep(1000); // let the app table reach the disk
    const d1 = h.daemonPid(home);
    process.kill(d1, 'SIGKILL');
    await h.waitFor(() => !h.isAlive(d1), { message: 'daemon dead' });
    const r2 = await ok(['jlist'], { home });
    assert.equal(JSON.parse(r2.stdout)[0].name, 'watched', `stdout is JSON:\n${r2.stdout}`);
  });

  test('concurrent starts: different names all start; the same name starts once', async (t) => {
    const { home } = h.useHome(t);
    const rs = await Promise.all(['p', 'q', 'r'].map((n) => h.rpm2(['start', IDLE, '--name', n], { home })));
    rs.forEach((r) => assert.equal(r.code, 0, h.show(r)));
    const list = await h.jlist(home);
    assert.deepEqual(list.map((p) => p.pm_id).sort(), [0, 1, 2]);
    assert.deepEqual(list.map((p) => p.name).sort(), ['p', 'q', 'r']);
    assert.ok(list.every((p) => p.pm2_env.status === 'online'));
    assert.deepEqual(h.daemonPids(home).length, 1);
  });

  test('concurrent starts of the same name: one starts it, the other is refused (no restart of the first)', async (t) => {
    const { home } = h.useHome(t);
    await ok(['ping'], { home });
    // The race window is a few ms wide: several rounds of three make it show up reliably.
    for (const name of ['twin1', 'twin2', 'twin3', 'twin4', 'twin5', 'twin6']) {
      const rs = await Promise.all([0, 1, 2].map(() => h.rpm2(['start', IDLE, '--name', name], { home })));
      const winners = rs.filter((r) => r.code === 0);
      assert.equal(winners.length, 1, `exactly one start succeeds:\n${rs.map(h.show).join('\n')}`);
      for (const loser of rs.filter((r) => r.code !== 0)) assertOneLineError(loser, [name], 'a losing concurrent start');
      const list = (await h.jlist(home)).filter((p) => p.name === name);
      assert.equal(list.length, 1);
      assert.equal(list[0].pm2_env.restart_time, 0, 'the first copy was not restarted');
    }
  });

  // 14 -----------------------------------------------------------------------------------------------
  test('bad input: a script that does not exist', async (t) => {
    const ctx = await withBystander(t);
    const missing = path.join(ctx.dir, 'nope.js');
    const r = await h.rpm2(['start', missing], { home: ctx.home });
    assertOneLineError(r, ['nope.js'], 'start nope.js');
    await assertUntouched(ctx);
  });

  test('bad input: unknown id or name', async (t) => {
    const ctx = await withBystander(t);
    for (const cmd of ['stop', 'restart', 'delete']) {
      assertOneLineError(await h.rpm2([cmd, '99'], { home: ctx.home }), ['99'], `${cmd} 99`);
      assertOneLineError(await h.rpm2([cmd, 'nosuch'], { home: ctx.home }), ['nosuch'], `${cmd} nosuch`);
    }
    assertOneLineError(await h.rpm2(['show', 'nosuch'], { home: ctx.home }), ['nosuch'], 'show nosuch');
    // A valid target next to an unknown one: nothing is done.
    assertOneLineError(await h.rpm2(['stop', 'bystander', 'nosuch'], { home: ctx.home }), ['nosuch'], 'stop bystander nosuch');
    await assertUntouched(ctx);
  });

  test('bad input: start of an app that is already running is refused; -f starts a second copy', async (t) => {
    const ctx = await withBystander(t);
    const r = await h.rpm2(['start', IDLE, '--name', 'bystander'], { home: ctx.home });
    assertOneLineError(r, ['bystander', '-f'], 'start of a running app');
    await assertUntouched(ctx);
    await ok(['start', IDLE, '--name', 'bystander', '-f'], { home: ctx.home });
    const copies = await h.waitFor(async () => {
      const l = (await h.jlist(ctx.home)).filter((p) => p.name === 'bystander' && p.pm2_env.status === 'online');
      return l.length === 2 ? l : undefined;
    }, { message: 'two online copies' });
    assert.deepEqual(copies.map((p) => p.pm_id).sort(), [0, 1]);
    // NODE_APP_INSTANCE is a per-name index (PM2's injectVariables): the copy is instance 1.
    assert.deepEqual(copies.map((p) => p.pm2_env.NODE_APP_INSTANCE).sort(), [0, 1]);
    assert.ok(copies.some((p) => p.pid === ctx.bystander.pid), 'the first copy kept its pid');
  });

  test('start of a known name restarts it (PM2); start of a stopped app starts it again', async (t) => {
    const { home } = h.useHome(t);
    const a = await startApp(home, 'again');
    const r = await ok(['start', 'again'], { home });
    assert.ok(h.parseTable(r.stdout).rows.some((x) => x['App name'] === 'again'), r.stdout);
    const b = await h.waitForProc(home, 'again', (x) => x.pm2_env.status === 'online' && x.pid !== a.pid,
      { message: 'restarted by start <name>' });
    assert.equal(b.pm2_env.restart_time, 1);
    assert.equal(b.pm_id, 0);
    await ok(['stop', 'again'], { home });
    await ok(['start', IDLE, '--name', 'again'], { home });
    const c = await h.waitForProc(home, 'again', (x) => x.pm2_env.status === 'online', { message: 'online again' });
    assert.equal(c.pm_id, 0, 'the same process entry, not a new one');
    assert.equal((await h.jlist(home)).length, 1);
  });

  test('bad input: nothing to act on (stop all on an empty table), unknown command', async (t) => {
    const { home } = h.useHome(t);
    await ok(['ping'], { home });
    for (const cmd of ['stop', 'restart', 'delete']) {
      const r = await h.rpm2([cmd, 'all'], { home });
      // PM2: `[PM2][WARN] No process found`, exit 1.
      assertOneLineError(r, [], `${cmd} all with no process`);
    }
    const r = await h.rpm2(['no-such-command'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.ok(r.stderr.includes('no-such-command'), h.show(r));
  });

  test('bad input: an interpreter that is not installed', async (t) => {
    const ctx = await withBystander(t);
    const r = await h.rpm2(['start', IDLE, '--name', 'x', '--interpreter', 'nope-xyz'], { home: ctx.home });
    assertOneLineError(r, ['nope-xyz'], '--interpreter nope-xyz');
    await assertUntouched(ctx);
  });

  test('bad input: --kill-timeout that is not a number', async (t) => {
    const ctx = await withBystander(t);
    const r = await h.rpm2(['start', IDLE, '--name', 'x', '--kill-timeout', 'abc'], { home: ctx.home });
    assertOneLineError(r, ['abc', 'kill-timeout'], '--kill-timeout abc');
    await assertUntouched(ctx);
  });

  test('bad input: other numeric options that are not numbers', async (t) => {
    const ctx = await withBystander(t);
    const cases = [
      [['--restart-delay', 'x1'], ['restart-delay', 'x1']],
      [['--exp-backoff-restart-delay', '1.5'], ['exp-backoff-restart-delay', '1.5']],
      [['--max-restarts', 'abc'], ['max-restarts', 'abc']],
      [['--min-uptime', 'soon'], ['min', 'soon']],
    ];
    for (const [flags, needles] of cases) {
      const r = await h.rpm2(['start', IDLE, '--name', 'x', ...flags], { home: ctx.home });
      assertOneLineError(r, needles, flags.join(' '));
    }
    await assertUntouched(ctx);
  });

  test('bad input: negative numbers get the same one-line error; --max-restarts is not "milliseconds"', async (t) => {
    const ctx = await withBystander(t);
    for (const flags of [['--kill-timeout', '-5'], ['--max-restarts', '-1'], ['--restart-delay', '-100']]) {
      const r = await h.rpm2(['start', IDLE, '--name', 'x', ...flags], { home: ctx.home });
      assertOneLineError(r, [flags[0].slice(2), flags[1]], flags.join(' '));
    }
    const r = await h.rpm2(['start', IDLE, '--name', 'x', '--max-restarts', 'abc'], { home: ctx.home });
    assertOneLineError(r, ['max-restarts', 'abc'], '--max-restarts abc');
    assert.doesNotMatch(r.stderr, /millisecond/, 'a restart count is not a duration');
    await assertUntouched(ctx);
  });

  test('bad input: a daemon that cannot start says why (with the path of its log)', async (t) => {
    const { dir, home } = h.mkHome();
    const home2 = path.join(dir, 'home2');
    t.after(async () => {
      await h.cleanup(home2, { keep: true });
      await h.cleanup(home);
    });
    // RPM2_HOME under a regular file: the home cannot even be created.
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const under = path.join(file, 'home');
    const r = await h.rpm2(['ping'], { home: under });
    assertOneLineError(r, [under], 'RPM2_HOME under a file');
    // A home where the socket cannot be bound (rpc.sock is a directory): the daemon itself fails.
    fs.mkdirSync(path.join(home2, 'rpc.sock'), { recursive: true, mode: 0o700 });
    const r2 = await h.rpm2(['ping'], { home: home2 });
    assertOneLineError(r2, [path.join(home2, 'rpc.sock'), path.join(home2, 'rpm2.log')], 'socket cannot be bound');
    // The failed daemon process exits right after reporting (it may outlive the CLI by a few ms).
    await h.waitFor(() => h.daemonPids(home2).length === 0, { timeout: 5000, message: 'no daemon left running' });
  });

  test('bad input: an RPM2_HOME that is not writable', async (t) => {
    const { dir } = h.useHome(t);
    const homes = [];
    // As root every directory is writable: a regular file stands for an unusable home.
    const file = path.join(dir, 'home-is-a-file');
    fs.writeFileSync(file, '');
    homes.push(file);
    if (process.getuid && process.getuid() !== 0) {
      const ro = path.join(dir, 'read-only');
      fs.mkdirSync(ro, { mode: 0o500 });
      homes.push(ro);
    }
    for (const home of homes) {
      for (const args of [['ping'], ['list'], ['start', IDLE]]) {
        const r = await h.rpm2(args, { home });
        assertOneLineError(r, [home], `${args[0]} with RPM2_HOME=${home}`);
      }
    }
  });

  test('RPM2_HOME defaults to ~/.rpm2 (created 0700)', async (t) => {
    const { dir } = h.mkHome();
    const fakeHome = path.join(dir, 'user');
    fs.mkdirSync(fakeHome);
    const home = path.join(fakeHome, '.rpm2');
    t.after(async () => {
      await h.cleanup(home, { keep: true });
      await h.cleanup(path.join(dir, 'home'));
    });
    const r = await h.rpm2(['ping'], { env: { RPM2_HOME: undefined, HOME: fakeHome } });
    assert.equal(r.code, 0, h.show(r));
    assert.ok(fs.existsSync(path.join(home, 'rpc.sock')), `${home}/rpc.sock`);
    assert.equal((fs.statSync(home).mode & 0o777).toString(8), '700');
    assert.equal(h.procEnv(h.daemonPid(home)).RPM2_HOME, home, 'the daemon knows its home');
  });

  // 15 -----------------------------------------------------------------------------------------------
  test('security: RPM2_HOME is 0700 and rpc.sock is 0600', async (t) => {
    const { dir, home } = h.mkHome();
    const open = path.join(dir, 'open-home');
    t.after(async () => {
      await h.cleanup(open, { keep: true });
      await h.cleanup(home);
    });
    await ok(['ping'], { home });
    const hs = fs.statSync(home);
    assert.ok(hs.isDirectory());
    assert.equal((hs.mode & 0o777).toString(8), '700', 'home mode');
    const ss = fs.statSync(path.join(home, 'rpc.sock'));
    assert.ok(ss.isSocket());
    assert.equal((ss.mode & 0o777).toString(8), '600', 'socket mode');
    // An existing home that others can read is tightened.
    fs.mkdirSync(open, { mode: 0o755 });
    fs.chmodSync(open, 0o755);
    await ok(['ping'], { home: open });
    assert.equal((fs.statSync(open).mode & 0o777).toString(8), '700', 'existing home tightened to 0700');
    assert.equal((fs.statSync(path.join(open, 'rpc.sock')).mode & 0o777).toString(8), '600');
  });

  test('security: the daemon refuses a connection from another user', { skip: process.getuid() !== 0 && 'needs root to run a client as nobody' }, async (t) => {
    const { dir, home } = h.useHome(t);
    await ok(['ping'], { home });
    // Open the path to the socket (the 0700 home is what normally keeps others out) to reach the peer check.
    fs.chmodSync(dir, 0o711);
    fs.chmodSync(home, 0o711);
    fs.chmodSync(path.join(home, 'rpc.sock'), 0o666);
    const client = `
      const s = require('net').connect(process.argv[1]);
      let data = '';
      let connected = false;
      s.on('connect', () => (connected = true) && s.write(JSON.stringify({id: 1, method: 'hello', params: {protocol: 1}}) + '\\n' +
        JSON.stringify({id: 2, method: 'list', params: {}}) + '\\n'));
      s.on('data', (d) => { data += d; });
      s.on('error', (e) => { console.log(JSON.stringify({error: e.code, connected, data})); process.exit(0); });
      s.on('close', () => { console.log(JSON.stringify({closed: true, connected, data})); process.exit(0); });
      setTimeout(() => { console.log(JSON.stringify({timeout: true, connected, data})); process.exit(0); }, 5000);`;
    const { execFileSync } = require('node:child_process');
    const out = execFileSync(process.execPath, ['-e', client, path.join(home, 'rpc.sock')],
      { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 15000 });
    const res = JSON.parse(out.trim().split('\n').pop());
    assert.equal(res.connected, true, `the other user could reach the socket (test set-up): ${out}`);
    assert.equal(res.data, '', `no answer to another uid: ${out}`);
    assert.ok(h.isAlive(h.daemonPid(home)), 'the daemon survives');
    assert.match((await ok(['ping'], { home })).stdout, /pong/);
  });

  test('stop cuts into a --wait-ready wait: no waiting for listen_timeout', async (t) => {
    const { home } = h.useHome(t);
    // IDLE never sends 'ready': without the cut-in, stop would wait the 20 s listen_timeout.
    const starting = h.rpm2(['start', IDLE, '--name', 'slow', '--wait-ready', '--listen-timeout', '20000'], { home });
    const launching = await h.waitForProc(home, 'slow', (p) => p.pm2_env.status === 'launching' && p.pid > 0,
      { message: 'status launching while waiting for ready' });
    const t0 = Date.now();
    const r = await h.rpm2(['stop', 'slow'], { home });
    const took = Date.now() - t0;
    assert.equal(r.code, 0, h.show(r));
    assert.ok(took < 8000, `stop returned after ${took} ms, not after listen_timeout`);
    const p = await h.proc(home, 'slow');
    assert.equal(p.pm2_env.status, 'stopped');
    await h.waitFor(() => !h.isAlive(launching.pid), { message: 'the launching process is gone' });
    // The interrupted start ends too, saying why.
    const s = await starting;
    assert.ok(Date.now() - t0 < 8000, `the start command ended with the stop\n${h.show(s)}`);
    assert.notEqual(s.code, 0, h.show(s));
    assert.match(s.stderr, /stopped before it was ready/, h.show(s));
  });
});
