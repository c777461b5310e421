'use strict';
// End-to-end tests for issue 4 (cluster mode): rpm2d is the cluster primary of unmodified Node apps
// (`-i N`): N workers on one port, round-robin, held listeners, zero-downtime reload with rollback,
// scale, https/UDP/unix sockets/listen(0)/several listeners, --lb shared, ESM.
//
// The behaviours marked "per version" run on each Node binary of RPM2_TEST_NODES (colon-separated;
// default: this node), the apps being started with `--interpreter <that binary>`; the others run on
// the first one (the system node). Each test has its own RPM2_HOME and cleans up its daemon and apps
// (helpers.useHome registers cleanup with t.after). Network: 127.0.0.1 only (apps get HOST=127.0.0.1;
// ports are found by binding port 0 first, or are listen(0)). Run:
//   RPM2_TEST_NODES=$(node scripts/install-nodes.js | paste -sd:) node --test __test__/cluster.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const http = require('node:http');
const https = require('node:https');
const dgram = require('node:dgram');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const h = require('./helpers');

const HTTP_APP = h.fixture('cluster-http.js');
const HTTPS_APP = h.fixture('cluster-https.js');
const UDP_APP = h.fixture('cluster-udp.js');
const ESM_APP = h.fixture('cluster-app.mjs');
const SH_APP = h.fixture('cluster-script.sh');
const GRACEFUL_APP = h.fixture('ipc-graceful.js'); // the seed's Listing 4-10 (shared with ipc.test.js)

const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------------------
// Node versions under test

const NODES = h.testNodes();
const SYSTEM_NODE = NODES[0];
const { ok, outLog, waitLog, daemonLog, freePort } = h;
const start = h.startOn;
const HAVE_OPENSSL = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

// ---------------------------------------------------------------------------------------------------
// Small helpers

/** The jlist entries of `name`, sorted by pm_id. */
async function procsOf(home, name) {
  return (await h.jlist(home)).filter((p) => p.name === name).sort((a, b) => a.pm_id - b.pm_id);
}

/** Waits until `name` has exactly `n` processes, all online; returns them. */
function allOnline(home, name, n, opts = {}) {
  let last;
  return h.waitFor(async () => {
    last = await procsOf(home, name);
    return last.length === n && last.every((p) => p.pm2_env.status === 'online' && p.pid > 0) && last;
  }, { timeout: 20000, message: `${n} online process(es) named ${name}`, ...opts }).catch((e) => {
    e.message += `\nlast: ${JSON.stringify((last || []).map((p) => [p.pm_id, p.pid, p.pm2_env.status]))}`;
    throw e;
  });
}

/**
 * One request on a fresh connection (agent: false, Connection: close). Never rejects: resolves
 * {ok: true, status, body, json} or {ok: false, code}. opts: path, tls, socketPath, timeout.
 */
function get(port, opts = {}) {
  const { path: p = '/', tls = false, socketPath, timeout = 20000 } = opts;
  return new Promise((resolve) => {
    const mod = tls ? https : http;
    const o = { path: p, agent: false, timeout, headers: { Connection: 'close' } };
    if (socketPath) o.socketPath = socketPath;
    else Object.assign(o, { host: HOST, port });
    if (tls) o.rejectUnauthorized = false;
    const req = mod.request(o, (res) => {
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
      res.on('error', (e) => resolve({ ok: false, code: e.code || e.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e) => resolve({ ok: false, code: e.code || e.message }));
    req.end();
  });
}

/** Requests until `count` distinct pids answered; returns Map pid -> last JSON body. */
async function waitPids(port, count, opts = {}) {
  const seen = new Map();
  let last;
  await h.waitFor(async () => {
    last = await get(port, { timeout: 5000, ...opts });
    if (last.ok && last.status === 200 && last.json) seen.set(last.json.pid, last.json);
    return seen.size >= count;
  }, { timeout: opts.waitTimeout || 20000, interval: 20, message: `${count} distinct worker pids answering` }).catch((e) => {
    e.message += `\npids seen: ${[...seen.keys()]}; last: ${JSON.stringify(last)}`;
    throw e;
  });
  return seen;
}

/**
 * A client that sends one request at a time (fresh connection each) until stopped. `stats.errors`
 * lists the failures (error codes, or `HTTP <status>`), `stats.pids` counts responses per pid.
 */
function clientLoop(port, opts = {}) {
  const stats = { ok: 0, errors: [], pids: new Map() };
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await get(port, opts);
      if (r.ok && r.status === 200 && r.json) {
        stats.ok++;
        stats.pids.set(r.json.pid, (stats.pids.get(r.json.pid) || 0) + 1);
      } else {
        stats.errors.push(r.ok ? `HTTP ${r.status}` : r.code);
      }
    }
  })();
  return {
    stats,
    /** Waits until `n` more requests succeeded than when called. */
    async progress(n = 3, timeout = 20000) {
      const target = stats.ok + n;
      await h.waitFor(() => stats.ok >= target, { timeout, interval: 20, message: `the client loop to get ${n} more responses (errors: ${stats.errors})` });
    },
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

/** Resolves 'refused', 'connected' or another error code for a TCP connect to 127.0.0.1:port. */
function tcpConnect(port) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: HOST, port });
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  });
}

/** Socket fds above 2 of `pid`: [{fd, inode}]. */
function socketInodes(pid) {
  const out = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = target.match(/^socket:\[(\d+)\]$/);
    if (m && Number(fd) > 2) out.push({ fd: Number(fd), inode: m[1] });
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** A port p of 127.0.0.1 such that p and p + 1 were both free a moment ago. */
async function freePortPair() {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p >= 65535) continue;
    const second = await new Promise((resolve) => {
      const s = net.createServer();
      s.on('error', () => resolve(false));
      s.listen(p + 1, HOST, () => s.close(() => resolve(true)));
    });
    if (second) return p;
  }
  throw new Error('no two consecutive free ports found');
}

/** A self-signed certificate for localhost in `dir` (cert.pem, key.pem). */
function makeCert(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
}

function sortedInstances(procs) {
  return procs.map((p) => p.pm2_env.NODE_APP_INSTANCE).sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------
// Per Node version

for (const node of NODES) {
  describe(`cluster mode on Node ${node.version}`, () => {
    test('-i 2: two workers (NODE_UNIQUE_ID, cluster.isWorker, NODE_APP_INSTANCE 0 and 1) answer on one port from two pids; list shows 2 cluster rows', async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort();
      const r = await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
      assert.match(r.stdout, /cluster/, 'start says cluster mode');
      const procs = await allOnline(home, 'web', 2);
      const seen = await waitPids(port, 2);
      assert.deepEqual([...seen.keys()].sort(), procs.map((p) => p.pid).sort(), 'the serving pids are the listed workers');
      for (const p of procs) assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
      assert.deepEqual(sortedInstances(procs), [0, 1], 'NODE_APP_INSTANCE in jlist');
      const bodies = [...seen.values()];
      assert.deepEqual(bodies.map((b) => b.instance).sort(), ['0', '1'], 'NODE_APP_INSTANCE in the workers');
      for (const b of bodies) {
        assert.equal(b.isWorker, true, `pid ${b.pid}: cluster.isWorker`);
        assert.ok(b.uniqueId, `pid ${b.pid}: exec'd with NODE_UNIQUE_ID`);
        assert.equal(b.workerId, Number(b.uniqueId), 'cluster.worker.id is NODE_UNIQUE_ID');
      }
      assert.notEqual(bodies[0].uniqueId, bodies[1].uniqueId, 'distinct worker ids');
      const list = await ok(['list'], { home });
      const rows = h.parseTable(list.stdout).rows.filter((row) => row['App name'] === 'web');
      assert.equal(rows.length, 2, list.stdout);
      for (const row of rows) assert.equal(row.mode, 'cluster', list.stdout);
    });

    test('round-robin: 20 sequential connections are spread evenly over 2 workers', async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort();
      await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
      await allOnline(home, 'web', 2);
      await waitPids(port, 2);
      const count = new Map();
      for (let i = 0; i < 20; i++) {
        const r = await get(port);
        assert.ok(r.ok && r.json, `request ${i}: ${JSON.stringify(r)}`);
        count.set(r.json.pid, (count.get(r.json.pid) || 0) + 1);
      }
      assert.equal(count.size, 2, `two workers served: ${JSON.stringify([...count])}`);
      for (const [pid, n] of count) assert.ok(n >= 8, `worker ${pid} got ${n} of 20 (expected 10): ${JSON.stringify([...count])}`);
    });

    test('https (ticket keys in queryServer data echoed): -i 2 serves from both workers', { skip: !HAVE_OPENSSL && 'openssl is not installed' }, async (t) => {
      const { dir, home } = h.useHome(t);
      makeCert(dir);
      const port = await freePort();
      await start(home, node, HTTPS_APP, 'tls', ['-i', '2'], { PORT: port, HOST, CERT_DIR: dir });
      await allOnline(home, 'tls', 2);
      await waitPids(port, 2, { tls: true });
      const procs = await procsOf(home, 'tls');
      for (const p of procs) assert.equal(p.pm2_env.restart_time, 0, `worker ${p.pm_id} never crashed`);
      assert.doesNotMatch(await outLog(home, 'tls'), /server error/);
    });

    test('UDP (always shared): -i 2 dgram workers bound to one port answer datagrams', async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort(true);
      await start(home, node, UDP_APP, 'udp', ['-i', '2'], { PORT: port, HOST });
      const procs = await allOnline(home, 'udp', 2);
      await h.waitFor(async () => (await outLog(home, 'udp')).match(/udp bound/g)?.length === 2,
        { message: 'both workers bound' }).catch(async (e) => {
        e.message += `\n${await outLog(home, 'udp')}`;
        throw e;
      });
      const client = dgram.createSocket('udp4');
      t.after(() => client.close());
      const replies = new Map();
      client.on('message', (m) => {
        const pid = Number(String(m).split(':')[0]);
        replies.set(pid, (replies.get(pid) || 0) + 1);
      });
      await new Promise((resolve) => client.bind(0, HOST, resolve));
      let k = 0;
      await h.waitFor(() => {
        client.send(`ping-${k++}`, port, HOST);
        return [...replies.values()].reduce((a, b) => a + b, 0) >= 10;
      }, { interval: 30, message: 'replies to datagrams' });
      const pids = procs.map((p) => p.pid);
      for (const pid of replies.keys()) assert.ok(pids.includes(pid), `reply from a worker (${pid} in ${pids})`);
      assert.doesNotMatch(await outLog(home, 'udp'), /udp error/);
    });

    test('batched hand-off (RPM2_CLUSTER_BATCH=on: pipelined newconn handles, the daemon works in cycles): 300 connections, 30 at a time, all answered by both workers', async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort();
      // The daemon is started by this first command, with this env.
      await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST, RPM2_CLUSTER_BATCH: 'on' });
      const procs = await allOnline(home, 'web', 2);
      await waitPids(port, 2);
      const count = new Map();
      const errors = [];
      for (let round = 0; round < 10; round++) {
        const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => get(port, { path: i % 3 ? '/' : '/slow?ms=30' })));
        for (const r of rs) {
          if (r.ok && r.status === 200 && r.json) count.set(r.json.pid, (count.get(r.json.pid) || 0) + 1);
          else errors.push(r.ok ? `HTTP ${r.status}` : r.code);
        }
      }
      assert.deepEqual(errors, [], 'every connection answered');
      assert.deepEqual([...count.keys()].sort(), procs.map((p) => p.pid).sort(), 'served by the two workers');
      for (const [pid, n] of count) assert.ok(n >= 75, `worker ${pid} got ${n} of 300: ${JSON.stringify([...count])}`);
      assert.match(daemonLog(home), /hand-off batching is always on/, 'the daemon ran in batch mode');
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// On the system node

describe(`cluster mode on Node ${SYSTEM_NODE.version} (system node)`, () => {
  const node = SYSTEM_NODE;

  for (const [n, lb] of [[2, null], [1, null], [2, 'shared']]) {
    const lbFlags = lb ? ['--lb', lb] : [];
    test(`reload -i ${n}${lb ? ` --lb ${lb}` : ''} three times (once as gracefulReload) under steady client loops: no failed request, every pid replaced, restart counts incremented`, async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort();
      await start(home, node, HTTP_APP, 'web', ['-i', String(n), ...lbFlags], { PORT: port, HOST });
      const before = await allOnline(home, 'web', n);
      await waitPids(port, n);
      // One client with quick requests (the brief's loop), one that always has a request in flight.
      const loop = clientLoop(port);
      const slow = clientLoop(port, { path: '/slow?ms=150' });
      t.after(() => Promise.all([loop.stop(), slow.stop()]));
      await loop.progress(5);
      await slow.progress(2);
      for (let k = 1; k <= 3; k++) {
        // The second one through the seed's name for it.
        const cmd = k === 2 ? 'gracefulReload' : 'reload';
        const r = await h.rpm2([cmd, 'web'], { home });
        assert.equal(r.code, 0, `${cmd} (${k} of 3)\n${h.show(r)}`);
        await loop.progress(5);
        await slow.progress(2);
      }
      const stats = await loop.stop();
      const slowStats = await slow.stop();
      assert.deepEqual(stats.errors, [], `failed requests during the reloads (${stats.ok} succeeded)`);
      assert.deepEqual(slowStats.errors, [], `failed in-flight requests during the reloads (${slowStats.ok} succeeded)`);
      const after = await allOnline(home, 'web', n);
      const old = new Set(before.map((p) => p.pid));
      for (const p of after) {
        assert.ok(!old.has(p.pid), `worker ${p.pm_id} has a new pid (${p.pid})`);
        assert.equal(p.pm2_env.restart_time, 3, `worker ${p.pm_id}: restart_time after 3 reloads`);
      }
      for (const pid of old) assert.ok(!h.isAlive(pid), `old worker ${pid} is gone`);
      const serving = await waitPids(port, n);
      for (const pid of serving.keys()) assert.ok(after.some((p) => p.pid === pid), `pid ${pid} serving is a listed worker`);
    });
  }

  test('batched hand-off (RPM2_CLUSTER_BATCH=on): reload -i 2 twice under four concurrent client loops loses no request', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST, RPM2_CLUSTER_BATCH: 'on' });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const loops = [clientLoop(port), clientLoop(port), clientLoop(port), clientLoop(port, { path: '/slow?ms=100' })];
    t.after(() => Promise.all(loops.map((l) => l.stop())));
    for (const l of loops) await l.progress(3);
    for (let k = 1; k <= 2; k++) {
      const r = await h.rpm2(['reload', 'web'], { home });
      assert.equal(r.code, 0, `reload ${k}\n${h.show(r)}`);
      for (const l of loops) await l.progress(3);
    }
    for (const [i, l] of loops.entries()) {
      const stats = await l.stop();
      assert.deepEqual(stats.errors, [], `client loop ${i}: failed requests during the reloads (${stats.ok} succeeded)`);
    }
  });

  test('hand-off batching switches itself on under a burst of connections and off when it ends (auto mode), serving every connection', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST, RPM2_CLUSTER_BATCH: undefined });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const errors = [];
    let served = 0;
    // Bursts of 300 simultaneous connections (far over 2000/s) until the daemon says it batches.
    await h.waitFor(async () => {
      const rs = await Promise.all(Array.from({ length: 300 }, () => get(port)));
      for (const r of rs) {
        if (r.ok && r.status === 200) served++;
        else errors.push(r.ok ? `HTTP ${r.status}` : r.code);
      }
      return /batching round-robin hand-offs/.test(daemonLog(home));
    }, { timeout: 60000, interval: 0, message: 'the daemon to start batching' });
    await h.waitFor(() => /unbatched again/.test(daemonLog(home)), { message: 'the daemon to stop batching once the burst ended' });
    const r = await get(port);
    assert.ok(r.ok && r.status === 200, `served after the burst: ${JSON.stringify(r)}`);
    assert.deepEqual(errors, [], `every connection of the bursts answered (${served} were)`);
  });

  test('reload honours PM2_GRACEFUL_TIMEOUT in the app env as the grace period: a 2 s request in flight in the old worker completes although --kill-timeout is 300', async (t) => {
    // (Without the variable the grace period is kill_timeout, and this request is cut: checked by hand.)
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '1', '--kill-timeout', '300'], { PORT: port, HOST, PM2_GRACEFUL_TIMEOUT: '10000' });
    const [before] = await allOnline(home, 'web', 1);
    await waitPids(port, 1);
    const slow = get(port, { path: '/slow?ms=2000' });
    await waitLog(home, 'web', new RegExp(`slow start 2000 ${before.pid}`));
    const r = await h.rpm2(['reload', 'web'], { home });
    assert.equal(r.code, 0, h.show(r));
    const res = await slow;
    assert.ok(res.ok && res.status === 200, `the in-flight request completed: ${JSON.stringify(res)}`);
    assert.equal(res.json.pid, before.pid, 'answered by the old worker');
    const [after] = await allOnline(home, 'web', 1);
    assert.notEqual(after.pid, before.pid);
  });

  test('Listing 4-10 in cluster mode (--shutdown-with-message): a request in flight during `rpm2 reload`, then during `rpm2 stop`, completes; workers exit 0', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, GRACEFUL_APP, 'graceful', ['-i', '2', '--shutdown-with-message', '--kill-timeout', '10000'],
      { PORT: port, SLOW_MS: '1000' });
    await allOnline(home, 'graceful', 2);
    await h.waitFor(async () => (await get(port)).ok, { message: 'the app answers' });
    const slow = get(port, { path: '/slow' });
    await waitLog(home, 'graceful', /request start \/slow/);
    const r = await h.rpm2(['reload', 'graceful'], { home });
    assert.equal(r.code, 0, h.show(r));
    const res = await slow;
    assert.ok(res.ok, `the in-flight request completed: ${JSON.stringify(res)}`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'slow done');
    assert.match(await outLog(home, 'graceful'), /got message "shutdown"/, 'the old workers got \'shutdown\'');
    const after = await get(port);
    assert.equal(after.ok && after.status, 200, JSON.stringify(after));

    const starts = ((await outLog(home, 'graceful')).match(/request start \/slow/g) || []).length;
    const slow2 = get(port, { path: '/slow' });
    await h.waitFor(async () => ((await outLog(home, 'graceful')).match(/request start \/slow/g) || []).length > starts,
      { message: 'the second slow request reached a worker' });
    const stop = await h.rpm2(['stop', 'graceful'], { home });
    assert.equal(stop.code, 0, h.show(stop));
    const res2 = await slow2;
    assert.ok(res2.ok && res2.status === 200, `the request in flight during stop completed: ${JSON.stringify(res2)}`);
    const procs = await procsOf(home, 'graceful');
    for (const p of procs) {
      assert.equal(p.pm2_env.status, 'stopped');
      assert.equal(p.pm2_env.exit_code, 0, `worker ${p.pm_id} exited 0 after 'shutdown'`);
    }
    assert.doesNotMatch(await outLog(home, 'graceful'), /got SIGINT/, 'no SIGINT with shutdown_with_message');
  });

  test('deploy-style reloads (`reload web --update-env`, `reload <ecosystem file>`) are zero-downtime rollouts with the new env', async (t) => {
    const { dir, home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST, RELEASE: '1' });
    const first = await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const loop = clientLoop(port);
    const slow = clientLoop(port, { path: '/slow?ms=150' });
    t.after(() => Promise.all([loop.stop(), slow.stop()]));
    await loop.progress(5);
    await slow.progress(2);
    const r = await h.rpm2(['reload', 'web', '--update-env'], { home, env: { PORT: port, HOST, RELEASE: '2' } });
    assert.equal(r.code, 0, h.show(r));
    await loop.progress(5);
    await slow.progress(2);
    const second = await allOnline(home, 'web', 2);
    for (const [i, p] of second.entries()) assert.notEqual(p.pid, first[i].pid, `worker ${p.pm_id} replaced`);
    const s2 = await waitPids(port, 2);
    assert.deepEqual([...s2.values()].map((b) => b.release), ['2', '2'], 'the new env is applied');

    const file = path.join(dir, 'ecosystem.json');
    fs.writeFileSync(file, JSON.stringify({ apps: [{
      name: 'web', script: HTTP_APP, interpreter: node.bin, instances: 2, exec_mode: 'cluster',
      env: { PORT: String(port), HOST, RELEASE: '3' },
    }] }));
    const r2 = await h.rpm2(['reload', file], { home });
    assert.equal(r2.code, 0, h.show(r2));
    await loop.progress(5);
    await slow.progress(2);
    const stats = [await loop.stop(), await slow.stop()];
    assert.deepEqual([...stats[0].errors, ...stats[1].errors], [], 'failed requests during the deploy-style reloads');
    const s3 = await waitPids(port, 2);
    assert.deepEqual([...s3.values()].map((b) => b.release), ['3', '3'], 'the file\'s env is applied');
  });

  test('moving an app to another port (restart --update-env PORT=...) releases the old port: connections there are refused, not left hanging', async (t) => {
    const { home } = h.useHome(t);
    const oldPort = await freePort();
    const newPort = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: oldPort, HOST });
    await allOnline(home, 'web', 2);
    await waitPids(oldPort, 2);
    await ok(['restart', 'web', '--update-env'], { home, env: { PORT: newPort, HOST } });
    await allOnline(home, 'web', 2);
    await waitPids(newPort, 2);
    await h.waitFor(async () => (await tcpConnect(oldPort)) === 'refused', { timeout: 5000, message: 'the old port is released' });
  });

  /** Starts `web` -i 2 --wait-ready whose workers send 'ready' while the file `flag` does not hold `no`. */
  async function readyCluster(home, flag, port) {
    fs.writeFileSync(flag, 'yes');
    await start(home, node, HTTP_APP, 'web', ['-i', '2', '--wait-ready', '--listen-timeout', '1000'],
      { PORT: port, HOST, READY_FILE: flag });
    const before = await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    return before;
  }

  /** Asserts that `web` still runs its `before` workers, unreplaced, and that only they serve. */
  async function assertRolledBack(home, port, before) {
    const after = await allOnline(home, 'web', 2);
    assert.deepEqual(after.map((p) => p.pid), before.map((p) => p.pid), 'the old workers are still the listed ones');
    for (const [i, p] of after.entries()) {
      assert.equal(p.pm2_env.restart_time, before[i].pm2_env.restart_time, `worker ${p.pm_id} was not replaced`);
    }
    const failed = [...(await outLog(home, 'web')).matchAll(/not sending ready (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(failed.length >= 1, 'the new worker ran');
    await h.waitFor(() => failed.every((pid) => !h.isAlive(pid)), { message: 'the rolled-back worker is gone' });
    const serving = await waitPids(port, 2);
    assert.deepEqual([...serving.keys()].sort(), before.map((p) => p.pid).sort(), 'the old pids still serve');
  }

  test('wait_ready reload: replaced once the new workers say "ready"; a new worker that never does is rolled back, reload exits non-zero naming it, the old workers keep serving', async (t) => {
    const { dir, home } = h.useHome(t);
    const flag = path.join(dir, 'send-ready');
    const port = await freePort();
    const first = await readyCluster(home, flag, port);
    const r0 = await h.rpm2(['reload', 'web'], { home });
    assert.equal(r0.code, 0, `a reload whose workers send ready succeeds\n${h.show(r0)}`);
    const before = await allOnline(home, 'web', 2);
    for (const [i, p] of before.entries()) {
      assert.notEqual(p.pid, first[i].pid, `worker ${p.pm_id} replaced`);
      assert.equal(p.pm2_env.restart_time, 1);
    }
    await waitPids(port, 2);
    fs.writeFileSync(flag, 'no');
    const r = await h.rpm2(['reload', 'web'], { home });
    assert.notEqual(r.code, 0, `reload must fail\n${h.show(r)}`);
    assert.equal(h.lines(r.stderr).length, 1, `one error line\n${h.show(r)}`);
    assert.match(r.stderr, new RegExp(`web:${before[0].pm_id}\\b|id ${before[0].pm_id}\\b`), `the error names the failed instance\n${h.show(r)}`);
    assert.doesNotMatch(r.stderr, new RegExp(`web:${before[1].pm_id}\\b`), 'the rollout stopped at the first failure');
    await assertRolledBack(home, port, before);
  });

  test('a reload whose new worker crashes at start (a bad deploy) is rolled back: non-zero exit, the old workers keep serving and stay put', async (t) => {
    const { dir, home } = h.useHome(t);
    const boot = path.join(dir, 'boot');
    fs.writeFileSync(boot, 'ok');
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2', '--listen-timeout', '3000'], { PORT: port, HOST, BOOT_FILE: boot });
    const before = await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    fs.writeFileSync(boot, 'crash');
    const loop = clientLoop(port);
    t.after(() => loop.stop());
    await loop.progress(5);
    const r = await h.rpm2(['reload', 'web'], { home });
    assert.notEqual(r.code, 0, `reload must fail\n${h.show(r)}`);
    assert.match(r.stderr, new RegExp(`web:${before[0].pm_id}\\b|id ${before[0].pm_id}\\b`), `the error names the failed instance\n${h.show(r)}`);
    await loop.progress(5);
    // Nothing keeps restarting behind the scenes: same workers a moment later.
    await h.sleep(1000);
    await loop.progress(5);
    const stats = await loop.stop();
    assert.deepEqual(stats.errors, [], 'failed requests');
    const after = await allOnline(home, 'web', 2);
    assert.deepEqual(after.map((p) => [p.pid, p.pm2_env.restart_time, p.pm2_env.status]),
      before.map((p) => [p.pid, 0, 'online']), 'the old workers, unreplaced and online');
    assert.deepEqual([...stats.pids.keys()].sort(), before.map((p) => p.pid).sort(), 'only the old workers served');
  });

  test('a rolled-back reload loses no request, even with requests in flight (a worker gets connections only once ready)', async (t) => {
    const { dir, home } = h.useHome(t);
    const flag = path.join(dir, 'send-ready');
    const port = await freePort();
    const before = await readyCluster(home, flag, port);
    fs.writeFileSync(flag, 'no');
    const loop = clientLoop(port);
    const slow = clientLoop(port, { path: '/slow?ms=150' });
    const slow2 = clientLoop(port, { path: '/slow?ms=100' });
    t.after(() => Promise.all([loop.stop(), slow.stop(), slow2.stop()]));
    await loop.progress(5);
    await slow.progress(2);
    const r = await h.rpm2(['reload', 'web'], { home });
    assert.notEqual(r.code, 0, `reload must fail\n${h.show(r)}`);
    await loop.progress(5);
    await slow.progress(2);
    const errors = [...(await loop.stop()).errors, ...(await slow.stop()).errors, ...(await slow2.stop()).errors];
    assert.deepEqual(errors, [], 'failed requests during the rolled-back reload');
    await assertRolledBack(home, port, before);
  });

  test('reload of a cluster app that never listens (a background worker) replaces its workers, as PM2', async (t) => {
    const { home } = h.useHome(t);
    await start(home, node, h.fixture('ipc-sleep.js'), 'bg', ['-i', '2', '--listen-timeout', '1000']);
    const before = await allOnline(home, 'bg', 2);
    const r = await h.rpm2(['reload', 'bg'], { home });
    assert.equal(r.code, 0, h.show(r));
    const after = await allOnline(home, 'bg', 2);
    for (const [i, p] of after.entries()) {
      assert.notEqual(p.pid, before[i].pid, `worker ${p.pm_id} replaced`);
      assert.equal(p.pm2_env.restart_time, 1);
    }
  });

  test('restart (not reload) of -i 2 under a client loop refuses no connection: the listener is held while all workers restart', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
    const before = await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const loop = clientLoop(port);
    t.after(() => loop.stop());
    await loop.progress(5);
    await ok(['restart', 'web'], { home });
    const after = await allOnline(home, 'web', 2);
    for (const [i, p] of after.entries()) assert.notEqual(p.pid, before[i].pid, `worker ${p.pm_id} restarted`);
    await h.waitFor(() => after.every((p) => loop.stats.pids.has(p.pid)), { message: 'both new workers serve the loop' });
    const stats = await loop.stop();
    const refused = stats.errors.filter((c) => c === 'ECONNREFUSED');
    assert.equal(refused.length, 0, `connections refused during the restart: ${JSON.stringify(stats.errors)}`);
  });

  test('server.close() in one worker: it gets no more connections, the other serves them all, nothing refused', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
    const procs = await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const c = await get(port, { path: '/close' });
    assert.ok(c.ok && c.json, JSON.stringify(c));
    const closer = c.json.pid;
    const other = procs.map((p) => p.pid).find((pid) => pid !== closer);
    await waitLog(home, 'web', new RegExp(`server closed main ${closer}`));
    for (let i = 0; i < 10; i++) {
      const r = await get(port, { timeout: 10000 });
      assert.ok(r.ok && r.json, `request ${i} after server.close(): ${JSON.stringify(r)}`);
      assert.equal(r.json.pid, other, `request ${i} went to the worker that still listens`);
    }
    assert.ok(h.isAlive(closer), 'the closing worker keeps running');
  });

  test('-i max runs one worker per CPU, -i -1 CPUs minus one (at least 1)', async (t) => {
    const { home } = h.useHome(t);
    const cpus = os.cpus().length;
    await start(home, node, h.fixture('ipc-sleep.js'), 'max', ['-i', 'max']);
    await start(home, node, h.fixture('ipc-sleep.js'), 'minus', ['-i', '-1']);
    const max = await allOnline(home, 'max', cpus);
    const minus = await allOnline(home, 'minus', Math.max(1, cpus - 1));
    for (const p of [...max, ...minus]) assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
  });

  test('--increment-var PORT gives each worker its own port; --instance-var INSTANCE_ID replaces NODE_APP_INSTANCE\'s name', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePortPair();
    await start(home, node, HTTP_APP, 'web', ['-i', '2', '--increment-var', 'PORT', '--instance-var', 'INSTANCE_ID'],
      { PORT: port, HOST });
    const procs = await allOnline(home, 'web', 2);
    const a = await waitPids(port, 1);
    const b = await waitPids(port + 1, 1);
    const [wa] = [...a.values()];
    const [wb] = [...b.values()];
    assert.notEqual(wa.pid, wb.pid, 'one worker per port');
    assert.deepEqual([wa.envPort, wb.envPort], [String(port), String(port + 1)]);
    assert.deepEqual([wa.instanceId, wb.instanceId].sort(), ['0', '1'], 'INSTANCE_ID is the instance number');
    assert.deepEqual([wa.pid, wb.pid].sort(), procs.map((p) => p.pid).sort());
  });

  test('user messages work in cluster workers: {type, data} from each worker reaches launchBus, sendDataToProcessId reaches a worker', async (t) => {
    const { home } = h.useHome(t);
    const { RPM2 } = require(h.ROOT);
    const rpm2api = new RPM2({ home });
    const events = [];
    const bus = await rpm2api.launchBus();
    t.after(() => bus.close());
    bus.on('*', (topic, data) => events.push({ topic, data }));
    await start(home, node, h.fixture('ipc-messenger.js'), 'msgs', ['-i', '2']);
    const procs = await allOnline(home, 'msgs', 2);
    const from = (topic, id, pred) => events.some((e) => e.topic === topic && e.data.process && e.data.process.pm_id === id && pred(e.data));
    for (const p of procs) {
      await h.waitFor(() => from('my:event', p.pm_id, (d) => d.data && d.data.hello === 'world')
        && from('process:msg', p.pm_id, (d) => d.raw === 'ready'), { message: `messages of worker ${p.pm_id} on the bus` });
    }
    const packet = { id: procs[1].pm_id, topic: 'to-worker', data: { z: 26 } };
    await rpm2api.sendDataToProcessId(procs[1].pm_id, packet);
    await h.waitFor(() => from('echo', procs[1].pm_id, (d) => d.data && d.data.topic === 'to-worker' && d.data.data.z === 26),
      { message: 'the worker echoes the packet' });
    assert.ok(!from('echo', procs[0].pm_id, () => true), 'only the addressed worker got it');
  });

  for (const lb of [null, 'shared']) {
    test(`SIGKILL of the only worker (-i 1${lb ? ` --lb ${lb}` : ''}) refuses no connection: the listener is held while the daemon restarts it`, async (t) => {
      const { home } = h.useHome(t);
      const port = await freePort();
      await start(home, node, HTTP_APP, 'web', ['-i', '1', ...(lb ? ['--lb', lb] : [])], { PORT: port, HOST });
      const [before] = await allOnline(home, 'web', 1);
      await waitPids(port, 1);
      const loop = clientLoop(port);
      t.after(() => loop.stop());
      await loop.progress(5);
      process.kill(before.pid, 'SIGKILL');
      await h.waitForProc(home, 'web', (p) => p.pm2_env.status === 'online' && p.pid > 0 && p.pid !== before.pid,
        { message: 'restarted after SIGKILL' });
      await h.waitFor(() => [...loop.stats.pids.keys()].some((pid) => pid !== before.pid), { message: 'the new worker serves' });
      await loop.progress(5);
      const stats = await loop.stop();
      const refused = stats.errors.filter((c) => c === 'ECONNREFUSED');
      assert.equal(refused.length, 0, `connections refused while the worker restarted: ${JSON.stringify(stats.errors)}`);
    });
  }

  test('scale: `rpm2 scale web 3` then `rpm2 scale web 1`, then 2 again re-uses the NODE_APP_INSTANCE gap', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    await ok(['scale', 'web', '3'], { home });
    const three = await allOnline(home, 'web', 3);
    assert.deepEqual(sortedInstances(three), [0, 1, 2]);
    for (const p of three) assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
    const s3 = await waitPids(port, 3);
    assert.deepEqual([...s3.keys()].sort(), three.map((p) => p.pid).sort(), 'all three workers serve');

    await ok(['scale', 'web', '1'], { home });
    const one = await allOnline(home, 'web', 1);
    assert.equal(one[0].pm_id, three[2].pm_id, 'scaling down removes the lowest ids first (as PM2)');
    for (const p of three.slice(0, 2)) {
      await h.waitFor(() => !h.isAlive(p.pid), { message: `removed worker ${p.pid} is gone` });
    }
    for (let i = 0; i < 5; i++) {
      const r = await get(port);
      assert.ok(r.ok && r.json, JSON.stringify(r));
      assert.equal(r.json.pid, one[0].pid, 'only the remaining worker serves');
    }

    await ok(['scale', 'web', '2'], { home });
    const two = await allOnline(home, 'web', 2);
    assert.deepEqual(sortedInstances(two), [0, 2], 'the new instance fills the gap (NODE_APP_INSTANCE 0)');
    const s2 = await waitPids(port, 2);
    assert.deepEqual([...s2.values()].map((b) => b.instance).sort(), ['0', '2'], 'the workers see their NODE_APP_INSTANCE');
  });

  test('fd hygiene (round-robin): every worker, including ones spawned while connections flow, holds only its own channel socket', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    const loop = clientLoop(port, { path: '/slow?ms=50' });
    t.after(() => loop.stop());
    await loop.progress(3);
    await ok(['scale', 'web', '4'], { home });
    const procs = await allOnline(home, 'web', 4);
    await waitPids(port, 4);
    await loop.stop();
    await h.sleep(200); // the last response's connection closes
    const daemonSockets = new Set(socketInodes(h.daemonPid(home)).map((s) => s.inode));
    const seen = new Map();
    for (const p of procs) {
      const socks = socketInodes(p.pid);
      assert.deepEqual(socks.map((s) => s.fd), [3], `worker ${p.pm_id} (pid ${p.pid}) holds only its channel: ${JSON.stringify(socks)}`);
      assert.ok(!seen.has(socks[0].inode), `workers ${seen.get(socks[0].inode)} and ${p.pm_id} share a channel`);
      seen.set(socks[0].inode, p.pm_id);
      assert.ok(!daemonSockets.has(socks[0].inode), 'the daemon does not keep the child end of a channel');
    }
  });

  test('listen(0) in -i 2 workers gives both the same port', async (t) => {
    const { dir, home } = h.useHome(t);
    const reports = path.join(dir, 'reports');
    fs.mkdirSync(reports);
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: '0', HOST, REPORT_DIR: reports });
    const procs = await allOnline(home, 'web', 2);
    const seen = await h.waitFor(() => {
      const files = fs.readdirSync(reports).filter((f) => f.endsWith('-main.json'));
      return files.length === 2 && files.map((f) => JSON.parse(fs.readFileSync(path.join(reports, f), 'utf8')));
    }, { message: 'both workers listening' });
    assert.deepEqual(seen.map((s) => s.pid).sort(), procs.map((p) => p.pid).sort());
    assert.equal(seen[0].where, seen[1].where, `same port for both workers: ${JSON.stringify(seen)}`);
    assert.ok(seen[0].where > 0);
    await waitPids(seen[0].where, 2);
  });

  test('several listeners per app: two ports, both served by both workers', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    const port2 = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, PORT2: port2, HOST });
    const procs = await allOnline(home, 'web', 2);
    const pids = procs.map((p) => p.pid).sort();
    for (const p of [port, port2]) {
      const seen = await waitPids(p, 2);
      assert.deepEqual([...seen.keys()].sort(), pids, `port ${p}`);
    }
    const r = await get(port2);
    assert.equal(r.json.listener, 'second');
  });

  test('a unix-socket path listener works (http over the socket path, both workers)', async (t) => {
    const { dir, home } = h.useHome(t);
    const sock = path.join(dir, 'web.sock');
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: '0', HOST, SOCK_PATH: sock });
    const procs = await allOnline(home, 'web', 2);
    const seen = await waitPids(0, 2, { socketPath: sock });
    assert.deepEqual([...seen.keys()].sort(), procs.map((p) => p.pid).sort());
    for (const b of seen.values()) assert.equal(b.listener, 'unix');
  });

  test('EADDRINUSE: a port held by someone else is reported to the worker\'s server as EADDRINUSE', async (t) => {
    const { home } = h.useHome(t);
    const holder = net.createServer();
    await new Promise((resolve) => holder.listen(0, HOST, resolve));
    t.after(() => holder.close());
    const port = holder.address().port;
    await start(home, node, HTTP_APP, 'web', ['-i', '1'], { PORT: port, HOST });
    await waitLog(home, 'web', /server error main EADDRINUSE/);
    const [p] = await allOnline(home, 'web', 1);
    assert.equal(p.pm2_env.restart_time, 0, 'the app handled the error and kept running');
  });

  test('--lb shared: the kernel spreads connections, both workers serve', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2', '--lb', 'shared'], { PORT: port, HOST });
    const procs = await allOnline(home, 'web', 2);
    const seen = new Set();
    // Requests that block a worker's event loop make the kernel hand the next ones to the other.
    await h.waitFor(async () => {
      const rs = await Promise.all([0, 1, 2, 3].map(() => get(port, { path: '/busy?ms=30', timeout: 5000 })));
      for (const r of rs) if (r.ok && r.json) seen.add(r.json.pid);
      return seen.size === 2;
    }, { timeout: 30000, interval: 10, message: 'both workers serving' });
    assert.deepEqual([...seen].sort(), procs.map((p) => p.pid).sort());
  });

  test('stop and delete close the listening socket (connections are refused), restart serves again', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, HTTP_APP, 'web', ['-i', '2'], { PORT: port, HOST });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    await ok(['stop', 'web'], { home });
    await h.waitFor(async () => (await tcpConnect(port)) === 'refused', { timeout: 5000, message: 'connect refused after stop' });
    await ok(['restart', 'web'], { home });
    await allOnline(home, 'web', 2);
    await waitPids(port, 2);
    await ok(['delete', 'web'], { home });
    await h.waitFor(async () => (await tcpConnect(port)) === 'refused', { timeout: 5000, message: 'connect refused after delete' });
  });

  test('a non-Node script with -i runs N fork-mode instances (PM2\'s behaviour); exec_mode cluster with it is refused', async (t) => {
    // (README: -i with a non-Node script keeps PM2's behaviour; only an explicit exec_mode cluster is refused.)
    const { dir, home } = h.useHome(t);
    const r = await h.rpm2(['start', SH_APP, '-i', '2', '--name', 'sh'], { home });
    assert.equal(r.code, 0, h.show(r));
    const list = await allOnline(home, 'sh', 2);
    assert.ok(list.every((p) => p.pm2_env.exec_mode === 'fork_mode'), 'fork mode');
    const bad = path.join(dir, 'sh-cluster.json');
    fs.writeFileSync(bad, JSON.stringify({ apps: [{ name: 'shc', script: SH_APP, exec_mode: 'cluster', instances: 2 }] }));
    const r3 = await h.rpm2(['start', bad], { home });
    assert.notEqual(r3.code, 0, `should fail\n${h.show(r3)}`);
    const lines = h.lines(r3.stderr);
    assert.equal(lines.length, 1, `one line on stderr\n${h.show(r3)}`);
    assert.match(lines[0], /cluster mode needs a Node\.js app/, h.show(r3));
    assert.ok(!(await h.jlist(home)).some((p) => p.name === 'shc'), 'nothing started');
  });

  test('ESM: an app.mjs http server runs with -i 2', async (t) => {
    const { home } = h.useHome(t);
    const port = await freePort();
    await start(home, node, ESM_APP, 'esm', ['-i', '2'], { PORT: port, HOST });
    const procs = await allOnline(home, 'esm', 2);
    const seen = await waitPids(port, 2);
    assert.deepEqual([...seen.keys()].sort(), procs.map((p) => p.pid).sort());
    for (const b of seen.values()) {
      assert.equal(b.esm, true);
      assert.equal(b.isWorker, true);
    }
  });

  test('Listing 4-9: a JSON app file with instances 0 (max) and exec_mode cluster runs one worker per CPU', async (t) => {
    const { dir, home } = h.useHome(t);
    const port = await freePort();
    // The seed's multicore/pm2/development.json, comment included, pointed at the http fixture.
    const file = path.join(dir, 'development.json');
    fs.writeFileSync(file, `{
  "name": "multicore",
  "cwd": ${JSON.stringify(path.dirname(HTTP_APP))},
  "max_memory_restart": "60M",
  "watch": false,
  "script": ${JSON.stringify(path.basename(HTTP_APP))},
  "interpreter": ${JSON.stringify(node.bin)},
  "instances": 0, // max
  "exec_mode": "cluster",
  "autorestart": true,
  "merge_logs": true,
  "env": {
    "PORT": ${port},
    "HOST": "${HOST}"
  }
}
`);
    await ok(['start', file], { home });
    const cpus = os.cpus().length;
    const procs = await allOnline(home, 'multicore', cpus);
    for (const p of procs) assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
    const seen = await waitPids(port, cpus);
    assert.deepEqual([...seen.keys()].sort(), procs.map((p) => p.pid).sort());
  });
});
