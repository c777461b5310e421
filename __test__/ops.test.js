'use strict';
// End-to-end tests of operations (issue 9): save/resurrect round trip and the dump's faults, secrets
// hidden in show/jlist, daemon crash recovery under 10 apps, `rpm2 update`, the systemd unit of
// `startup`, rpm2-runtime as PID 1 in a new PID namespace, and importing a real PM2 dump.
// Real bin/rpm2, real daemon, fixtures eco-app.js and ops-*; one temporary RPM2_HOME per test.
//   node --test __test__/ops.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync, execFile } = require('node:child_process');
const h = require('./helpers');
const { ok, jlistEnv } = h;

const APP = h.fixture('eco-app.js');
const ZOMBIE = h.fixture('ops-zombie.js');
const EXIT2 = h.fixture('ops-exit.js');
const RUNTIME = path.join(h.ROOT, 'bin', 'rpm2-runtime');
const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');

// ---------------------------------------------------------------------------------------------------
// Helpers

function setup(t) {
  const env = h.useHome(t, 'rpm2-ops-');
  const out = path.join(env.dir, 'out');
  fs.mkdirSync(out);
  return { ...env, out };
}

/** Starts eco-app.js as `name` (extra flags, then `-- args`), waits until every instance is online. */
async function startApp(home, name, { flags = [], args = [], env = {}, cwd, instances = 1 } = {}) {
  await ok(['start', APP, '--name', name, ...flags, ...(args.length ? ['--', ...args] : [])], { home, env, cwd });
  return h.waitFor(async () => {
    const l = (await h.jlist(home)).filter((p) => p.name === name);
    return l.length === instances && l.every((p) => p.pm2_env.status === 'online' && p.pid > 0) ? l : undefined;
  }, { message: `${instances} online instance(s) of ${name}` });
}

/** The file eco-app.js writes for a process (ECO_OUT set), once written by the process's current pid. */
function childReport(out, p) {
  const f = path.join(out, `${p.name}-${p.pm_id}.json`);
  return h.waitFor(() => {
    const d = h.readJson(f);
    return d && d.pid === p.pid ? d : undefined;
  }, { message: `${f} written by pid ${p.pid}` });
}

/** What a round trip must keep of a process: its declaration and whether it runs. */
function keep(p) {
  const e = p.pm2_env;
  return {
    name: p.name,
    status: e.status,
    exec_mode: e.exec_mode,
    instances: e.instances,
    script: e.pm_exec_path,
    cwd: e.pm_cwd,
    args: e.args,
    node_args: e.node_args,
    kill_timeout: e.kill_timeout,
    max_restarts: e.max_restarts,
    autorestart: e.autorestart,
    env: Object.fromEntries(Object.entries(e.env || {}).filter(([k]) => k.startsWith('ECO_')).sort()),
  };
}

function byNameThenInstance(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : (a.pm2_env.NODE_APP_INSTANCE || 0) - (b.pm2_env.NODE_APP_INSTANCE || 0);
}

/** Polls until the list has `count` processes and `pred(list)` holds. */
function waitList(home, count, pred = () => true, message = `${count} processes`) {
  let last;
  return h.waitFor(async () => {
    const l = await h.jlist(home);
    last = l.map((p) => [p.name, p.pm_id, p.pid, p.pm2_env.status]);
    return l.length === count && pred(l) ? l : undefined;
  }, { message, timeout: 30000 }).catch((e) => {
    e.message += `\nlast list: ${JSON.stringify(last)}`;
    throw e;
  });
}

const online = (p) => p.pm2_env.status === 'online' && p.pid > 0;

function mode(file) {
  return fs.statSync(file).mode & 0o777;
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Live host pids whose parent is `ppid` (from the host's /proc). */
function childrenOf(ppid) {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = h.procStat(Number(e));
    if (st && st.ppid === ppid) out.push({ pid: Number(e), state: st.state, argv: h.cmdline(Number(e)) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------

describe('operations (issue 9)', { concurrency: 3 }, () => {
  // ---- save / resurrect ----------------------------------------------------------------------------

  test('save, kill, resurrect: env and options intact, stopped apps stay stopped', async (t) => {
    const { home, dir, out } = setup(t);
    const work = path.join(dir, 'work');
    fs.mkdirSync(work);
    await startApp(home, 'rt-fork', {
      flags: ['--kill-timeout', '2500', '--max-restarts', '4', '--cwd', work, '--node-args', '--max-old-space-size=180'],
      args: ['x', 'y z'],
      env: { ECO_OUT: out, ECO_SECRET: 's3cret value' },
    });
    await startApp(home, 'rt-cluster', { flags: ['-i', '2', '--kill-timeout', '1900'], env: { ECO_OUT: out, ECO_C: 'cluster-var' }, instances: 2 });
    await startApp(home, 'rt-stopped', { flags: ['--max-restarts', '2', '--no-autorestart'], env: { ECO_OUT: out, ECO_ST: 'st' } });
    await ok(['stop', 'rt-stopped'], { home });
    await h.waitForProc(home, 'rt-stopped', (p) => p.pm2_env.status === 'stopped');
    const before = (await jlistEnv(home)).sort(byNameThenInstance).map(keep);
    assert.deepEqual(before.map((p) => [p.name, p.status]),
      [['rt-cluster', 'online'], ['rt-cluster', 'online'], ['rt-fork', 'online'], ['rt-stopped', 'stopped']]);

    const s = await ok(['save'], { home });
    assert.match(s.stdout + s.stderr, /dump\.rpm2/, h.show(s));
    await ok(['kill'], { home });
    await h.waitFor(() => h.pidsOfHome(home).length === 0, { message: 'nothing of the home runs after kill' });

    // Resurrect from a shell that no longer has ECO_SECRET / ECO_C: the dump carries them.
    const r = await ok(['resurrect'], { home, env: { ECO_SECRET: undefined, ECO_C: undefined, ECO_OUT: out } });
    assert.match(r.stdout, /dump\.rpm2/, h.show(r));
    const after = await waitList(home, 4, (l) => l.filter(online).length === 3, '3 online and 1 stopped');
    assert.deepEqual((await jlistEnv(home)).sort(byNameThenInstance).map(keep), before);
    // The children really got the saved environment and arguments.
    const fork = after.find((p) => p.name === 'rt-fork');
    const d = await childReport(out, fork);
    assert.equal(d.env.ECO_SECRET, 's3cret value');
    assert.deepEqual(d.argv, ['x', 'y z']);
    assert.equal(d.cwd, work);
    assert.ok(d.execArgv.includes('--max-old-space-size=180'), JSON.stringify(d.execArgv));
    for (const p of after.filter((x) => x.name === 'rt-cluster')) assert.equal((await childReport(out, p)).env.ECO_C, 'cluster-var');
    // A second resurrect starts nothing twice.
    await ok(['resurrect'], { home });
    const again = await h.jlist(home);
    assert.equal(again.length, 4);
    assert.deepEqual(again.map((p) => p.pid).sort(), after.map((p) => p.pid).sort(), 'the same processes');
  });

  test('dump.rpm2 is 0600, .bak keeps the previous dump, an empty list is not saved over a non-empty dump without --force', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'one');
    await ok(['save'], { home });
    const dump = path.join(home, 'dump.rpm2');
    const bak = path.join(home, 'dump.rpm2.bak');
    assert.equal(mode(dump), 0o600, 'dump.rpm2 is private');
    const first = fs.readFileSync(dump, 'utf8');
    assert.deepEqual(JSON.parse(first).apps.map((a) => a.spec.name), ['one']);

    await startApp(home, 'two');
    await ok(['save'], { home });
    assert.equal(mode(dump), 0o600);
    assert.equal(mode(bak), 0o600, 'dump.rpm2.bak is private too');
    assert.equal(fs.readFileSync(bak, 'utf8'), first, '.bak holds the previous dump');
    const second = fs.readFileSync(dump, 'utf8');
    assert.deepEqual(JSON.parse(second).apps.map((a) => a.spec.name).sort(), ['one', 'two']);

    await ok(['delete', 'all'], { home });
    const refused = await h.rpm2(['save'], { home });
    assert.notEqual(refused.code, 0, `an empty save over 2 apps is refused\n${h.show(refused)}`);
    assert.match(refused.stderr, /--force/, h.show(refused));
    assert.equal(fs.readFileSync(dump, 'utf8'), second, 'the dump is untouched');
    assert.equal(fs.readFileSync(bak, 'utf8'), first, 'the .bak is untouched');

    await ok(['save', '--force'], { home });
    assert.deepEqual(JSON.parse(fs.readFileSync(dump, 'utf8')).apps, []);
    assert.equal(fs.readFileSync(bak, 'utf8'), second);
    assert.equal(mode(dump), 0o600);
  });

  test('a corrupt dump.rpm2: resurrect falls back to .bak, says so, and leaves the corrupt file in place', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'from-bak');
    await ok(['save'], { home });
    await ok(['save'], { home }); // .bak = a good dump of from-bak
    await ok(['kill'], { home });
    const corrupt = '{"format": 1, "apps": [{"spec": {"name": "trunc';
    fs.writeFileSync(path.join(home, 'dump.rpm2'), corrupt);
    const r = await ok(['resurrect'], { home });
    assert.match(r.stdout + r.stderr, /dump\.rpm2\.bak/, `says it restores from the .bak\n${h.show(r)}`);
    await h.waitForProc(home, 'from-bak', online);
    assert.equal(fs.readFileSync(path.join(home, 'dump.rpm2'), 'utf8'), corrupt, 'the corrupt dump is left as it was');
    assert.ok(h.isAlive(h.daemonPid(home)), 'the daemon is alive');
  });

  test('a corrupt dump.rpm2: resurrect warns that dump.rpm2 is unreadable before using the .bak', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'from-bak');
    await ok(['save'], { home });
    await ok(['save'], { home });
    await ok(['kill'], { home });
    fs.writeFileSync(path.join(home, 'dump.rpm2'), '{"format": 1, "apps": [');
    const r = await ok(['resurrect'], { home });
    assert.match(r.stderr, /dump\.rpm2\b(?!\.bak)[^\n]*(unreadable|corrupt|invalid|cannot)/i, h.show(r));
  });

  test('a dump from a newer rpm2 ("format": 99) is a clear error; nothing started, the dump untouched', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'future');
    await ok(['save'], { home });
    await ok(['delete', 'all'], { home });
    const dump = path.join(home, 'dump.rpm2');
    const doc = JSON.parse(fs.readFileSync(dump, 'utf8'));
    doc.format = 99;
    const text = JSON.stringify(doc);
    fs.writeFileSync(dump, text);
    const r = await h.rpm2(['resurrect'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    const lines = h.lines(r.stderr);
    assert.equal(lines.length, 1, `one error line\n${h.show(r)}`);
    assert.match(lines[0], /99/, h.show(r));
    assert.match(lines[0], /newer|upgrade/i, h.show(r));
    assert.deepEqual(await h.jlist(home), []);
    assert.equal(fs.readFileSync(dump, 'utf8'), text);
  });

  test('a dump whose script no longer exists: a warning naming it, the other apps restored', async (t) => {
    const { home, dir } = setup(t);
    const gone = path.join(dir, 'gone.js');
    fs.copyFileSync(APP, gone);
    await ok(['start', gone, '--name', 'gone'], { home });
    await startApp(home, 'stays');
    await startApp(home, 'stays-cluster', { flags: ['-i', '2'], instances: 2 });
    await h.waitForProc(home, 'gone', online);
    await ok(['save'], { home });
    await ok(['kill'], { home });
    fs.unlinkSync(gone);
    const r = await ok(['resurrect'], { home });
    const warn = h.lines(r.stderr).filter((l) => /WARN/.test(l));
    assert.equal(warn.length, 1, h.show(r));
    assert.ok(warn[0].includes('gone') && warn[0].includes(gone), `names the app and its script\n${h.show(r)}`);
    const l = await waitList(home, 3, (x) => x.every(online));
    assert.deepEqual(l.map((p) => p.name).sort(), ['stays', 'stays-cluster', 'stays-cluster']);
  });

  test('two `rpm2 resurrect` at once start each app once', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'r1');
    await startApp(home, 'r2');
    await startApp(home, 'r3', { flags: ['-i', '2'], instances: 2 });
    await ok(['save'], { home });
    await ok(['kill'], { home });
    await h.waitFor(() => h.pidsOfHome(home).length === 0, { message: 'all stopped' });
    const [a, b] = await Promise.all([h.rpm2(['resurrect'], { home }), h.rpm2(['resurrect'], { home })]);
    assert.equal(a.code, 0, h.show(a));
    assert.equal(b.code, 0, h.show(b));
    const list = await waitList(home, 4, (x) => x.every(online));
    assert.deepEqual(list.map((p) => p.name).sort(), ['r1', 'r2', 'r3', 'r3']);
    assert.equal(h.daemonPids(home).length, 1, 'one daemon');
    for (const name of ['r1', 'r2', 'r3']) {
      const live = h.pidsOfHome(home, (env, pid) => env.name === name && h.cmdline(pid).some((x) => x.endsWith('eco-app.js')));
      assert.equal(live.length, name === 'r3' ? 2 : 1, `${name}: live processes ${live}`);
    }
  });

  test('the dump records node\'s path and version; resurrect warns when the current node differs', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'nodever');
    await ok(['save'], { home });
    const dump = path.join(home, 'dump.rpm2');
    const doc = JSON.parse(fs.readFileSync(dump, 'utf8'));
    assert.ok(doc.node && path.isAbsolute(doc.node.path), `node path recorded: ${JSON.stringify(doc.node)}`);
    const current = spawnSync('node', ['--version'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(doc.node.version, current);
    await ok(['kill'], { home });
    doc.node.version = 'v0.10.48';
    fs.writeFileSync(dump, JSON.stringify(doc));
    const r = await ok(['resurrect'], { home });
    assert.match(r.stderr, /WARN[^\n]*v0\.10\.48[^\n]*/, h.show(r));
    assert.ok(r.stderr.includes(current), `names the current version too\n${h.show(r)}`);
    await h.waitForProc(home, 'nodever', online);
  });

  test('cleardump removes the saved list (and its .bak); resurrect then says there is nothing saved', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'cleared');
    await ok(['save'], { home });
    await ok(['save'], { home });
    assert.ok(fs.existsSync(path.join(home, 'dump.rpm2.bak')));
    await ok(['cleardump'], { home });
    assert.ok(!fs.existsSync(path.join(home, 'dump.rpm2')));
    assert.ok(!fs.existsSync(path.join(home, 'dump.rpm2.bak')));
    await ok(['kill'], { home });
    const r = await h.rpm2(['resurrect'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, /save/, h.show(r));
    assert.deepEqual(await h.jlist(home), []);
  });

  // ---- secrets -------------------------------------------------------------------------------------

  test('show and jlist hide env values by default and show them with --env', async (t) => {
    const { home } = setup(t);
    const secret = 'hunter2-ops-secret';
    await startApp(home, 'secretive', { env: { ECO_TOKEN: secret } });
    const j = await ok(['jlist'], { home });
    assert.ok(!j.stdout.includes(secret), 'jlist does not print the value');
    const [p] = JSON.parse(j.stdout);
    assert.ok('ECO_TOKEN' in p.pm2_env.env, 'the key is listed');
    assert.ok(Object.values(p.pm2_env.env).every((v) => v !== secret));
    const s = await ok(['show', 'secretive'], { home });
    assert.ok(!s.stdout.includes(secret), `show does not print the value\n${s.stdout}`);
    const pl = await ok(['prettylist'], { home });
    assert.ok(!pl.stdout.includes(secret), 'prettylist does not print the value');

    const je = await ok(['jlist', '--env'], { home });
    assert.equal(JSON.parse(je.stdout)[0].pm2_env.env.ECO_TOKEN, secret);
    const se = await ok(['show', 'secretive', '--env'], { home });
    assert.ok(se.stdout.includes(secret), `show --env prints it\n${se.stdout}`);
  });

  // ---- daemon crash recovery -----------------------------------------------------------------------

  test('SIGKILL of the daemon under 10 apps: the next `rpm2 list` brings all 10 back online, once each; stopped stays stopped', async (t) => {
    const { home } = setup(t);
    const names = Array.from({ length: 10 }, (_, i) => `crash-${i}`);
    for (const n of names) await ok(['start', APP, '--name', n, '-s'], { home });
    await ok(['start', APP, '--name', 'crash-stopped', '-s'], { home });
    await ok(['stop', 'crash-stopped', '-s'], { home });
    const before = await waitList(home, 11, (l) => l.filter(online).length === 10);
    const oldDaemon = h.daemonPid(home);
    assert.ok(h.isAlive(oldDaemon));
    // The daemon persists its table a few ms after each change: let it record the last one (the stop)
    // before the crash, so that the test is about recovery and not about that window.
    await h.waitFor(() => {
      const table = h.readJson(path.join(home, 'apps.json'));
      const apps = (table && table.apps) || [];
      const st = apps.find((a) => a.spec && a.spec.name === 'crash-stopped');
      return apps.length === 11 && st && st.state && st.state.status === 'stopped';
    }, { message: 'apps.json records the 11 apps, crash-stopped as stopped' });

    process.kill(oldDaemon, 'SIGKILL');
    await h.waitFor(() => !h.isAlive(oldDaemon), { message: 'the daemon is dead' });

    const r = await ok(['list'], { home });
    const table = h.parseTable(r.stdout);
    assert.deepEqual(table.rows.map((x) => x['App name']).sort(), [...names, 'crash-stopped'].sort(), r.stdout);
    const after = await waitList(home, 11, (l) => l.filter(online).length === 10, '10 online again');
    const newDaemon = h.daemonPid(home);
    assert.notEqual(newDaemon, oldDaemon);
    assert.deepEqual(h.daemonPids(home), [newDaemon], 'exactly one daemon');
    assert.equal(after.find((p) => p.name === 'crash-stopped').pm2_env.status, 'stopped');
    assert.deepEqual(after.map((p) => p.name).sort(), before.map((p) => p.name).sort());
    const pids = after.filter(online).map((p) => p.pid);
    assert.equal(new Set(pids).size, 10, 'pids are unique');
    assert.ok(pids.every((p) => h.isAlive(p)), 'every listed pid is alive');
    // Exactly one live process per app (a left-over of the old daemon would be a duplicate).
    await h.waitFor(() => names.every((n) => h.pidsOfHome(home, (env, pid) => env.name === n
      && h.cmdline(pid).some((x) => x.endsWith('eco-app.js'))).length === 1), { message: 'one live process per app' });
    for (const n of names) {
      const live = h.pidsOfHome(home, (env, pid) => env.name === n && h.cmdline(pid).some((x) => x.endsWith('eco-app.js')));
      assert.deepEqual(live, [after.find((p) => p.name === n).pid], `${n}: the one live process is the listed one`);
    }
    assert.deepEqual(h.pidsOfHome(home, (env) => env.name === 'crash-stopped'), [], 'the stopped app did not start');
  });

  // ---- update --------------------------------------------------------------------------------------

  test('rpm2 update replaces the daemon and keeps every app (names, ids, online; stopped stays stopped)', async (t) => {
    const { home } = setup(t);
    await startApp(home, 'up-a');
    await startApp(home, 'up-b', { flags: ['-i', '2'], instances: 2 });
    await startApp(home, 'up-stopped');
    await ok(['stop', 'up-stopped'], { home });
    const before = await waitList(home, 4, (l) => l.filter(online).length === 3);
    const oldDaemon = h.daemonPid(home);
    const r = await ok(['update'], { home });
    assert.match(r.stdout + r.stderr, /daemon/i, h.show(r));
    const after = await waitList(home, 4, (l) => l.filter(online).length === 3, 'the apps after update');
    const newDaemon = h.daemonPid(home);
    assert.ok(newDaemon > 0 && newDaemon !== oldDaemon, `daemon pid changed (${oldDaemon} -> ${newDaemon})`);
    assert.ok(!h.isAlive(oldDaemon), 'the old daemon is gone');
    assert.deepEqual(h.daemonPids(home), [newDaemon]);
    const ids = (l) => l.map((p) => [p.pm_id, p.name, p.pm2_env.status === 'stopped' ? 'stopped' : 'up']).sort((a, b) => a[0] - b[0]);
    assert.deepEqual(ids(after), ids(before), 'same ids, names, and stopped/running');
    assert.ok(after.filter(online).every((p) => h.isAlive(p.pid)));
  });

  // ---- startup -------------------------------------------------------------------------------------

  /** The unit part of `startup --print` output (without the install instructions for non-root). */
  function unitText(stdout) {
    const lines = stdout.split('\n');
    const start = lines.findIndex((l) => l.trim() === '[Unit]');
    assert.ok(start >= 0, `a [Unit] section\n${stdout}`);
    const end = lines.findIndex((l, i) => i > start && /^\[rpm2\]/.test(l));
    return `${lines.slice(start, end < 0 ? undefined : end).join('\n').trimEnd()}\n`;
  }

  function parseUnit(text) {
    const sections = {};
    let cur = null;
    for (const raw of text.split('\n')) {
      const l = raw.trim();
      if (l === '' || l.startsWith('#') || l.startsWith(';')) continue;
      const m = /^\[([A-Za-z]+)\]$/.exec(l);
      if (m) {
        cur = m[1];
        sections[cur] = sections[cur] || {};
        continue;
      }
      assert.ok(cur, `a key outside of any section: ${l}`);
      const i = l.indexOf('=');
      assert.ok(i > 0, `not a key=value line: ${l}`);
      const k = l.slice(0, i).trim();
      (sections[cur][k] = sections[cur][k] || []).push(l.slice(i + 1).trim());
    }
    return sections;
  }

  test('rpm2 startup --print: a Type=simple unit running the daemon in the foreground, valid for systemd', async (t) => {
    const { home, dir } = setup(t);
    const userHome = path.join(dir, 'userhome');
    const r = await ok(['startup', 'systemd', '--print', '-u', 'rpm2-test-user', '--hp', userHome], { home });
    const text = unitText(r.stdout);
    const u = parseUnit(text);
    assert.deepEqual(Object.keys(u).sort(), ['Install', 'Service', 'Unit']);
    const svc = u.Service;
    assert.deepEqual(svc.Type, ['simple']);
    assert.deepEqual(svc.Restart, ['on-failure']);
    assert.deepEqual(svc.User, ['rpm2-test-user']);
    assert.equal(svc.ExecStart.length, 1);
    const exec = svc.ExecStart[0].split(/\s+/);
    assert.ok(path.isAbsolute(exec[0]), `ExecStart has an absolute binary: ${exec[0]}`);
    assert.ok(fs.existsSync(exec[0]), `the binary exists: ${exec[0]}`);
    assert.deepEqual(exec.slice(1), ['--daemon', '--foreground']);
    assert.ok((svc.Environment || []).includes(`RPM2_HOME=${path.join(userHome, '.rpm2')}`), JSON.stringify(svc.Environment));
    assert.ok(!('PIDFile' in svc), 'no PIDFile: systemd tracks the foreground daemon itself');
    assert.ok((u.Install.WantedBy || []).length >= 1);
    // The saved apps come back at boot: an Exec* line runs `resurrect`.
    const execs = Object.entries(svc).filter(([k]) => k.startsWith('Exec')).flatMap(([, v]) => v);
    assert.ok(execs.some((l) => l.startsWith(`${exec[0]} resurrect`)), `an Exec line resurrects: ${JSON.stringify(execs)}`);

    // systemd's own check when available.
    const sa = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    if (sa.status !== 0) {
      t.diagnostic('systemd-analyze not found: checked by parsing only');
      return;
    }
    const unitFile = path.join(dir, 'rpm2-test.service');
    // Run as the current user so that verify does not fail on a user that does not exist here.
    fs.writeFileSync(unitFile, text.replace(/^User=.*$/m, `User=${os.userInfo().username}`));
    const v = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8', timeout: 60000 });
    const problems = `${v.stdout}\n${v.stderr}`.split('\n').filter((l) => l.trim() !== '')
      .filter((l) => !l.includes(exec[0])); // tolerated: remarks about the ExecStart binary's path
    t.diagnostic(`systemd-analyze verify: exit ${v.status} ${v.stderr.trim()}`);
    assert.equal(v.status, 0, `systemd-analyze verify failed:\n${v.stdout}\n${v.stderr}`);
    assert.deepEqual(problems.filter((l) => /error|invalid|unknown|failed/i.test(l)), [], `systemd-analyze complaints:\n${v.stderr}`);
  });

  test('rpm2 startup refuses an init system it does not support', async (t) => {
    const { home } = setup(t);
    const r = await h.rpm2(['startup', 'upstart', '--print'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, /upstart/, h.show(r));
    assert.match(r.stderr, /systemd/, h.show(r));
  });

  test('rpm2 unstartup: refuses an unsupported init system; without an installed unit, says there is nothing to remove', async (t) => {
    const { home } = setup(t);
    let r = await h.rpm2(['unstartup', 'upstart'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, /upstart/, h.show(r));
    const unit = `/etc/systemd/system/rpm2-${os.userInfo().username}.service`;
    if (fs.existsSync(unit)) {
      t.diagnostic(`${unit} is installed on this machine: not touching it`);
      return;
    }
    r = await h.rpm2(['unstartup'], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.ok(r.stderr.includes(unit), `names the unit it looked for\n${h.show(r)}`);
  });

  // ---- rpm2-runtime --------------------------------------------------------------------------------

  const UNSHARE_OK = (() => {
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { encoding: 'utf8', timeout: 20000 });
    return r.status === 0;
  })();

  /** Spawns `cmd args` in its own process group with the home's env; kills the group in t.after. */
  function spawnTracked(t, home, cmd, args, extraEnv = {}) {
    const child = spawn(cmd, args, { env: h.homeEnv(home, extraEnv), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const res = { child, stdout: '', stderr: '', exit: null };
    child.stdout.setEncoding('utf8').on('data', (d) => { res.stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { res.stderr += d; });
    res.done = new Promise((resolve) => child.on('exit', (code, signal) => { res.exit = { code, signal }; resolve(res.exit); }));
    t.after(async () => {
      if (res.exit === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
        await res.done;
      }
    });
    return res;
  }

  test('rpm2-runtime as PID 1 of a PID namespace: logs on stdout, reaps orphans, --health, SIGTERM -> graceful stop -> exit 0', { skip: !UNSHARE_OK && 'unshare --pid --fork --mount-proc is not permitted here' }, async (t) => {
    const { home } = setup(t);
    const rt = spawnTracked(t, home, 'unshare', ['--pid', '--fork', '--mount-proc', RUNTIME, ZOMBIE, '--name', 'rt']);
    // The runtime is the child of unshare (PID 1 inside the namespace), once the launcher has exec'd
    // `rpm2d --runtime`.
    const runtimePid = await h.waitFor(() => {
      const c = childrenOf(rt.child.pid);
      return c.length === 1 && c[0].argv.includes('--runtime') ? c[0].pid : undefined;
    }, { message: 'the runtime process (child of unshare, rpm2d --runtime)' });
    assert.match(fs.readFileSync(`/proc/${runtimePid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m, 'PID 1 in its namespace');

    await h.waitFor(() => rt.stdout.includes('ops-zombie up') && /tick \d+/.test(rt.stdout),
      { message: `the app's log lines on the runtime's stdout; stdout so far: ${rt.stdout.slice(-300)}`, timeout: 20000 });
    const p = await h.waitForProc(home, 'rt', online);
    assert.equal(p.pm2_env.status, 'online', '`rpm2 list` answers from outside too (same RPM2_HOME)');

    // --health answers 0 while the app is online.
    const health = spawnSync(RUNTIME, ['--health'], { env: h.homeEnv(home), encoding: 'utf8', timeout: 20000 });
    assert.equal(health.status, 0, `--health: ${health.stdout}${health.stderr}`);

    // Orphans land on the runtime (subreaper / PID 1) and none stays a zombie.
    const zombies = new Set();
    const orphans = new Set();
    await h.waitFor(() => {
      for (const c of childrenOf(runtimePid)) {
        if (c.state === 'Z') zombies.add(c.pid);
        else if (c.argv[0] === 'sleep') orphans.add(c.pid);
      }
      return orphans.size >= 10;
    }, { interval: 10, timeout: 30000, message: `orphaned sleeps re-parented to the runtime (seen ${orphans.size})` });
    t.diagnostic(`orphans seen: ${orphans.size}, zombies seen at some instant: ${zombies.size}`);
    await h.waitFor(() => [...zombies].every((z) => {
      const st = h.procStat(z);
      return !st || st.state !== 'Z' || st.ppid !== runtimePid;
    }), { message: `every zombie seen is reaped: ${[...zombies]}` });

    // SIGTERM -> graceful stop of the app -> exit 0.
    process.kill(runtimePid, 'SIGTERM');
    const exit = await rt.done;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status\n--- stderr ---\n${rt.stderr}`);
    assert.match(rt.stderr, /SIGTERM/);
    const outLog = readText(path.join(home, 'logs', 'rt-out.log'));
    assert.match(outLog, /ops-zombie graceful stop \(SIG(INT|TERM)\)/, 'the app was stopped gracefully');
    assert.deepEqual(h.pidsOfHome(home), [], 'nothing of the runtime is left');
  });

  test('rpm2-runtime exits by itself with the app\'s code when a --no-autorestart app exits 2', async (t) => {
    const { home } = setup(t);
    const args = [RUNTIME, EXIT2, '--name', 'ex', '--no-autorestart'];
    const rt = UNSHARE_OK
      ? spawnTracked(t, home, 'unshare', ['--pid', '--fork', '--mount-proc', ...args])
      : spawnTracked(t, home, args[0], args.slice(1));
    const exit = await rt.done;
    assert.notEqual(exit.code, 0, `non-zero exit\n${rt.stderr}`);
    assert.equal(exit.code, 2, `the app's exit code\n--- stderr ---\n${rt.stderr}`);
    assert.match(rt.stdout, /ops-exit leaving with code 2/);
    await h.waitFor(() => h.pidsOfHome(home).length === 0, { message: 'nothing of the runtime is left' });
  });

  test('rpm2-runtime --health fails when no daemon answers', async (t) => {
    const { home } = setup(t);
    const r = spawnSync(RUNTIME, ['--health'], { env: h.homeEnv(home), encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  // ---- import-pm2 ----------------------------------------------------------------------------------

  test('import-pm2 starts the apps of a real PM2 dump (produced by pm2 save) with their names and scripts', async (t) => {
    const { home, dir, out } = setup(t);
    assert.ok(fs.existsSync(PM2), 'pm2 is installed (devDependency)');
    const pm2Home = path.join(dir, 'pm2home');
    const pm2Env = { ...h.homeEnv(undefined, { PM2_HOME: pm2Home, ECO_OUT: out }) };
    delete pm2Env.RPM2_HOME;
    const pm2 = (args, extra = {}) => new Promise((resolve) => {
      execFile(PM2, args, { env: { ...pm2Env, ...extra }, cwd: dir, timeout: 60000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
    });
    t.after(async () => {
      await pm2(['kill']);
      // Anything of that PM2_HOME still alive (daemon or apps): SIGKILL by pid.
      for (const e of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(e)) continue;
        if (h.procEnv(Number(e)).PM2_HOME === pm2Home && h.isAlive(Number(e))) {
          try {
            process.kill(Number(e), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    });
    let r = await pm2(['start', APP, '--name', 'pm-a', '--', 'one', 'two words'], { ECO_PM: 'from-pm2' });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    r = await pm2(['start', APP, '--name', 'pm-b', '-i', '2']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    r = await pm2(['start', APP, '--name', 'pm-stopped']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    r = await pm2(['stop', 'pm-stopped']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    r = await pm2(['save']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    r = await pm2(['kill']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const dump = path.join(pm2Home, 'dump.pm2');
    const entries = JSON.parse(fs.readFileSync(dump, 'utf8'));
    assert.deepEqual(entries.map((e) => e.name).sort(), ['pm-a', 'pm-b', 'pm-b', 'pm-stopped'], 'the PM2 dump has the apps');

    const imp = await ok(['import-pm2', dump], { home, env: { ECO_OUT: out } });
    assert.match(imp.stdout, /dump\.pm2/, h.show(imp));
    const all = await waitList(home, 4, (l) => l.filter(online).length === 3);
    const stopped = all.find((p) => p.name === 'pm-stopped');
    assert.equal(stopped && stopped.pm2_env.status, 'stopped', 'an app stopped under PM2 is imported stopped');
    const list = all.filter((p) => p.name !== 'pm-stopped');
    const a = list.find((p) => p.name === 'pm-a');
    const bs = list.filter((p) => p.name === 'pm-b');
    assert.equal(a.pm2_env.pm_exec_path, APP);
    assert.equal(a.pm2_env.exec_mode, 'fork_mode');
    assert.deepEqual(a.pm2_env.args, ['one', 'two words']);
    assert.equal(bs.length, 2, 'pm-b keeps its 2 instances');
    for (const b of bs) {
      assert.equal(b.pm2_env.pm_exec_path, APP);
      assert.equal(b.pm2_env.exec_mode, 'cluster_mode');
    }
    const d = await childReport(out, a);
    assert.equal(d.env.ECO_PM, 'from-pm2', 'the env PM2 saved is carried over');
    assert.deepEqual(d.argv, ['one', 'two words']);
    // And they run under rpm2, not PM2.
    for (const p of list) assert.equal(h.procEnv(p.pid).RPM2_HOME, home);

    // Without a path, import-pm2 reads $PM2_HOME/dump.pm2.
    const { home: home2 } = setup(t);
    await ok(['import-pm2'], { home: home2, env: { PM2_HOME: pm2Home } });
    const l2 = await waitList(home2, 4, (l) => l.filter(online).length === 3);
    assert.deepEqual(l2.map((p) => p.name).sort(), ['pm-a', 'pm-b', 'pm-b', 'pm-stopped']);
  });
});
