// Reliability under faults (issue 17): a frozen daemon never hangs a command or a Promise, `rpm2 kill`
// stops a frozen daemon and its apps, a JS ecosystem file that never finishes is cut off, names with
// control characters are refused, and a daemon SIGKILLed mid-operation comes back with every app once.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const IDLE = h.fixture('cli-idle.js');

// A small query deadline so that the tests stay short; the message and the exit code are what count.
const FAST = { RPM2_TIMEOUT_MS: '1500' };

test('a SIGSTOPped daemon: list (CLI and API) fails with one line, kill stops it and its apps', async (t) => {
  const { home } = h.useHome(t, 'rpm2-faults-');
  await h.ok(['start', IDLE, '--name', 'frozen-a'], { home });
  await h.ok(['start', IDLE, '--name', 'frozen-b'], { home });
  const list = await h.jlist(home);
  const appPids = list.map((p) => p.pid);
  assert.equal(appPids.length, 2);
  const dpid = h.daemonPid(home);
  assert.ok(dpid > 0, 'the daemon wrote its pid file');
  process.kill(dpid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(dpid, 'SIGCONT');
    } catch {
      /* gone */
    }
  });

  // The CLI: one line naming the pid and the home, non-zero, within a bound.
  const began = Date.now();
  const r = await h.rpm2(['list'], { home, env: FAST, timeout: 20000 });
  assert.notEqual(r.code, 0, h.show(r));
  assert.equal(r.signal, null, `the CLI hung until killed: ${h.show(r)}`);
  assert.ok(Date.now() - began < 15000, 'the CLI gave up within its deadline');
  assert.match(r.stderr, new RegExp(`the rpm2 daemon \\(pid ${dpid}, home ${home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) does not answer`), h.show(r));
  assert.equal(h.lines(r.stderr).filter((l) => /does not answer/.test(l)).length, 1, h.show(r));

  // The JS API: a rejected Promise with the same message.
  process.env.RPM2_TIMEOUT_MS = FAST.RPM2_TIMEOUT_MS;
  try {
    const api = new (require('..').custom)({ home });
    await assert.rejects(api.list(), (e) => {
      assert.match(e.message, new RegExp(`the rpm2 daemon \\(pid ${dpid}, home .*\\) does not answer`));
      return true;
    });
  } finally {
    delete process.env.RPM2_TIMEOUT_MS;
  }

  // `rpm2 kill` still works: no daemon, no app left.
  const k = await h.rpm2(['kill'], { home, env: FAST, timeout: 30000 });
  assert.equal(k.code, 0, h.show(k));
  await h.waitFor(() => !h.isAlive(dpid), { message: 'the frozen daemon is gone' });
  for (const pid of appPids) await h.waitFor(() => !h.isAlive(pid), { message: `app pid ${pid} is gone` });
  assert.deepEqual(h.daemonPids(home), []);
  // The next command starts a fresh daemon with an empty table.
  assert.deepEqual(await h.jlist(home), []);
});

test('a JS ecosystem file that never finishes is cut off at the limit: one line, nothing started', async (t) => {
  const { dir, home } = h.useHome(t, 'rpm2-faults-');
  const cases = {
    'spin.config.js': `module.exports = { apps: [{ name: 'never', script: ${JSON.stringify(IDLE)} }] };\nwhile (true) {}\n`,
    'wait.config.mjs': `await new Promise(() => setInterval(() => {}, 1000));\nexport default { apps: [{ name: 'never', script: ${JSON.stringify(IDLE)} }] };\n`,
  };
  for (const [file, body] of Object.entries(cases)) {
    const p = path.join(dir, file);
    fs.writeFileSync(p, body);
    const r = await h.rpm2(['start', p], { home, env: { RPM2_CONFIG_TIMEOUT_MS: '1000' }, timeout: 20000 });
    assert.notEqual(r.code, 0, h.show(r));
    assert.equal(r.signal, null, `rpm2 start hung: ${h.show(r)}`);
    const line = h.lines(r.stderr).find((l) => l.includes(p));
    assert.ok(line && /1000 ms/.test(line), h.show(r));
    // No Node left evaluating the file.
    await h.waitFor(() => !fs.readdirSync('/proc').some((d) => /^\d+$/.test(d) && h.cmdline(Number(d)).includes(p)),
      { message: `a node process still evaluates ${file}` });
  }
  if (fs.existsSync(path.join(home, 'rpc.sock'))) assert.deepEqual(await h.jlist(home), []);
});

test('names with control characters and empty names are refused with one line (CLI, ecosystem, API)', async (t) => {
  const { dir, home } = h.useHome(t, 'rpm2-faults-');
  for (const name of ['two\nlines', 'tab\there', '\u001b[31mred', '']) {
    const r = await h.rpm2(['start', IDLE, '--name', name], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.equal(h.lines(r.stderr).length, 1, `one line expected: ${h.show(r)}`);
    assert.match(r.stderr, /name/, h.show(r));
  }
  const eco = path.join(dir, 'bad-names.json');
  fs.writeFileSync(eco, JSON.stringify({ apps: [{ name: 'bad\rname', script: IDLE }] }));
  const r = await h.rpm2(['start', eco], { home });
  assert.notEqual(r.code, 0, h.show(r));
  assert.equal(h.lines(r.stderr).length, 1, h.show(r));

  const api = new (require('..').custom)({ home });
  await assert.rejects(api.start({ script: IDLE, name: 'new\nline' }), /cannot be used/);
  // Numbers where a number is required.
  const s = await h.rpm2(['scale', 'whatever', 'abc'], { home });
  assert.notEqual(s.code, 0, h.show(s));
  assert.match(s.stderr, /N, \+N or -N/, h.show(s));
  const e = await h.rpm2(['env', 'abc'], { home });
  assert.notEqual(e.code, 0, h.show(e));
  assert.match(e.stderr, /must be a process id/, h.show(e));
  // Nothing was started; a path-like name is still accepted.
  if (fs.existsSync(path.join(home, 'rpc.sock'))) assert.deepEqual(await h.jlist(home), []);
  await h.ok(['start', IDLE, '--name', 'svc/../odd'], { home });
  assert.deepEqual((await h.jlist(home)).map((p) => p.name), ['svc/../odd']);
  await api.disconnect();
});

/** RSS (kB) and open fds of a process, from /proc. */
function figures(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rss: Number((status.match(/^VmRSS:\s+(\d+)/m) || [])[1] || 0),
    fds: fs.readdirSync(`/proc/${pid}/fd`).length,
  };
}

/** Seconds of the crash-loop soak (the bench, bench/crash-soak.sh, runs 60). */
const SOAK_SECONDS = Number(process.env.RPM2_SOAK_SECONDS || 20);

test(`crash-loop soak (${SOAK_SECONDS} s): daemon RSS and fds bounded, log and table consistent`, { timeout: (SOAK_SECONDS + 90) * 1000 }, async (t) => {
  const { home } = h.useHome(t, 'rpm2-faults-');
  await h.ok(['start', h.fixture('cli-exit.js'), '--name', 'crashy', '--restart-delay', '0', '--max-restarts', '100000'], { home });
  const dpid = h.daemonPid(home);
  await h.waitForProc(home, 'crashy', (p) => p.pm2_env.restart_time >= 5);
  const start = figures(dpid);
  const samples = [];
  const end = Date.now() + SOAK_SECONDS * 1000;
  while (Date.now() < end) {
    await h.sleep(1000);
    samples.push(figures(dpid));
  }
  const peak = { rss: Math.max(...samples.map((s) => s.rss)), fds: Math.max(...samples.map((s) => s.fds)) };
  await h.ok(['stop', 'crashy'], { home });
  const list = await h.jlist(home);
  assert.equal(list.length, 1, 'one entry, whatever the restarts');
  const p = list[0];
  assert.equal(p.pm2_env.status, 'stopped');
  const restarts = p.pm2_env.restart_time;
  // Every start printed one line; the log holds one per start (the last few may race the stop).
  const log = fs.readFileSync(p.pm2_env.pm_out_log_path, 'utf8');
  const starts = (log.match(/cli-exit: exiting/g) || []).length;
  const line = `soak: ${restarts} restarts in ${SOAK_SECONDS}s; daemon RSS ${start.rss} -> peak ${peak.rss} kB, fds ${start.fds} -> peak ${peak.fds}; ${starts} start lines in the log`;
  t.diagnostic(line);
  console.log(line);
  assert.ok(restarts > SOAK_SECONDS, `it kept restarting: ${line}`);
  assert.ok(Math.abs(starts - (restarts + 1)) <= 3, `log and table agree: ${line}`);
  assert.ok(peak.fds <= start.fds + 8, `fds bounded: ${line}`);
  assert.ok(peak.rss <= start.rss + 16 * 1024, `RSS bounded: ${line}`);
  // No process left over from the loop.
  assert.deepEqual(h.pidsOfHome(home).filter((pid) => pid !== dpid), []);
});

/** Waits until the list has settled (no launching/stopping) and returns it. */
function settled(home, pred = () => true) {
  return h.waitFor(async () => {
    const list = await h.jlist(home);
    if (list.some((p) => !['online', 'stopped', 'errored'].includes(p.pm2_env.status))) return false;
    if (list.some((p) => p.pm2_env.status === 'online' && !h.isAlive(p.pid))) return false;
    return pred(list) ? list : false;
  }, { timeout: 60000, interval: 250, message: 'the list settles' });
}

/** Every app process of `home` (cli-idle), with the jlist's pids: no orphan, none twice. */
function assertNoStray(home, list) {
  const pids = list.filter((p) => p.pid).map((p) => p.pid);
  assert.equal(new Set(pids).size, pids.length, `a pid shows twice: ${pids}`);
  const known = new Set(pids);
  const alive = h.pidsOfHome(home).filter((pid) => h.cmdline(pid).includes(IDLE));
  const strays = alive.filter((pid) => !known.has(pid));
  assert.deepEqual(strays, [], `processes not in the list: ${strays.map((p) => h.cmdline(p).join(' '))}`);
}

test('daemon SIGKILLed during a start of 50 apps: each app comes back once, none twice, none lost', { timeout: 240000 }, async (t) => {
  const { dir, home } = h.useHome(t, 'rpm2-faults-');
  const N = 50;
  const eco = path.join(dir, 'fifty.json');
  fs.writeFileSync(eco, JSON.stringify({ apps: Array.from({ length: N }, (_, i) => ({ name: `f${i}`, script: IDLE })) }));
  await h.ok(['ping'], { home });
  const dpid = h.daemonPid(home);
  const starting = h.rpm2(['start', eco], { home, timeout: 120000 });
  // Kill once part of the apps run.
  await h.waitFor(() => h.pidsOfHome(home).filter((pid) => h.cmdline(pid).includes(IDLE)).length >= 5,
    { interval: 20, message: 'some apps started' });
  process.kill(dpid, 'SIGKILL');
  const r = await starting;
  assert.notEqual(r.signal, 'SIGKILL', `the start command hung: ${h.show(r)}`);
  // The next command starts a new daemon, which restores what the table holds.
  await h.waitFor(() => !h.isAlive(dpid), { message: 'the old daemon is gone' });
  const restored = await settled(home);
  assert.notEqual(h.daemonPid(home), dpid);
  const names = restored.map((p) => p.name);
  assert.equal(new Set(names).size, names.length, `an app came back twice: ${names}`);
  assertNoStray(home, restored);
  // The table was saved before the first child ran: every app comes back without starting it again.
  assert.equal(restored.length, N, `lost apps: ${names}`);
  // Starting the file again completes it: every app once.
  await h.ok(['start', eco], { home, timeout: 120000 });
  const list = await settled(home, (l) => l.length === N && l.every((p) => p.pm2_env.status === 'online'));
  assert.deepEqual(list.map((p) => p.name).sort(), Array.from({ length: N }, (_, i) => `f${i}`).sort());
  assertNoStray(home, list);
  t.diagnostic(`restored ${restored.length} of ${N} apps after the kill`);
});

test('daemon SIGKILLed during a reload: every app comes back once, none twice, none lost', { timeout: 240000 }, async (t) => {
  const { home } = h.useHome(t, 'rpm2-faults-');
  const apps = ['r0', 'r1', 'r2', 'r3'];
  for (const name of apps) await h.ok(['start', IDLE, '--name', name, '-i', '2'], { home });
  await h.ok(['start', IDLE, '--name', 'rf'], { home });
  await settled(home, (l) => l.length === 9 && l.every((p) => p.pm2_env.status === 'online'));
  const dpid = h.daemonPid(home);
  const reloading = h.rpm2(['reload', 'all'], { home, timeout: 120000 });
  await h.sleep(400);
  process.kill(dpid, 'SIGKILL');
  await reloading;
  await h.waitFor(() => !h.isAlive(dpid), { message: 'the old daemon is gone' });
  const list = await settled(home, (l) => l.length === 9 && l.every((p) => p.pm2_env.status === 'online'));
  const byName = {};
  for (const p of list) byName[p.name] = (byName[p.name] || 0) + 1;
  assert.deepEqual(byName, { r0: 2, r1: 2, r2: 2, r3: 2, rf: 1 });
  const ids = list.map((p) => p.pm_id);
  assert.equal(new Set(ids).size, ids.length);
  assertNoStray(home, list);
});
