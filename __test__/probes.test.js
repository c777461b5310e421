'use strict';
// End-to-end tests for issue 22, items 2-5: liveness and readiness probes (http_get, tcp_socket, exec,
// event_loop) declared in ecosystem files, readiness-gated cluster reloads (on every Node of
// RPM2_TEST_NODES, as the cluster suite), and rpm2-runtime's /healthz and /readyz. Each test has
// its own RPM2_HOME (helpers.useHome cleans up). Network: 127.0.0.1 only. Run:
//   RPM2_TEST_NODES=$(node scripts/install-nodes.js | paste -sd:) node --test __test__/probes.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const h = require('./helpers');
const rpm2 = require('..');

const HTTP_APP = h.fixture('probe-http.js');
const BUSY_APP = h.fixture('probe-busy.js');
const SLEEP_APP = h.fixture('ipc-sleep.js');
const RUNTIME = path.join(h.ROOT, 'bin', 'rpm2-runtime');
const HOST = '127.0.0.1';
const NODES = h.testNodes();

/** Writes `apps` as an ecosystem JSON file in `dir` and starts it; returns the command's result. */
async function startEco(home, dir, apps, file = 'eco.json') {
  const f = path.join(dir, file);
  fs.writeFileSync(f, JSON.stringify({ apps }, null, 2));
  return h.rpm2(['start', f], { home });
}

/** One GET on a fresh connection; never rejects: {ok, status, body, json} or {ok: false, code}. */
function get(port, p = '/') {
  return new Promise((resolve) => {
    const req = http.request({ host: HOST, port, path: p, agent: false, timeout: 10000, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ ok: true, status: res.statusCode, body, json });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => resolve({ ok: false, code: e.code || e.message }));
    req.end();
  });
}

/** Requests in a loop until stopped: counts answers by version, collects failures. */
function clientLoop(port) {
  const stats = { ok: 0, errors: [], versions: new Map(), pids: new Set() };
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await get(port);
      if (r.ok && r.status === 200 && r.json) {
        stats.ok++;
        stats.versions.set(r.json.version, (stats.versions.get(r.json.version) || 0) + 1);
        stats.pids.add(r.json.pid);
      } else {
        stats.errors.push(r.ok ? `HTTP ${r.status}` : r.code);
      }
    }
  })();
  return {
    stats,
    async progress(n = 3) {
      const target = stats.ok + n;
      await h.waitFor(() => stats.ok >= target, { timeout: 20000, interval: 20, message: `${n} more answers (errors: ${stats.errors})` });
    },
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

const procsOf = async (home, name) => (await h.jlist(home)).filter((p) => p.name === name).sort((a, b) => a.pm_id - b.pm_id);

/** Waits until `name` has `n` processes, all online (and ready when `ready`). */
function allOnline(home, name, n, { ready = false, timeout = 20000 } = {}) {
  let last;
  return h.waitFor(async () => {
    last = await procsOf(home, name);
    return last.length === n && last.every((p) => p.pm2_env.status === 'online' && p.pid > 0
      && (!ready || p.pm2_env.readiness === 'ready')) && last;
  }, { timeout, message: `${n} online process(es) named ${name}` }).catch((e) => {
    e.message += `\nlast: ${JSON.stringify((last || []).map((p) => [p.pm_id, p.pid, p.pm2_env.status, p.pm2_env.readiness]))}`;
    throw e;
  });
}

describe('health probes (issue 22)', { concurrency: 3 }, () => {
  test('liveness http_get: an app that turns sick is restarted gracefully with the reason in describe, the daemon log and the bus; a healthy one is never touched', async (t) => {
    const { dir, home } = h.useHome(t);
    const [p1, p2] = [await h.freePort(), await h.freePort()];
    const sick = path.join(dir, 'sick');
    const probe = (port) => ({ http_get: { port, path: '/healthz' }, initial_delay_seconds: 3, period_seconds: 0.3, failure_threshold: 2 });
    const r = await startEco(home, dir, [
      { name: 'sickly', script: HTTP_APP, env: { PORT: p1, SICK_FILE: sick }, liveness_probe: probe(p1), kill_timeout: 800 },
      { name: 'healthy', script: HTTP_APP, env: { PORT: p2 }, liveness_probe: probe(p2) },
    ]);
    assert.equal(r.code, 0, h.show(r));
    const [first] = await allOnline(home, 'sickly', 1);
    await allOnline(home, 'healthy', 1);
    const api = new rpm2.custom({ home });
    t.after(() => api.disconnect());
    const bus = await api.launchBus();
    const events = [];
    bus.on('process:event', (d) => events.push(d));
    await h.sleep(4000); // past the initial delay, then passing checks
    assert.equal((await h.proc(home, 'sickly')).pm2_env.restart_time, 0, 'a healthy app is not restarted');
    fs.writeFileSync(sick, '1');
    const restarted = await h.waitForProc(home, 'sickly', (p) => p.pm2_env.restart_time >= 1 && p.pm2_env.status === 'online' && p.pid !== first.pid,
      { timeout: 15000 });
    fs.unlinkSync(sick);
    const reason = 'liveness probe failed: GET /healthz answered 500';
    assert.equal(restarted.pm2_env.restart_reason, reason);
    const d = await h.rpm2(['describe', 'sickly'], { home });
    assert.match(d.stdout, new RegExp(reason), h.show(d));
    assert.match(h.daemonLog(home), /\[sickly:0\] liveness probe failed: GET \/healthz answered 500; restarting it/);
    assert.match(h.daemonLog(home), /\[sickly:0\] stopped \(/, 'the normal stop path');
    await h.waitFor(() => events.some((e) => e.event === 'liveness failed' && e.reason === reason && e.process.name === 'sickly'),
      { message: 'a liveness failed event on the bus' });
    // Healthy again: no more restarts; the healthy app was never touched.
    const after = (await h.proc(home, 'sickly')).pm2_env.restart_time;
    await h.sleep(1500);
    assert.equal((await h.proc(home, 'sickly')).pm2_env.restart_time, after, 'healthy again: left alone');
    const healthy = await h.proc(home, 'healthy');
    assert.equal(healthy.pm2_env.restart_time, 0, 'the healthy app was never restarted');
    assert.equal(healthy.pm2_env.status, 'online');
  });

  test('liveness event_loop: an app stuck in a busy loop is restarted; the next run is left alone', async (t) => {
    const { dir, home } = h.useHome(t);
    const flag = path.join(dir, 'was-busy');
    const r = await startEco(home, dir, [{
      name: 'loop', script: BUSY_APP, env: { BUSY_FLAG: flag, BUSY_AFTER_MS: 1500 }, kill_timeout: 500,
      liveness_probe: { event_loop: {}, period_seconds: 0.5, timeout_seconds: 0.5, failure_threshold: 2 },
    }]);
    assert.equal(r.code, 0, h.show(r));
    const [first] = await allOnline(home, 'loop', 1);
    const p = await h.waitForProc(home, 'loop', (x) => x.pm2_env.restart_time === 1 && x.pm2_env.status === 'online', { timeout: 15000 });
    assert.notEqual(p.pid, first.pid);
    assert.match(p.pm2_env.restart_reason, /^liveness probe failed: the event loop did not answer for \d+ ms$/);
    assert.ok(!h.isAlive(first.pid), 'the stuck process is gone');
    await h.sleep(2500);
    const later = await h.proc(home, 'loop');
    assert.equal(later.pm2_env.restart_time, 1, 'a loop that turns is left alone');
  });

  test('tcp_socket and exec probes; readiness gates online, with a readiness field in jlist and a column in list', async (t) => {
    const { dir, home } = h.useHome(t);
    const [closed, open] = [await h.freePort(), await h.freePort()];
    const readyFlag = path.join(dir, 'ready-flag');
    const r = await startEco(home, dir, [
      // Nobody listens on `closed`: restarted, with the refusal as reason.
      { name: 'tcpdead', script: SLEEP_APP, kill_timeout: 500,
        liveness_probe: { tcp_socket: { port: closed }, period_seconds: 0.3, failure_threshold: 2 } },
      { name: 'tcpok', script: HTTP_APP, env: { PORT: open },
        liveness_probe: { tcp_socket: { host: HOST, port: open }, period_seconds: 0.3 },
        readiness_probe: { tcp_socket: { port: open }, period_seconds: 0.3 } },
      // Ready once the flag file exists (exec, no shell; then a shell string for liveness).
      { name: 'gated', script: SLEEP_APP,
        readiness_probe: { exec: { command: ['test', '-f', readyFlag] }, period_seconds: 0.3, success_threshold: 2 },
        liveness_probe: { exec: { command: 'exit 0' }, period_seconds: 0.3 } },
      { name: 'execdead', script: SLEEP_APP, kill_timeout: 500,
        liveness_probe: { exec: { command: ['sh', '-c', 'exit 3'] }, period_seconds: 0.3, failure_threshold: 1 } },
    ]);
    assert.equal(r.code, 0, h.show(r));
    const dead = await h.waitForProc(home, 'tcpdead', (p) => p.pm2_env.restart_time >= 1, { timeout: 15000 });
    assert.match(dead.pm2_env.restart_reason, new RegExp(`^liveness probe failed: TCP 127\\.0\\.0\\.1:${closed}: .*refused`, 'i'));
    const ex = await h.waitForProc(home, 'execdead', (p) => p.pm2_env.restart_time >= 1, { timeout: 15000 });
    assert.equal(ex.pm2_env.restart_reason, 'liveness probe failed: exec sh -c exit 3 exited with code 3');
    await allOnline(home, 'tcpok', 1, { ready: true });
    // Not ready: launching, "not ready", and it stays so.
    await h.sleep(1200);
    let g = await h.proc(home, 'gated');
    assert.equal(g.pm2_env.status, 'launching');
    assert.equal(g.pm2_env.readiness, 'not ready');
    assert.ok(g.pid > 0, 'it runs');
    const l = await h.rpm2(['list'], { home });
    const { rows } = h.parseTable(l.stdout);
    const row = rows.find((x) => x['App name'] === 'gated');
    assert.equal(row && row.ready, 'not ready', h.show(l));
    assert.equal(rows.find((x) => x['App name'] === 'tcpdead').ready, '-', 'an app without a readiness probe');
    fs.writeFileSync(readyFlag, '');
    g = await h.waitForProc(home, 'gated', (p) => p.pm2_env.status === 'online', { timeout: 10000 });
    assert.equal(g.pm2_env.readiness, 'ready');
    assert.equal(g.pm2_env.restart_time, 0, 'a passing exec liveness probe never restarts it');
    assert.match(h.daemonLog(home), /\[gated:\d+\] ready \(readiness probe passed\): online/);
    // Not ready again: stays online (running) but says not ready.
    fs.unlinkSync(readyFlag);
    g = await h.waitForProc(home, 'gated', (p) => p.pm2_env.readiness === 'not ready', { timeout: 10000 });
    assert.equal(g.pm2_env.status, 'online');
    // Without any readiness probe there is no field and no column.
    await h.ok(['delete', 'gated', 'tcpok'], { home });
    const l2 = await h.rpm2(['list'], { home });
    assert.ok(!h.parseTable(l2.stdout).headers.includes('ready'), h.show(l2));
    assert.equal((await h.proc(home, 'tcpdead')).pm2_env.readiness, undefined);
  });

  test('bad probe settings: a one-line error naming the app and the field, nothing started', async (t) => {
    const { dir, home } = h.useHome(t);
    const cases = [
      [{ http_get: { port: 'x' } }, /app 'bad'.*field 'liveness_probe\.http_get\.port' must be a port number/],
      [{ event_loop: {}, period_seconds: 0 }, /app 'bad'.*field 'liveness_probe\.period_seconds'/],
      [{ event_loop: {}, success_threshold: 3 }, /app 'bad'.*field 'liveness_probe\.success_threshold' must be 1/],
      [{ exec: { command: ['true'] }, tcp_socket: { port: 1 } }, /app 'bad'.*field 'liveness_probe' must have exactly one check/],
    ];
    for (const [probe, re] of cases) {
      const r = await startEco(home, dir, [{ name: 'bad', script: SLEEP_APP, liveness_probe: probe }]);
      assert.notEqual(r.code, 0, h.show(r));
      assert.equal(h.lines(r.stderr).length, 1, `one line\n${h.show(r)}`);
      assert.match(r.stderr, re, h.show(r));
    }
    const r = await startEco(home, dir, [{ name: 'bad', script: 'sleep', args: ['9'], readiness_probe: { event_loop: {} } }]);
    assert.match(r.stderr, /app 'bad'.*field 'readiness_probe\.event_loop' needs a Node\.js app/, h.show(r));
    assert.deepEqual(await h.jlist(home).catch(() => []), []);
  });

  test('rpm2-runtime --health-port: /healthz while alive, /readyz once every instance is ready', async (t) => {
    const { dir, home } = h.useHome(t);
    const port = await h.freePort();
    const flag = path.join(dir, 'ready');
    const eco = path.join(dir, 'eco.json');
    fs.writeFileSync(eco, JSON.stringify({ apps: [{ name: 'svc', script: SLEEP_APP,
      readiness_probe: { exec: { command: ['test', '-f', flag] }, period_seconds: 0.3 } }] }));
    const rt = spawn(RUNTIME, [eco, '--health-port', String(port), '--health-host', HOST], { env: h.homeEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    rt.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => rt.on('exit', (code) => resolve(code)));
    t.after(async () => {
      if (rt.exitCode === null) rt.kill('SIGTERM');
      await exited;
    });
    const healthz = await h.waitFor(async () => {
      const r = await get(port, '/healthz');
      return r.ok && r;
    }, { message: `the health port to answer (stderr: ${stderr})` });
    assert.equal(healthz.status, 200, healthz.body);
    const notReady = await get(port, '/readyz');
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /svc:0 is launching, not ready/);
    assert.equal((await get(port, '/other')).status, 404);
    fs.writeFileSync(flag, '');
    await h.waitFor(async () => (await get(port, '/readyz')).status === 200, { message: '/readyz to answer 200' });
    rt.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
  });

  test('a stop cuts into a reload waiting for readiness: the reload fails at once, the app is stopped', async (t) => {
    const { dir, home } = h.useHome(t);
    const port = await h.freePort();
    const versionFile = path.join(dir, 'version');
    fs.writeFileSync(versionFile, 'v1');
    const r = await startEco(home, dir, [{
      name: 'web', script: HTTP_APP, instances: 1, exec_mode: 'cluster', env: { PORT: port, HOST, VERSION_FILE: versionFile },
      readiness_probe: { http_get: { port, path: '/ready' }, period_seconds: 1, failure_threshold: 30 },
    }]);
    assert.equal(r.code, 0, h.show(r));
    await allOnline(home, 'web', 1, { ready: true });
    fs.writeFileSync(versionFile, 'bad');
    const t0 = Date.now();
    const reload = h.rpm2(['reload', 'web'], { home, timeout: 60000 });
    await h.waitFor(() => h.pidsOfHome(home, (env, pid) => h.cmdline(pid).includes(HTTP_APP)).length >= 2,
      { message: 'the new worker to be spawned' });
    const stop = await h.rpm2(['stop', 'web'], { home });
    assert.equal(stop.code, 0, h.show(stop));
    const rr = await reload;
    assert.notEqual(rr.code, 0, h.show(rr));
    assert.match(rr.stderr, /stop or delete request came before the new process was ready/, h.show(rr));
    assert.ok(Date.now() - t0 < 20000, 'long before the readiness budget (30 failures x 1 s)');
    assert.equal((await h.proc(home, 'web')).pm2_env.status, 'stopped');
  });

  test('the shipped schema describes the probes', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(h.ROOT, 'schema', 'ecosystem.schema.json'), 'utf8'));
    const app = schema.definitions.app.properties;
    assert.equal(app.liveness_probe.$ref, '#/definitions/probe');
    assert.equal(app.readiness_probe.$ref, '#/definitions/probe');
    assert.deepEqual(Object.keys(schema.definitions.probe.properties).sort(), ['event_loop', 'exec', 'failure_threshold', 'http_get',
      'initial_delay_seconds', 'period_seconds', 'success_threshold', 'tcp_socket', 'timeout_seconds']);
  });

  for (const node of NODES) {
    test(`cluster reload gated by readiness (node ${node.version}): a ready version replaces the workers; a never-ready one (/ready answers 503) is rolled back under a client loop that sees no failure and no answer from it`, async (t) => {
      const { dir, home } = h.useHome(t);
      const port = await h.freePort();
      const versionFile = path.join(dir, 'version');
      fs.writeFileSync(versionFile, 'v1');
      const r = await startEco(home, dir, [{
        name: 'web', script: HTTP_APP, interpreter: node.bin, instances: 2, exec_mode: 'cluster',
        env: { PORT: port, HOST, VERSION_FILE: versionFile },
        readiness_probe: { http_get: { port, path: '/ready' }, period_seconds: 0.3, failure_threshold: 2 },
      }]);
      assert.equal(r.code, 0, h.show(r));
      const v1 = await allOnline(home, 'web', 2, { ready: true });
      const loop = clientLoop(port);
      t.after(() => loop.stop());
      await loop.progress(5);
      fs.writeFileSync(versionFile, 'v2');
      const good = await h.rpm2(['reload', 'web'], { home, timeout: 60000 });
      assert.equal(good.code, 0, h.show(good));
      const v2 = await allOnline(home, 'web', 2, { ready: true });
      for (const [i, p] of v2.entries()) assert.notEqual(p.pid, v1[i].pid, `worker ${p.pm_id} replaced`);
      await h.waitFor(() => loop.stats.versions.get('v2') >= 5, { message: 'answers from v2' });
      fs.writeFileSync(versionFile, 'bad');
      const seenBefore = loop.stats.ok;
      const bad = await h.rpm2(['reload', 'web'], { home, timeout: 60000 });
      assert.notEqual(bad.code, 0, `the reload must fail\n${h.show(bad)}`);
      assert.equal(h.lines(bad.stderr).length, 1, `one error line\n${h.show(bad)}`);
      assert.match(bad.stderr, /web:\d+/, `names the app\n${h.show(bad)}`);
      assert.match(bad.stderr, /readiness probe failed: GET \/ready answered 503/, `names the probe\n${h.show(bad)}`);
      await loop.progress(5);
      const stats = await loop.stop();
      assert.ok(stats.ok > seenBefore, 'the loop kept being served');
      assert.deepEqual(stats.errors, [], 'no failed request');
      assert.equal(stats.versions.get('bad'), undefined, 'no answer from the bad version');
      const after = await allOnline(home, 'web', 2, { ready: true });
      assert.deepEqual(after.map((p) => p.pid), v2.map((p) => p.pid), 'the v2 workers keep serving');
      for (const p of after) assert.ok(h.isAlive(p.pid));
      // The never-ready workers are gone.
      const pids = h.pidsOfHome(home);
      assert.ok(pids.length <= 3, `only the daemon and the two workers remain: ${pids}`);
    });
  }
});
