'use strict';
// End-to-end tests for issue 3 (the app contract): the Node IPC channel rpm2d gives every Node child,
// graceful shutdown ('shutdown' message, SIGINT to the group, SIGKILL after kill_timeout), wait_ready,
// messages child -> daemon -> bus and daemon -> child, faults on the channel, and fd hygiene.
//
// Every behaviour runs on each Node binary of RPM2_TEST_NODES (colon-separated; default: this node),
// the apps being started with `--interpreter <that binary>`. Each test has its own RPM2_HOME and
// cleans up its daemon and apps (helpers.useHome registers cleanup with t.after). Run:
//   RPM2_TEST_NODES=$(node scripts/install-nodes.js | paste -sd:) node --test __test__/ipc.test.js
//
// The bus is read with the JS API (require('rpm2').launchBus(), wildcard '*'), and, where the daemon's
// wire matters, with a raw control-socket client (RawClient below: hello, then subscribe / send).

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const util = require('node:util');
const h = require('./helpers');

const PROBE = h.fixture('ipc-probe.js');
const GRACEFUL = h.fixture('ipc-graceful.js');
const SIGNALS = h.fixture('ipc-signals.js');
const READY = h.fixture('ipc-ready.js');
const MESSENGER = h.fixture('ipc-messenger.js');
const FAULTY = h.fixture('ipc-faulty.js');
const SLEEP = h.fixture('ipc-sleep.js');

// ---------------------------------------------------------------------------------------------------
// Node versions under test

const NODES = h.testNodes();
const SYSTEM_NODE = NODES[0];
const { ok, outLog, waitLog, daemonLog } = h;
const start = h.startOn;

// ---------------------------------------------------------------------------------------------------
// Small helpers

function online(home, name, opts = {}) {
  return h.waitForProc(home, name, (p) => p.pm2_env.status === 'online' && p.pid > 0, opts);
}

/** GET http://127.0.0.1:<port><path> with a fresh connection; never rejects. */
function httpGet(port, p = '/', timeout = 20000) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, agent: false, timeout, headers: { Connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ ok: true, status: res.statusCode, body }));
        res.on('error', (e) => resolve({ ok: false, code: e.code || e.message }));
      });
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e) => resolve({ ok: false, code: e.code || e.message }));
    req.end();
  });
}

/** Collected bus events ({topic, data}) with helpers to find and wait for them. */
class EventLog {
  constructor() {
    this.events = [];
  }

  /** Index of the first event (at or after `from`) matching `pred`, or -1. */
  indexOf(pred, from = 0) {
    for (let i = from; i < this.events.length; i++) if (pred(this.events[i])) return i;
    return -1;
  }

  /** Waits for an event (at or after index `from`) matching `pred`; returns its index. */
  async waitEvent(pred, what, from = 0, timeout = 20000) {
    const i = await h.waitFor(() => {
      const j = this.indexOf(pred, from);
      return j >= 0 ? j + 1 : 0;
    }, { timeout, interval: 20, message: `bus event: ${what}` }).catch((e) => {
      e.message += `\nevents seen:\n${this.events.map((x) => JSON.stringify(x).slice(0, 300)).join('\n')}`;
      throw e;
    });
    return i - 1;
  }
}

/**
 * A raw client of the daemon's control socket (<home>/rpc.sock, JSON lines): `hello` first, then
 * calls; `subscribe()` turns the connection into an event stream collected in `events`.
 */
class RawClient extends EventLog {
  static async open(home) {
    const c = new RawClient(net.createConnection(path.join(home, 'rpc.sock')));
    await new Promise((resolve, reject) => {
      c.sock.once('connect', resolve);
      c.sock.once('error', reject);
    });
    const hello = await c.call('hello', { protocol: 1 });
    assert.ok(hello.result, `hello refused: ${JSON.stringify(hello)}`);
    return c;
  }

  constructor(sock) {
    super();
    this.sock = sock;
    this.nextId = 1;
    this.buf = '';
    this.replies = new Map();
    this.closed = false;
    sock.setEncoding('utf8');
    sock.on('data', (d) => this.onData(d));
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => {});
  }

  onData(d) {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      let m;
      try {
        m = JSON.parse(line);
      } catch {
        continue;
      }
      if (m.event) this.events.push(m.event);
      else this.replies.set(m.id, m);
    }
  }

  /** Sends one request and resolves its reply line ({id, result} or {id, error}). */
  async call(method, params = {}) {
    const id = this.nextId++;
    this.sock.write(`${JSON.stringify({ id, method, params })}\n`);
    return h.waitFor(() => this.replies.get(id) || (this.closed && { id, error: { code: 'closed' } }),
      { timeout: 20000, interval: 20, message: `reply to ${method}` });
  }

  async subscribe(topics = []) {
    const r = await this.call('subscribe', { topics });
    assert.ok(r.result && r.result.subscribed, `subscribe refused: ${JSON.stringify(r)}`);
  }

  close() {
    this.sock.destroy();
  }
}

/** require('rpm2') bound to `home` (a fresh RPM2 instance per test). */
function api(home) {
  const { RPM2 } = require(h.ROOT);
  return new RPM2({ home });
}

/** launchBus() of the JS API for `home`, every event collected through `bus.on('*')`. */
async function apiBus(t, home) {
  const log = new EventLog();
  const bus = await api(home).launchBus();
  t.after(() => bus.close());
  bus.on('*', (topic, data) => log.events.push({ topic, data }));
  return log;
}

/** A daemon for `home` (started by `rpm2 ping`) and a raw client subscribed to every topic. */
async function subscribedBus(t, home) {
  await ok(['ping'], { home });
  const bus = await RawClient.open(home);
  t.after(() => bus.close());
  await bus.subscribe([]);
  return bus;
}

/** Socket inodes and pipe inodes held by `pid` on fds above 2, and the inodes of its fds 1 and 2. */
function fdTable(pid) {
  const sockets = [];
  const pipes = [];
  const std = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = target.match(/^(socket|pipe):\[(\d+)\]$/);
    if (!m) continue;
    const n = Number(fd);
    if (n <= 2) {
      std.push(m[2]);
    } else if (m[1] === 'socket') {
      sockets.push({ fd: n, inode: m[2] });
    } else {
      pipes.push({ fd: n, inode: m[2] });
    }
  }
  return { sockets, pipes, std };
}

// ---------------------------------------------------------------------------------------------------

for (const node of NODES) {
  describe(`IPC channel and app contract on Node ${node.version}`, () => {
    test('a fork-mode child gets NODE_CHANNEL_FD (connected, process.send) and no NODE_UNIQUE_ID; with no message listener it ends by itself (exit 0)', async (t) => {
      const { home } = h.useHome(t);
      await start(home, node, PROBE, 'probe', ['--no-autorestart']);
      const p = await h.waitForProc(home, 'probe', (x) => x.pm2_env.status === 'stopped',
        { message: 'the probe ends by itself (an idle IPC channel must not keep it alive)' });
      assert.equal(p.pm2_env.exit_code, 0, 'exit code 0');
      assert.equal(p.pm2_env.restart_time, 0, 'not restarted');
      assert.equal(p.pid, 0);
      const m = await waitLog(home, 'probe', /^PROBE (.*)$/m);
      const r = JSON.parse(m[1]);
      assert.equal(r.version, node.version, 'the app ran on the requested interpreter');
      assert.equal(r.connected, true, 'process.connected');
      assert.equal(r.sendType, 'function', 'typeof process.send');
      assert.equal(typeof r.channelFd, 'number', 'process.channel.fd');
      assert.equal(r.initialEnv.NODE_CHANNEL_FD, String(r.channelFd), 'NODE_CHANNEL_FD names the channel fd');
      assert.equal(r.initialEnv.NODE_CHANNEL_SERIALIZATION_MODE, 'json');
      assert.equal(r.initialEnv.NODE_UNIQUE_ID, null, 'a fork-mode child must not get NODE_UNIQUE_ID');
      assert.equal(r.isPrimary, true, 'cluster.isPrimary in fork mode');
      assert.equal(r.isWorker, false, 'cluster.isWorker in fork mode');
      assert.equal(r.envNow.NODE_CHANNEL_FD, null, 'Node removed NODE_CHANNEL_FD from process.env');
      assert.match(await outLog(home, 'probe'), /probe done/, 'the app ran to its end');
    });

    test('Listing 4-10 with --shutdown-with-message: stop sends "shutdown", the in-flight request completes, the app exits 0', async (t) => {
      const { home } = h.useHome(t);
      await start(home, node, GRACEFUL, 'graceful', ['--shutdown-with-message', '--kill-timeout', '10000']);
      const port = Number((await waitLog(home, 'graceful', /listening (\d+)/))[1]);
      const hello = await httpGet(port, '/');
      assert.deepEqual([hello.ok, hello.status, hello.body], [true, 200, 'Hello, world.'], JSON.stringify(hello));
      const slow = httpGet(port, '/slow');
      await waitLog(home, 'graceful', /request start \/slow/);
      const stop = await h.rpm2(['stop', 'graceful'], { home });
      assert.equal(stop.code, 0, h.show(stop));
      const r = await slow;
      assert.ok(r.ok, `the in-flight request must complete, got ${JSON.stringify(r)}`);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'slow done');
      const p = await h.waitForProc(home, 'graceful', (x) => x.pm2_env.status === 'stopped');
      assert.equal(p.pm2_env.exit_code, 0, 'the app exited by itself with code 0');
      assert.equal(p.pm2_env.restart_time, 0);
      const log = await outLog(home, 'graceful');
      const got = log.indexOf('got message "shutdown"');
      const closed = log.indexOf('server closed, exiting');
      assert.ok(got >= 0, `the app received 'shutdown'\n${log}`);
      assert.ok(closed > got, `it closed its server after the message\n${log}`);
      assert.ok(log.indexOf('request end /slow') > got, `the request ended after the message\n${log}`);
      assert.doesNotMatch(log, /got SIGINT/, 'with shutdown_with_message no SIGINT is sent');
      const after = await httpGet(port, '/', 2000);
      assert.equal(after.ok, false, 'nothing listens on the port after the stop');
    });

    test('default stop: SIGINT to the process group; an app ignoring SIGINT is SIGKILLed after --kill-timeout; a stop is no crash', async (t) => {
      const { home } = h.useHome(t);
      await start(home, node, SIGNALS, 'polite', ['--kill-timeout', '5000'], { SPAWN_CHILD: '1' });
      await start(home, node, SIGNALS, 'stubborn', ['--kill-timeout', '500'], { IGNORE_SIGINT: '1' });
      const polite = await online(home, 'polite');
      const stubborn = await online(home, 'stubborn');
      const grandchild = Number((await waitLog(home, 'polite', /^grandchild (\d+)$/m))[1]);
      await waitLog(home, 'polite', /signals app ready/);
      await waitLog(home, 'stubborn', /signals app ready/);
      assert.ok(h.isAlive(grandchild), 'the grandchild runs');

      await ok(['stop', 'polite'], { home });
      const log = await waitLog(home, 'polite', /grandchild got SIGINT/, { message: 'the grandchild (same group) got SIGINT' });
      assert.ok(log);
      assert.match(await outLog(home, 'polite'), /^got SIGINT$/m, 'the app got SIGINT');
      await h.waitFor(() => !h.isAlive(polite.pid) && !h.isAlive(grandchild), { message: 'app and grandchild gone' });

      await ok(['stop', 'stubborn'], { home });
      assert.match(await outLog(home, 'stubborn'), /got SIGINT \(ignored\)/, 'SIGINT came first');
      await h.waitFor(() => !h.isAlive(stubborn.pid), { message: 'the stubborn app was SIGKILLed' });
      const dlog = daemonLog(home).split('\n').filter((l) => l.includes('stubborn') && /SIGKILL/.test(l));
      assert.ok(dlog.length > 0, `the daemon log says it sent SIGKILL to stubborn\n${daemonLog(home)}`);

      // Requested stops: stopped, restart count unchanged, and no automatic restart afterwards.
      await h.sleep(1000);
      const list = await h.jlist(home);
      for (const name of ['polite', 'stubborn']) {
        const p = list.find((x) => x.name === name);
        assert.equal(p.pm2_env.status, 'stopped', `${name} stays stopped`);
        assert.equal(p.pm2_env.restart_time, 0, `${name}: a stop is not a restart`);
        assert.equal(p.pid, 0, `${name} has no pid`);
      }
      assert.equal(list.find((x) => x.name === 'polite').pm2_env.exit_code, 0, 'the polite app exited 0');
    });

    test('reload of a fork-mode app is a graceful restart: "shutdown" (with --shutdown-with-message), exit, start', async (t) => {
      const { home } = h.useHome(t);
      await start(home, node, GRACEFUL, 'graceful', ['--shutdown-with-message', '--kill-timeout', '10000']);
      const p = await online(home, 'graceful');
      await waitLog(home, 'graceful', /listening \d+/);
      const r = await h.rpm2(['reload', 'graceful'], { home });
      assert.equal(r.code, 0, h.show(r));
      const q = await online(home, 'graceful');
      assert.notEqual(q.pid, p.pid, 'a new process');
      assert.equal(q.pm2_env.restart_time, 1, 'restart_time incremented');
      assert.ok(!h.isAlive(p.pid), 'the old process is gone');
      const log = await outLog(home, 'graceful');
      assert.match(log, /got message "shutdown"[\s\S]*server closed, exiting/, 'the old process closed on "shutdown"');
      assert.doesNotMatch(log, /got SIGINT/);
      await waitLog(home, 'graceful', /listening \d+[\s\S]*listening \d+/, { message: 'the new process listens' });
    });

    test('wait_ready: status is launching until the app sends "ready", then online; without "ready" it is online after listen_timeout', async (t) => {
      const { dir, home } = h.useHome(t);
      const flag = path.join(dir, 'send-ready-now');
      const starting = h.rpm2(['start', READY, '--name', 'ready', '--interpreter', node.bin, '--wait-ready',
        '--listen-timeout', '30000'], { home, env: { READY_FILE: flag } });
      // A parallel `rpm2 jlist` sees the app launching while it has not sent 'ready'.
      const launching = await h.waitForProc(home, 'ready', (p) => p.pm2_env.status === 'launching' && p.pid > 0,
        { message: 'status launching while waiting for ready' });
      await waitLog(home, 'ready', /ready app started/);
      assert.equal((await h.proc(home, 'ready')).pm2_env.status, 'launching', 'still launching once the app runs');
      fs.writeFileSync(flag, '');
      const r = await starting;
      assert.equal(r.code, 0, h.show(r));
      const p = await h.proc(home, 'ready');
      assert.equal(p.pm2_env.status, 'online', 'online once ready was sent');
      assert.equal(p.pid, launching.pid, 'same process');
      assert.match(await outLog(home, 'ready'), /sent ready/);

      // Never ready: online after listen_timeout, the start command succeeds, the process is kept.
      const r2 = await h.rpm2(['start', READY, '--name', 'never', '--interpreter', node.bin, '--wait-ready',
        '--listen-timeout', '1000'], { home });
      assert.equal(r2.code, 0, h.show(r2));
      const never = await online(home, 'never');
      assert.equal(never.pm2_env.restart_time, 0);
      assert.ok(h.isAlive(never.pid));
      const timeoutLine = daemonLog(home).split('\n').find((l) => l.includes('never') && /listen_timeout|ready/.test(l));
      assert.ok(timeoutLine, `the daemon log says 'never' did not send ready in time\n${daemonLog(home)}`);
    });

    test('child -> daemon -> launchBus(): {type, data}, other values as process:msg raw, "ready", process:event online/exit/stop/restart/delete, log:out/err', async (t) => {
      const { home } = h.useHome(t);
      const bus = await apiBus(t, home);
      await start(home, node, MESSENGER, 'messenger');
      const p = await online(home, 'messenger');
      const mine = (e) => e.data && e.data.process && e.data.process.name === 'messenger' && e.data.process.pm_id === p.pm_id;
      const eq = util.isDeepStrictEqual;

      const iOnline = await bus.waitEvent((e) => e.topic === 'process:event' && mine(e) && e.data.event === 'online', 'process:event online');
      const iMsg = await bus.waitEvent((e) => e.topic === 'process:msg' && mine(e) && eq(e.data.data, { x: 1 }), 'process:msg {x:1}');
      assert.equal(typeof bus.events[iMsg].data.at, 'number', 'process:msg carries `at`');
      const iCustom = await bus.waitEvent((e) => e.topic === 'my:event' && mine(e) && eq(e.data.data, { hello: 'world' }), 'my:event');
      const iRaw = await bus.waitEvent((e) => e.topic === 'process:msg' && mine(e) && eq(e.data.raw, { foo: 1 }), 'process:msg raw {foo:1}');
      const iReady = await bus.waitEvent((e) => e.topic === 'process:msg' && mine(e) && e.data.raw === 'ready', "process:msg raw 'ready'");
      assert.ok(iMsg < iCustom && iCustom < iRaw && iRaw < iReady, 'messages arrive in the order the child sent them');
      await bus.waitEvent((e) => e.topic === 'log:out' && mine(e) && String(e.data.data).includes(`messenger log line ${p.pid}`), 'log:out line');
      await bus.waitEvent((e) => e.topic === 'log:err' && mine(e) && String(e.data.data).includes(`messenger err line ${p.pid}`), 'log:err line');

      // A crash: exit event (with the signal, not manual), then back online (automatic restart).
      process.kill(p.pid, 'SIGKILL');
      const event = (name) => (e) => e.topic === 'process:event' && mine(e) && e.data.event === name;
      const iExit = await bus.waitEvent(event('exit'), 'process:event exit', iOnline + 1);
      const ex = bus.events[iExit].data;
      assert.equal(ex.process.exit_signal, 'SIGKILL', `the exit event names the signal: ${JSON.stringify(ex)}`);
      assert.equal(ex.manually, false, 'a crash is not manual');
      const iOnline2 = await bus.waitEvent(event('online'), 'process:event online after the crash', iExit + 1);
      await h.waitForProc(home, 'messenger', (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p.pid);
      await ok(['stop', 'messenger'], { home });
      const iStop = await bus.waitEvent(event('stop'), 'process:event stop', iOnline2 + 1);
      assert.equal(bus.events[iStop].data.manually, true, 'a stop is manual');
      await ok(['restart', 'messenger'], { home });
      const iRestart = await bus.waitEvent(event('restart'), 'process:event restart', iStop + 1);
      await bus.waitEvent(event('online'), 'process:event online after the restart', iRestart + 1);
      await ok(['delete', 'messenger'], { home });
      await bus.waitEvent(event('delete'), 'process:event delete', iRestart + 1);
    });

    test('daemon -> child: method `send` and sendDataToProcessId deliver the packet verbatim; sendSignal SIGUSR2 reaches the app', async (t) => {
      const { home } = h.useHome(t);
      const bus = await subscribedBus(t, home);
      await start(home, node, MESSENGER, 'messenger');
      const p = await online(home, 'messenger');
      await waitLog(home, 'messenger', /messenger log line/);
      const echoed = (packet) => (e) => e.topic === 'echo' && e.data.process && e.data.process.pm_id === p.pm_id
        && util.isDeepStrictEqual(e.data.data, packet);

      // The daemon method, on the wire.
      const packet = { topic: 't', data: { a: 1 }, id: p.pm_id };
      const c = await RawClient.open(home);
      t.after(() => c.close());
      const r = await c.call('send', { id: p.pm_id, packet });
      assert.ok(r.result, `send failed: ${JSON.stringify(r)}`);
      await bus.waitEvent(echoed(packet), 'the child echoes the packet it received');
      const m = await waitLog(home, 'messenger', /^got message (\{.*"topic":"t".*\})$/m);
      assert.deepEqual(JSON.parse(m[1]), packet, 'the child received exactly the packet');

      // The JS API.
      const packet2 = { id: p.pm_id, type: 'process:msg', topic: 'from-api', data: { b: [1, 'two', null], s: 'é\n"' } };
      const res = await api(home).sendDataToProcessId(p.pm_id, packet2);
      assert.equal(res.success, true, JSON.stringify(res));
      await bus.waitEvent(echoed(packet2), 'the child echoes the API packet');

      const s = await h.rpm2(['sendSignal', 'SIGUSR2', 'messenger'], { home });
      assert.equal(s.code, 0, h.show(s));
      await waitLog(home, 'messenger', /got SIGUSR2/);
      await api(home).sendSignalToProcessName('SIGUSR2', 'messenger');
      await h.waitFor(async () => (await outLog(home, 'messenger')).match(/got SIGUSR2/g).length >= 2,
        { message: 'the second SIGUSR2 (sendSignalToProcessName) arrived' });
      const after = await h.proc(home, 'messenger');
      assert.equal(after.pid, p.pid, 'no restart');
      assert.equal(after.pm2_env.restart_time, 0);
    });

    test('faults on the channel (garbage, 6 MB line, stray NODE_HANDLE_ACK, disconnect, a handle, a flood): daemon up, others untouched, faulty apps still supervised', async (t) => {
      const { home } = h.useHome(t);
      const bus = await subscribedBus(t, home);
      await start(home, node, SLEEP, 'bystander');
      const bystander = await online(home, 'bystander');
      const faults = ['garbage', 'big', 'ack', 'disconnect', 'handle', 'flood'];
      for (const f of faults) await start(home, node, FAULTY, `faulty-${f}`, [], { FAULT: f });
      const first = {};
      for (const f of faults) {
        await waitLog(home, `faulty-${f}`, new RegExp(`fault done ${f}`));
        first[f] = await online(home, `faulty-${f}`);
      }
      // A handle from the child is ACKed: the message after it is not stalled.
      await bus.waitEvent((e) => e.topic === 'after:handle' && e.data.process && e.data.process.name === 'faulty-handle',
        'the message sent after a handle arrives (the daemon ACKed the handle)');
      // A flood is drained: its last message arrives (events in between may be dropped as lagged).
      await bus.waitEvent((e) => e.topic === 'flood:end' && e.data.process && e.data.process.name === 'faulty-flood',
        'the last message of a 100000-message flood', 0, 60000);

      const ping = await h.rpm2(['ping'], { home });
      assert.equal(ping.code, 0, `the daemon answers\n${h.show(ping)}`);
      const dl = () => daemonLog(home).split('\n');
      for (const f of ['garbage', 'big', 'ack']) {
        await h.waitFor(() => dl().some((l) => l.includes(`faulty-${f}`) && /ipc/i.test(l)),
          { message: `the daemon log names faulty-${f} for its IPC fault` }).catch((e) => {
          e.message += `\n--- rpm2.log ---\n${daemonLog(home)}`;
          throw e;
        });
      }
      // Still supervised: a SIGKILL is seen (by waitpid, not channel EOF) and the app restarted.
      for (const f of faults) {
        const p = first[f];
        assert.equal((await h.proc(home, p.name)).pid, p.pid, `${p.name} kept running after its fault`);
        process.kill(p.pid, 'SIGKILL');
        await h.waitForProc(home, p.name, (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p.pid
          && x.pm2_env.restart_time >= 1, { message: `${p.name} restarted after SIGKILL` });
      }
      const b = await h.proc(home, 'bystander');
      assert.equal(b.pm2_env.status, 'online');
      assert.equal(b.pid, bystander.pid, 'the bystander kept its pid');
      assert.equal(b.pm2_env.restart_time, 0);
      const ping2 = await h.rpm2(['ping'], { home });
      assert.equal(ping2.code, 0, h.show(ping2));
    });
  });
}

describe(`fd hygiene on Node ${SYSTEM_NODE.version}`, () => {
  test('50 fork apps: each child holds exactly one socket (its channel, fd 3), no other child\'s channel or log pipe, and the daemon keeps no child end', { timeout: 180000 }, async (t) => {
    const { dir, home } = h.useHome(t);
    const N = 50;
    const apps = Array.from({ length: N }, (_, i) => ({
      name: `sleep-${i}`, script: SLEEP, interpreter: SYSTEM_NODE.bin, autorestart: false,
    }));
    const file = path.join(dir, 'fifty.json');
    fs.writeFileSync(file, JSON.stringify({ apps }));
    await ok(['start', file], { home, timeout: 120000 });
    const list = await h.waitFor(async () => {
      const l = await h.jlist(home);
      return l.length === N && l.every((p) => p.pm2_env.status === 'online' && p.pid > 0) && l;
    }, { timeout: 90000, message: `${N} apps online` });
    const tables = new Map(list.map((p) => [p.pid, fdTable(p.pid)]));
    const stdPipes = new Map();
    for (const [pid, tb] of tables) for (const i of tb.std) stdPipes.set(i, pid);
    const channels = new Map();
    for (const [pid, tb] of tables) {
      assert.equal(tb.sockets.length, 1, `pid ${pid} holds exactly one socket above fd 2: ${JSON.stringify(tb.sockets)}`);
      assert.equal(tb.sockets[0].fd, 3, `pid ${pid}: the channel is fd 3`);
      assert.ok(!channels.has(tb.sockets[0].inode), `pid ${pid} shares its channel socket with pid ${channels.get(tb.sockets[0].inode)}`);
      channels.set(tb.sockets[0].inode, pid);
      for (const pp of tb.pipes) {
        const owner = stdPipes.get(pp.inode);
        assert.ok(owner === undefined || owner === pid, `pid ${pid} holds fd ${pp.fd} = the stdout/stderr pipe of pid ${owner}`);
      }
    }
    const daemon = h.daemonPid(home);
    assert.ok(daemon > 0);
    const held = fdTable(daemon).sockets.map((s) => s.inode).filter((i) => channels.has(i));
    assert.deepEqual(held, [], 'the daemon keeps no child end of a channel');
  });
});
