// End-to-end tests of `require('rpm2')`: the real addon, a real daemon per test (its own temporary
// RPM2_HOME), real fixture apps. Run with `node --test __test__/api.test.js` after `npm run build`.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const rpm2 = require('..');

const FIX = path.join(__dirname, 'fixtures');
const TICK = path.join(FIX, 'api-tick.js');
const ECHO = path.join(FIX, 'api-echo.js');
const EXIT = path.join(FIX, 'api-exit.js');

// A fresh API instance on its own RPM2_HOME; the daemon (and every app) is killed after the test,
// by killDaemon or, if that fails, by pid.
function setup(t) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-api-'));
  const api = new rpm2.custom({ home });
  const pids = new Set();
  api._trackPids = async () => {
    try {
      for (const p of await api.list()) if (p.pid) pids.add(p.pid);
    } catch {
      /* daemon already gone */
    }
  };
  t.after(async () => {
    await api._trackPids();
    let daemonPid = 0;
    try {
      daemonPid = Number(fs.readFileSync(path.join(home, 'rpm2d.pid'), 'utf8')) || 0;
    } catch {
      /* never started */
    }
    await api.disconnect();
    try {
      await api.killDaemon();
    } catch (e) {
      for (const pid of [...pids, daemonPid]) {
        if (!pid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      throw e;
    }
    fs.rmSync(home, { recursive: true, force: true });
  });
  return { api, home };
}

function wait(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Resolves with the first event for which pred(args) is true, on `bus`'s `name` listener.
function nextEvent(bus, name, pred = () => true, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      bus.removeListener(name, on);
      reject(new Error(`no matching '${name}' event within ${timeoutMs} ms (${pred})`));
    }, timeoutMs);
    function on(...args) {
      if (!pred(...args)) return;
      clearTimeout(timer);
      bus.removeListener(name, on);
      resolve(args);
    }
    bus.on(name, on);
  });
}

async function until(fn, timeoutMs = 8000, what = 'condition') {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(50);
  }
}

test('connect(): Promise and callback styles report the daemon and the home', async (t) => {
  const { api, home } = setup(t);
  const first = await api.connect();
  assert.equal(first.daemon_mode, true);
  assert.equal(first.new_pm2_instance, true, 'the first connect starts the daemon');
  assert.equal(first.pm2_home, home);
  assert.equal(first.rpc_socket_file, path.join(home, 'rpc.sock'));
  const second = await new Promise((resolve, reject) =>
    api.connect((err, res) => (err ? reject(err) : resolve(res))),
  );
  assert.equal(second.new_pm2_instance, false, 'a running daemon is reused');
  assert.equal(api.connect(() => {}), undefined, 'with a callback nothing is returned');
  assert.deepEqual(await api.ping(), { msg: 'pong' });
  assert.equal(typeof (await api.getVersion()), 'string');
});

test('start(script, opts) with Promises: list() and describe() have PM2 shapes', async (t) => {
  const { api } = setup(t);
  const started = await api.start(TICK, {
    name: 'ticker',
    env: { TICK_TAG: 'hello' },
    killTimeout: 500,
    max_restarts: 3,
    args: ['--flag'],
  });
  assert.equal(started.length, 1);
  assert.equal(started[0].name, 'ticker');
  assert.ok(started[0].pm2_env, 'started processes carry pm2_env');

  const list = await api.list();
  assert.equal(list.length, 1);
  const p = list[0];
  for (const k of ['pid', 'name', 'pm_id', 'monit', 'pm2_env']) assert.ok(k in p, `list item has ${k}`);
  assert.equal(p.name, 'ticker');
  assert.equal(p.pm_id, 0);
  assert.ok(p.pid > 0);
  assert.equal(typeof p.monit.memory, 'number');
  assert.equal(typeof p.monit.cpu, 'number');
  assert.equal(p.pm2_env.status, 'online');
  assert.equal(p.pm2_env.exec_mode, 'fork_mode');
  assert.equal(p.pm2_env.pm_exec_path, TICK);
  assert.equal(p.pm2_env.kill_timeout, 500);
  assert.equal(p.pm2_env.max_restarts, 3);
  assert.deepEqual(p.pm2_env.args, ['--flag']);
  assert.equal(p.pm2_env.env.TICK_TAG, '[hidden]', 'env values are hidden by default');

  const withEnv = await api.describe('ticker', { env: true });
  assert.equal(withEnv[0].pm2_env.env.TICK_TAG, 'hello', 'the app env is merged over process.env');
  assert.equal(withEnv[0].pm2_env.env.PATH, process.env.PATH, "the caller's environment is the base");

  const byId = await api.describe(0);
  assert.equal(byId.length, 1);
  assert.equal(byId[0].name, 'ticker');
  assert.deepEqual(await api.describe('nope'), [], 'describe of an unknown app is [] (as PM2)');
});

test('start() with callbacks: an app object, then an array of apps', async (t) => {
  const { api } = setup(t);
  const res = await new Promise((resolve, reject) =>
    api.start({ script: TICK, name: 'obj-app', namespace: 'api-ns' }, (err, r) => (err ? reject(err) : resolve(r))),
  );
  assert.equal(res.length, 1);
  assert.equal(res[0].name, 'obj-app');

  const arr = await new Promise((resolve, reject) =>
    api.start(
      [
        { script: TICK, name: 'arr-a', namespace: 'api-ns' },
        { script: TICK, name: 'arr-b', autorestart: false },
      ],
      {},
      (err, r) => (err ? reject(err) : resolve(r)),
    ),
  );
  assert.deepEqual(arr.map((p) => p.name).sort(), ['arr-a', 'arr-b']);
  const list = await api.list();
  assert.deepEqual(list.map((p) => p.name).sort(), ['arr-a', 'arr-b', 'obj-app']);
  assert.equal(list.find((p) => p.name === 'arr-b').pm2_env.autorestart, false);

  // Starting an app object whose name exists restarts it with the new declaration (as PM2).
  const again = await api.start({ script: TICK, name: 'obj-app', namespace: 'api-ns' });
  assert.equal(again.length, 1);
  assert.equal(again[0].name, 'obj-app');
  assert.equal(again[0].restart_time, 1);

  // The namespace is a target.
  const stopped = await api.stop('api-ns');
  assert.deepEqual(stopped.map((p) => p.name).sort(), ['arr-a', 'obj-app']);

  // An invalid declaration is an Error with the core's one-line message.
  await assert.rejects(api.start({ name: 'no-script' }), (e) => {
    assert.match(e.message, /'script' is missing/);
    assert.equal(e.code, 'bad_config');
    return true;
  });
  await assert.rejects(api.start(path.join(FIX, 'does-not-exist.js')), /script not found/);
});

test('stop, restart, delete and reset return PM2 operate shapes', async (t) => {
  const { api } = setup(t);
  await api.start(TICK, { name: 'ops', killTimeout: 500 });
  const pid0 = (await api.describe('ops'))[0].pid;

  const stopped = await api.stop('ops');
  assert.equal(stopped.length, 1);
  const s = stopped[0];
  assert.deepEqual(
    { name: s.name, namespace: s.namespace, pm_id: s.pm_id, status: s.status },
    { name: 'ops', namespace: 'default', pm_id: 0, status: 'stopped' },
  );
  assert.equal(s.pm2_env.status, 'stopped');
  assert.equal(s.pm2_env.name, 'ops');
  assert.equal((await api.describe('ops'))[0].pm2_env.status, 'stopped');

  const restarted = await new Promise((resolve, reject) =>
    api.restart('ops', (err, r) => (err ? reject(err) : resolve(r))),
  );
  assert.equal(restarted[0].status, 'online');
  const d1 = (await api.describe('ops'))[0];
  assert.notEqual(d1.pid, pid0);

  const restarted2 = await api.restart(0);
  assert.equal(restarted2[0].pm_id, 0);
  assert.ok(restarted2[0].restart_time >= 1);

  const reset = await api.reset('ops');
  assert.equal(reset[0].restart_time, 0);

  const reloaded = await api.reload('ops');
  assert.equal(reloaded[0].name, 'ops');

  const deleted = await api.delete('ops');
  assert.equal(deleted.length, 1);
  assert.equal(deleted[0].name, 'ops');
  assert.deepEqual(await api.list(), []);
  await until(() => !fs.existsSync(`/proc/${d1.pid}`) || isZombie(d1.pid), 5000, 'the deleted app to exit');
});

test('dump, resurrect, scale and getProcessIdByName work as the CLI commands do', async (t) => {
  const { api, home } = setup(t);
  await api.start(TICK, { name: 'saved', killTimeout: 500 });
  assert.deepEqual(await api.getProcessIdByName('saved'), [0]);
  assert.deepEqual(await api.getProcessIdByName('nobody'), []);
  // A second app whose script is removed after the save: resurrect skips it with a warning.
  const gone = path.join(home, 'gone-later.js');
  fs.copyFileSync(TICK, gone);
  await api.start(gone, { name: 'vanishing', killTimeout: 500 });

  assert.deepEqual(await api.dump(), { success: true });
  const dump = JSON.parse(fs.readFileSync(path.join(home, 'dump.rpm2'), 'utf8'));
  assert.equal(dump.format, 1, 'dump.rpm2 carries its format');
  assert.deepEqual(dump.apps.map((a) => a.spec.name).sort(), ['saved', 'vanishing']);

  const scaled = await new Promise((resolve, reject) =>
    api.scale('saved', 2, (err, r) => (err ? reject(err) : resolve(r))),
  );
  assert.deepEqual(scaled, { success: true });
  await until(async () => (await api.getProcessIdByName('saved')).length === 2, 8000, 'two instances');
  await assert.rejects(api.scale('saved', 'lots'), /number/i);
  await assert.rejects(api.scale('ghost', 2), /ghost/);

  await api.delete('all');
  assert.deepEqual(await api.list(), []);
  fs.rmSync(gone);
  const warned = [];
  const onWarning = (w) => w.name === 'RPM2Warning' && warned.push(w.message);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const back = await api.resurrect();
  assert.deepEqual(back.map((p) => p.name), ['saved'], 'resurrect resolves to the processes started');
  const names = (await api.list()).map((p) => p.name);
  assert.deepEqual(names, ['saved']);
  await until(() => warned.length > 0, 2000, 'the warning event');
  assert.ok(
    warned.some((m) => m.includes("'vanishing'") && m.includes('no longer exists')),
    `a warning names the app whose script is gone: ${JSON.stringify(warned)}`,
  );
  assert.equal((await api.describe('saved'))[0].pm2_env.status, 'online');
});

function isZombie(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

test('restart(target, {updateEnv}) refreshes the environment from process.env', async (t) => {
  const { api } = setup(t);
  await api.start(TICK, { name: 'envy', killTimeout: 500 });
  const key = 'RPM2_API_TEST_UPDATE_ENV';
  process.env[key] = 'v1';
  t.after(() => delete process.env[key]);
  await api.restart('envy');
  assert.equal((await api.describe('envy', { env: true }))[0].pm2_env.env[key], undefined, 'kept without updateEnv');
  await api.restart('envy', { updateEnv: true });
  assert.equal((await api.describe('envy', { env: true }))[0].pm2_env.env[key], 'v1');
});

test('unknown targets are Errors saying "process or namespace not found" with the name', async (t) => {
  const { api } = setup(t);
  await api.start(TICK, { name: 'known' });
  for (const [what, call] of [
    ['stop', () => api.stop('ghost')],
    ['restart', () => api.restart('ghost')],
    ['reload', () => api.reload('ghost')],
    ['delete', () => api.delete('ghost')],
    ['reset', () => api.reset('ghost')],
    ['signal', () => api.sendSignalToProcessName('SIGUSR2', 'ghost')],
  ]) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof Error, what);
      assert.equal(e.message, 'process or namespace not found: ghost', what);
      assert.equal(e.code, 'not_found', what);
      return true;
    });
  }
  await assert.rejects(api.stop(42), { message: 'process or namespace not found: 42', code: 'not_found' });
  // Callback style gets the same error.
  const err = await new Promise((resolve) => api.stop('ghost', (e) => resolve(e)));
  assert.match(err.message, /process or namespace not found: ghost/);
  // A running app of the same name is refused (with force it is started again).
  await assert.rejects(api.start(TICK, { name: 'known' }), { code: 'already_running' });
  assert.equal((await api.start(TICK, { name: 'known', force: true })).length, 1);
  assert.equal((await api.list()).length, 2);
});

test('launchBus: process:event, log:out / log:err, wildcards and custom types', async (t) => {
  const { api } = setup(t);
  const bus = await api.launchBus();
  assert.ok(bus instanceof require('events').EventEmitter);
  const all = [];
  bus.on('*', (topic, data) => all.push([topic, data]));
  const logTypes = new Set();
  bus.on('log:*', (type) => logTypes.add(type));

  const online = nextEvent(bus, 'process:event', (d) => d.event === 'online' && d.process.name === 'busy');
  const tick = nextEvent(bus, 'log:out', (d) => d.process.name === 'busy' && /tick \d+/.test(d.data));
  const errLine = nextEvent(bus, 'log:err', (d) => /api-tick stderr line/.test(d.data));
  const hello = nextEvent(bus, 'api:hello');
  await api.start(TICK, { name: 'busy', killTimeout: 500 });
  await api.start(ECHO, { name: 'echo' });

  const [ev] = await online;
  assert.equal(ev.manually, true);
  assert.equal(typeof ev.at, 'number');
  assert.equal(ev.process.pm_id, 0);
  const [out] = await tick;
  assert.equal(out.process.pm_id, 0);
  assert.equal(typeof out.at, 'number');
  await errLine;
  const [h] = await hello;
  assert.equal(h.process.name, 'echo');
  assert.equal(typeof h.data.pid, 'number');
  assert.ok(logTypes.has('out') && logTypes.has('err'), 'log:* receives the type (out/err) first');
  assert.ok(all.some(([topic]) => topic === 'api:hello'), "'*' receives the topic first");

  const stop = nextEvent(bus, 'process:event', (d) => d.event === 'stop' && d.process.name === 'busy');
  await api.stop('busy');
  await stop;

  // A process that exits by itself gives an 'exit' event with its code.
  const exit = nextEvent(bus, 'process:event', (d) => d.event === 'exit' && d.process.name === 'quitter');
  await api.start(EXIT, { name: 'quitter', autorestart: false });
  const [x] = await exit;
  assert.equal(x.manually, false);
  assert.equal(x.process.exit_code, 3);

  let closed = false;
  bus.on('close', () => (closed = true));
  bus.close();
  await until(() => closed, 3000, 'the bus to close');
  const n = all.length;
  await api.restart('echo');
  await wait(300);
  assert.equal(all.length, n, 'a closed bus receives nothing');
});

test('sendDataToProcessId delivers the packet verbatim; the child echoes it to the bus', async (t) => {
  const { api } = setup(t);
  const bus = await new Promise((resolve, reject) => api.launchBus((err, b) => (err ? reject(err) : resolve(b))));
  const hello = nextEvent(bus, 'api:hello');
  const [proc] = await api.start(ECHO, { name: 'echo' });
  await hello; // the child's IPC channel is up

  const packet = { topic: 'ping', data: { some: 'data', n: [1, 2, 3], nested: { ok: true } }, type: 'process:msg' };
  const echoed = nextEvent(bus, 'process:msg', (d) => d.data && d.data.echo && d.data.echo.topic === 'ping');
  const pong = nextEvent(bus, 'api:pong');
  const res = await api.sendDataToProcessId(proc.pm_id, packet);
  assert.deepEqual(res, { success: true, data: { ...packet, id: proc.pm_id } });
  const [msg] = await echoed;
  assert.deepEqual(msg.data.echo, { ...packet, id: proc.pm_id }, 'the child received exactly the packet');
  assert.equal(msg.process.name, 'echo');
  const [p] = await pong;
  assert.deepEqual(p.data, { got: packet.data });

  // The (packet, cb) form, with the id inside the packet.
  const res2 = await new Promise((resolve, reject) =>
    api.sendDataToProcessId({ id: proc.pm_id, topic: 't2', data: 42 }, (err, r) => (err ? reject(err) : resolve(r))),
  );
  assert.deepEqual(res2, { success: true, data: { id: proc.pm_id, topic: 't2', data: 42 } });

  // PM2's validation: id, data and a truthy topic are required.
  for (const bad of [{ topic: 'x', data: 1 }, { id: proc.pm_id, data: 1 }, { id: proc.pm_id, topic: '', data: 1 }]) {
    await assert.rejects(api.sendDataToProcessId(bad), { message: 'ID, DATA or TOPIC field is missing' });
  }
  await assert.rejects(api.sendDataToProcessId(proc.pm_id, { topic: 'x' }), /ID, DATA or TOPIC field is missing/);
  await assert.rejects(api.sendDataToProcessId(99, { topic: 'x', data: 1 }), { code: 'not_found' });
});

test('sendSignalToProcessName and sendSignalToProcessId reach the app', async (t) => {
  const { api } = setup(t);
  const bus = await api.launchBus();
  const started = nextEvent(bus, 'log:out', (d) => /api-tick started/.test(d.data));
  await api.start(TICK, { name: 'sig' });
  await started;
  const got = nextEvent(bus, 'log:out', (d) => /got SIGUSR2/.test(d.data));
  const list = await api.sendSignalToProcessName('SIGUSR2', 'sig');
  assert.ok(Array.isArray(list) && list[0].name === 'sig', 'resolves to the process list');
  await got;
  const got2 = nextEvent(bus, 'log:out', (d) => /got SIGUSR2/.test(d.data));
  await new Promise((resolve, reject) =>
    api.sendSignalToProcessId('SIGUSR2', 0, (err, r) => (err ? reject(err) : resolve(r))),
  );
  await got2;
  await assert.rejects(api.sendSignalToProcessName('SIGNOPE', 'sig'), { code: 'bad_request' });
  // A script file is a target as in the CLI (`rpm2 sendSignal SIGUSR2 api-tick.js`), from the API's cwd.
  const byFile = new rpm2.custom({ home: api.home, cwd: FIX });
  const got3 = nextEvent(bus, 'log:out', (d) => /got SIGUSR2/.test(d.data));
  await byFile.sendSignalToProcessName('SIGUSR2', 'api-tick.js');
  await got3;
  await assert.rejects(byFile.monitor('nope.js'), { code: 'not_found', message: 'process or namespace not found: nope.js' });
  await assert.rejects(byFile.monitor(), { code: 'bad_request', message: 'Please specify an <app_name|pm_id>' });
});

test('flush, reloadLogs, killDaemon and kill', async (t) => {
  const { api, home } = setup(t);
  await api.start(TICK, { name: 'logger' });
  const [p] = await api.describe('logger');
  const out = p.pm2_env.pm_out_log_path;
  await until(() => fs.existsSync(out) && fs.statSync(out).size > 0, 5000, 'the out log');
  await api.stop('logger');
  const flushed = await api.flush('logger');
  assert.ok(Array.isArray(flushed));
  assert.equal(fs.statSync(out).size, 0);
  await assert.rejects(api.flush('ghost'), { code: 'not_found', message: 'process or namespace not found: ghost' });
  fs.writeFileSync(out, 'again\n');
  await new rpm2.custom({ home, cwd: FIX }).flush(path.basename(TICK)); // a script file, as in the CLI
  assert.equal(fs.statSync(out).size, 0, 'flushed by script file');
  assert.deepEqual(await api.reloadLogs(), {});

  const killed = await api.killDaemon();
  assert.deepEqual(killed, { success: true });
  assert.equal(fs.existsSync(path.join(home, 'rpc.sock')), false, 'the daemon is gone');
  // Killing when no daemon runs succeeds without starting one.
  assert.deepEqual(await new Promise((resolve, reject) => api.kill((e, r) => (e ? reject(e) : resolve(r)))), {
    success: true,
  });
  assert.equal(fs.existsSync(path.join(home, 'rpc.sock')), false);
});

test('an ecosystem file: start, restart with its declaration, stop by file', async (t) => {
  const { api, home } = setup(t);
  const eco = path.join(home, 'eco.config.js');
  fs.writeFileSync(
    eco,
    `module.exports = { apps: [{ name: 'eco-a', script: ${JSON.stringify(TICK)}, env: { TICK_TAG: 'a' },
      env_production: { TICK_TAG: 'prod' } }] };\n`,
  );
  const res = await api.start(eco);
  assert.deepEqual(res.map((p) => p.name), ['eco-a']);
  const again = await api.start(eco, { env: 'production' });
  assert.equal(again[0].name, 'eco-a');
  assert.equal((await api.describe('eco-a', { env: true }))[0].pm2_env.env.TICK_TAG, 'prod');
  const stopped = await api.stop(eco);
  assert.equal(stopped[0].status, 'stopped');
  // restart(file) applies the file again; reload(app object) too.
  const restarted = await api.restart(eco);
  assert.equal(restarted[0].name, 'eco-a');
  assert.equal((await api.describe('eco-a'))[0].pm2_env.status, 'online');

  // Deleting by file works from the names even when a script has gone.
  const copy = path.join(home, 'gone.js');
  fs.copyFileSync(TICK, copy);
  const eco2 = path.join(home, 'eco2.config.js');
  fs.writeFileSync(eco2, `module.exports = [{ script: ${JSON.stringify(copy)} }];\n`);
  assert.deepEqual((await api.start(eco2)).map((p) => p.name), ['gone']);
  fs.unlinkSync(copy);
  assert.deepEqual((await api.delete(eco2)).map((p) => p.name), ['gone']);
  assert.deepEqual((await api.delete({ script: TICK, name: 'eco-a' })).map((p) => p.name), ['eco-a']);
  assert.deepEqual(await api.list(), []);
});

test('ecosystem files in other formats: YAML with deploy env precedence, ESM, and a syntax error', async (t) => {
  const { api, home } = setup(t);
  const yml = path.join(home, 'eco.yml');
  fs.writeFileSync(
    yml,
    [
      'apps:',
      '  - name: yaml-app',
      `    script: ${TICK}`,
      '    env: { TICK_TAG: app, FROM_APP: "1" }',
      '    env_staging: { TICK_TAG: staging }',
      'deploy:',
      '  staging:',
      '    env: { FROM_DEPLOY: deploy, FROM_APP: deploy, TICK_TAG: deploy }',
      '',
    ].join('\n'),
  );
  const res = await api.start(yml, { env: 'staging' });
  assert.deepEqual(res.map((p) => p.name), ['yaml-app']);
  const env = (await api.describe('yaml-app', { env: true }))[0].pm2_env.env;
  assert.equal(env.FROM_DEPLOY, 'deploy', 'deploy.<env>.env is applied');
  assert.equal(env.FROM_APP, '1', 'app env wins over deploy env');
  assert.equal(env.TICK_TAG, 'staging', 'env_<env> wins over app env');
  // No env_nope block anywhere: the apps get their base env, with one warning naming the file.
  const warned = [];
  const onWarn = (w) => w.name === 'RPM2Warning' && warned.push(w.message);
  process.on('warning', onWarn);
  await api.start(yml, { env: 'nope' });
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarn);
  assert.ok(warned.some((m) => m.includes('env_nope') && m.includes(yml)), warned.join('\n'));

  const mjs = path.join(home, 'esm.config.mjs');
  fs.writeFileSync(mjs, `export default { apps: [{ name: 'esm-app', script: ${JSON.stringify(TICK)} }] };\n`);
  assert.deepEqual((await api.start(mjs)).map((p) => p.name), ['esm-app']);

  const bad = path.join(home, 'bad.json');
  fs.writeFileSync(bad, '{ "apps": [ { "name": "x", } ');
  await assert.rejects(api.start(bad), (e) => {
    assert.equal(e.code, 'bad_config');
    assert.match(e.message, /bad\.json/);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
  assert.deepEqual((await api.list()).map((p) => p.name).sort(), ['esm-app', 'yaml-app']);
});

test('the singleton honours RPM2_HOME from process.env', async (t) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-api-env-'));
  const old = process.env.RPM2_HOME;
  process.env.RPM2_HOME = home;
  t.after(async () => {
    await rpm2.killDaemon();
    if (old === undefined) delete process.env.RPM2_HOME;
    else process.env.RPM2_HOME = old;
    fs.rmSync(home, { recursive: true, force: true });
  });
  const info = await rpm2.connect();
  assert.equal(info.pm2_home, home);
  assert.ok(fs.existsSync(path.join(home, 'rpc.sock')));
  await rpm2.start(TICK, { name: 'single' });
  assert.deepEqual((await rpm2.list()).map((p) => p.name), ['single']);
});

test('runCli(): the CLI fallback in the addon starts the real daemon and returns the exit code', async (t) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-api-cli-'));
  const api = new rpm2.custom({ home });
  t.after(async () => {
    await api.killDaemon();
    fs.rmSync(home, { recursive: true, force: true });
  });
  // In a child process: the CLI prints straight to the process's stdout.
  const script = `require(${JSON.stringify(path.join(__dirname, '..'))}).runCli(process.argv.slice(1))
    .then((code) => { process.exitCode = code; })`;
  const run = (...args) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['-e', script, ...args], {
        env: { ...process.env, RPM2_HOME: home, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
  const ping = await run('ping');
  assert.equal(ping.code, 0, ping.out);
  assert.match(ping.out, /pong/);
  const info = await api.connect();
  assert.equal(info.new_pm2_instance, false, 'the CLI started the daemon (with rpm2d, not node)');
  const jlist = await run('jlist');
  assert.equal(jlist.code, 0);
  assert.deepEqual(JSON.parse(jlist.out), []);
  const bad = await run('stop', 'ghost');
  assert.equal(bad.code, 1);
  assert.match(bad.out, /ghost/);
});

for (const mode of ['close-bus', 'keep-bus']) {
  test(`a script using the API exits by itself after disconnect() (${mode})`, async (t) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-api-client-'));
    const api = new rpm2.custom({ home });
    t.after(async () => {
      await api.killDaemon();
      fs.rmSync(home, { recursive: true, force: true });
    });
    const child = spawn(process.execPath, [path.join(FIX, 'api-client.js'), mode], {
      env: { ...process.env, RPM2_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t0 = Date.now();
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('timeout');
      }, 8000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, `the script must exit by itself with 0 (stderr: ${stderr})`);
    assert.ok(Date.now() - t0 < 8000);
    const out = JSON.parse(stdout.trim());
    assert.equal(out.home, home);
    assert.deepEqual(out.names, ['from-client']);
    // The daemon outlives the script, with the app it started.
    assert.deepEqual((await api.list()).map((p) => p.name), ['from-client']);
  });
}
