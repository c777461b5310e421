'use strict';
// End-to-end tests for issue 22, item 1: the runtime metrics of Node apps (rpm2's metrics preload).
// Every Node app gets PM2's built-in code metrics in jlist (pm2_env.axm_monitor), show, monit, the web
// JSON and /metrics, next to its own custom metrics; the preload installs no handler, keeps nothing
// alive, does nothing in processes the app forks, and is off with --no-pmx / pmx: false. The names,
// units and types are compared with what pm2 7 itself reports for the same app.
//
// The behaviours that depend on Node run on each binary of RPM2_TEST_NODES (as ipc.test.js):
//   RPM2_TEST_NODES=$(node scripts/install-nodes.js | paste -sd:) node --test __test__/metrics.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./helpers');

const APP = h.fixture('metrics-app.js');
const ESM = h.fixture('metrics-app.mjs');
const FORKER = h.fixture('metrics-forker.js');
const CLUSTER_HTTP = h.fixture('cluster-http.js');
const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');
const NODES = h.testNodes();
const SYSTEM_NODE = NODES[0];
const { ok } = h;

/** PM2's built-in metrics, in the order PM2 reports them, with their unit, type and value type. */
const BUILT_IN = {
  'Heap Size': { unit: 'MiB', type: 'internal/v8/heap/total', value: 'string' },
  'Heap Usage': { unit: '%', type: 'internal/v8/heap/usage', value: 'number' },
  'Used Heap Size': { unit: 'MiB', type: 'internal/v8/heap/used', value: 'string' },
  'Active requests': { unit: undefined, type: 'internal/libuv/requests', value: 'number' },
  'Active handles': { unit: undefined, type: 'internal/libuv/handles', value: 'number' },
  'Event Loop Latency': { unit: 'ms', type: 'internal/libuv/latency/p50', value: 'string' },
  'Event Loop Latency p95': { unit: 'ms', type: 'internal/libuv/latency/p95', value: 'string' },
};
const NAMES = Object.keys(BUILT_IN);

/** Whether every built-in metric is in `p`'s axm_monitor. */
function hasBuiltIns(p) {
  const m = (p && p.pm2_env.axm_monitor) || {};
  return NAMES.every((k) => k in m);
}

/** The built-in metrics of an axm_monitor reduced to what must match PM2: field names, unit, type and
 * the JSON type of the value (values themselves differ from run to run). */
function shapeOf(m) {
  const out = {};
  for (const k of NAMES) {
    if (!(k in m)) continue;
    out[k] = { fields: Object.keys(m[k]), unit: m[k].unit, type: m[k].type, historic: m[k].historic, value: typeof m[k].value };
  }
  return out;
}

/** The `report {...}` line the metrics fixtures print at start. */
async function reportOf(home, name) {
  const m = await h.waitLog(home, name, /report (\{.*\})/);
  return JSON.parse(m[1]);
}

/** Whether `execArgv` loads rpm2's metrics preload. */
function loadsPreload(execArgv) {
  const i = execArgv.indexOf('--require');
  return i >= 0 && /metrics-preload\.cjs$/.test(execArgv[i + 1] || '');
}

/** Waits for `name` to be online with every built-in metric; returns its jlist entry. */
function withMetrics(home, name, opts = {}) {
  return h.waitForProc(home, name, (p) => p.pm2_env.status === 'online' && hasBuiltIns(p),
    { timeout: 20000, message: `built-in metrics of ${name}`, ...opts });
}

function assertBuiltInShape(m, where) {
  for (const [k, want] of Object.entries(BUILT_IN)) {
    const got = m[k];
    assert.ok(got, `${where}: ${k} in ${JSON.stringify(m)}`);
    assert.equal(got.unit, want.unit, `${where}: unit of ${k}`);
    assert.equal(got.type, want.type, `${where}: type of ${k}`);
    assert.equal(got.historic, true, `${where}: historic of ${k}`);
    assert.equal(typeof got.value, want.value, `${where}: value type of ${k}`);
    if (want.value === 'string') assert.match(got.value, /^\d+\.\d\d$/, `${where}: value of ${k}`);
    else assert.ok(Number.isFinite(got.value) && got.value >= 0, `${where}: value of ${k}`);
  }
  assert.ok(Number(m['Heap Size'].value) > 0 && Number(m['Used Heap Size'].value) > 0, where);
}

/** require('rpm2') bound to `home`. */
function api(home) {
  const { RPM2 } = require(h.ROOT);
  return new RPM2({ home });
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20000, () => req.destroy(new Error('request timed out')));
  });
}

// ---------------------------------------------------------------------------------------------------

for (const node of NODES) {
  describe(`metrics preload on Node ${node.version}`, { concurrency: 3 }, () => {
    test('built-in metrics in jlist with PM2\'s names, units and types, every second, beside the app\'s own; the app runs as itself', async (t) => {
      const { home } = h.useHome(t, 'rpm2-metrics-');
      const bus = await api(home).launchBus();
      t.after(() => bus.close());
      const seen = [];
      bus.on('axm:monitor', (data) => {
        if (data && data.process && data.process.name === 'app' && data.data && 'Heap Size' in data.data) seen.push(data.at);
      });
      await h.startOn(home, node, APP, 'app', [], { CUSTOM: '1' });
      const p = await withMetrics(home, 'app');
      assertBuiltInShape(p.pm2_env.axm_monitor, 'jlist');
      assert.deepEqual(Object.keys(p.pm2_env.axm_monitor).filter((k) => k in BUILT_IN), NAMES, 'PM2\'s order');
      // The app's own metric sits beside the built-in ones (merged by name, as PM2's Object.assign).
      const both = await h.waitForProc(home, 'app', (x) => hasBuiltIns(x) && x.pm2_env.axm_monitor.Requests,
        { message: 'custom and built-in metrics together' });
      assert.deepEqual(both.pm2_env.axm_monitor.Requests, { value: 42, unit: 'req/min' });

      // Every second: a few reports, spaced by about a second (not a burst).
      await h.waitFor(() => seen.length >= 4, { timeout: 15000, message: `4 axm:monitor events (got ${seen.length})` });
      const span = seen[3] - seen[0];
      assert.ok(span >= 2000 && span < 9000, `4 reports over ${span} ms`);
      // jlist follows: the values change from one report to the next.
      const first = JSON.stringify(both.pm2_env.axm_monitor);
      await h.waitForProc(home, 'app', (x) => hasBuiltIns(x) && JSON.stringify(x.pm2_env.axm_monitor) !== first,
        { timeout: 15000, message: 'refreshed metrics in jlist' });

      // The app itself: argv[1] is the script, no handler, no message listener, no flag left in env.
      const r = await reportOf(home, 'app');
      assert.equal(r.argv1, APP);
      assert.deepEqual([r.uncaught, r.unhandled, r.message], [0, 0, 0], 'no handler installed');
      assert.equal(r.flag, null, 'RPM2_METRICS is gone from process.env');
      assert.ok(loadsPreload(r.execArgv), JSON.stringify(r.execArgv));
      const argv = h.cmdline(p.pid);
      assert.equal(argv[argv.length - 1], APP, `the script ends the command line: ${JSON.stringify(argv)}`);
    });

    test('a script that finishes still exits; an app that throws still crashes and restarts', async (t) => {
      const { home } = h.useHome(t, 'rpm2-metrics-');
      // Ends after 1.5 s: the preload has reported by then, and must not keep it alive.
      await h.startOn(home, node, APP, 'done', ['--no-autorestart'], { EXIT_MS: '1500' });
      await h.startOn(home, node, APP, 'thrower', ['--restart-delay', '200'], { THROW_MS: '1300' });
      const done = await h.waitForProc(home, 'done', (p) => p.pm2_env.status === 'stopped',
        { timeout: 20000, message: 'the finished script exited' });
      assert.equal(done.pm2_env.exit_code, 0);
      assert.match(await h.outLog(home, 'done'), /finished/);
      assert.ok(loadsPreload((await reportOf(home, 'done')).execArgv));
      assert.deepEqual(done.pm2_env.axm_monitor, {}, 'metrics are cleared when the process exits (as PM2)');

      const thrower = await h.waitForProc(home, 'thrower', (p) => p.pm2_env.restart_time >= 1,
        { timeout: 20000, message: 'the throwing app restarted' });
      assert.equal(thrower.pm2_env.restart_reason, 'exited with code 1', 'an uncaught exception exits 1, as without the preload');
      const err = fs.readFileSync(thrower.pm2_env.pm_err_log_path, 'utf8');
      assert.match(err, /Error: metrics-app: thrown on purpose/);
      const r = await reportOf(home, 'thrower');
      assert.equal(r.uncaught, 0);
    });

    test('an ES module app runs with the preload and gets its metrics', async (t) => {
      const { home } = h.useHome(t, 'rpm2-metrics-');
      await h.startOn(home, node, ESM, 'esm');
      const p = await withMetrics(home, 'esm');
      assertBuiltInShape(p.pm2_env.axm_monitor, 'esm');
      const r = await reportOf(home, 'esm');
      assert.equal(r.argv1, ESM);
      assert.equal(r.self, ESM);
      assert.equal(r.uncaught, 0);
    });

    test('a Node child the app forks itself loads the preload but stays silent', async (t) => {
      const { home } = h.useHome(t, 'rpm2-metrics-');
      await h.startOn(home, node, FORKER, 'forker');
      const m = await h.waitLog(home, 'forker', /child (\{.*\})/);
      const got = JSON.parse(m[1]);
      assert.ok(loadsPreload(got.execArgv), `the child inherits execArgv: ${JSON.stringify(got.execArgv)}`);
      assert.equal(got.flag, null, 'the child does not see RPM2_METRICS');
      assert.equal(got.metrics, 0, 'the child sent no axm:monitor to the app');
      assert.equal(got.messages, 1, 'only its own hello');
      await withMetrics(home, 'forker');
    });

    test('cluster workers get their metrics, each its own', async (t) => {
      const { home } = h.useHome(t, 'rpm2-metrics-');
      const port = await h.freePort();
      await h.startOn(home, node, CLUSTER_HTTP, 'web', ['-i', '2'], { PORT: String(port) });
      await h.waitFor(async () => {
        const list = (await h.jlist(home)).filter((p) => p.name === 'web');
        return list.length === 2 && list.every((p) => p.pm2_env.status === 'online' && hasBuiltIns(p)) ? list : undefined;
      }, { timeout: 20000, message: 'metrics of both workers' });
      const list = (await h.jlist(home)).filter((p) => p.name === 'web');
      for (const p of list) {
        assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
        assertBuiltInShape(p.pm2_env.axm_monitor, `worker ${p.pm_id}`);
      }
      const r = await get(port, '/');
      assert.equal(r.status, 200, 'the workers serve as before');
    });
  });
}

describe(`metrics: switches and views on Node ${SYSTEM_NODE.version}`, { concurrency: 3 }, () => {
  test('--no-pmx and pmx: false start the app without the preload', async (t) => {
    const { dir, home } = h.useHome(t, 'rpm2-metrics-');
    await h.startOn(home, SYSTEM_NODE, APP, 'off', ['--no-pmx']);
    const eco = path.join(dir, 'eco.json');
    fs.writeFileSync(eco, JSON.stringify({ apps: [{ name: 'eco-off', script: APP, pmx: false }, { name: 'eco-on', script: APP }] }));
    await ok(['start', eco], { home });
    await withMetrics(home, 'eco-on');
    for (const name of ['off', 'eco-off']) {
      const r = await reportOf(home, name);
      assert.ok(!r.execArgv.includes('--require'), `${name}: ${JSON.stringify(r.execArgv)}`);
      assert.equal(r.flag, null);
      const p = await h.proc(home, name);
      assert.equal(p.pm2_env.pmx, false, `${name}: jlist pmx is false, as pm2`);
      assert.deepEqual(p.pm2_env.axm_monitor, {}, `${name}: no metrics`);
    }
    assert.equal((await h.proc(home, 'eco-on')).pm2_env.pmx, true);
    // A bad value is refused with the app and the field named.
    fs.writeFileSync(eco, JSON.stringify({ apps: [{ name: 'bad', script: APP, pmx: 'nope' }] }));
    const bad = await h.rpm2(['start', eco], { home });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /pmx/);
  });

  test('show prints the Code metrics as PM2; /metrics exports heap and event-loop gauges', async (t) => {
    const { home } = h.useHome(t, 'rpm2-metrics-');
    await h.startOn(home, SYSTEM_NODE, APP, 'shown', [], { CUSTOM: '1' });
    await h.waitForProc(home, 'shown', (p) => hasBuiltIns(p) && p.pm2_env.axm_monitor.Requests,
      { timeout: 20000, message: 'metrics of shown' });
    const out = h.stripAnsi((await ok(['show', 'shown'], { home })).stdout);
    assert.match(out, /Code metrics value/);
    for (const [re, what] of [[/│ Heap Size\s+│ \d+\.\d\d MiB\s+│/, 'Heap Size'], [/│ Heap Usage\s+│ [\d.]+ %\s+│/, 'Heap Usage'],
      [/│ Active handles\s+│ \d+\s+│/, 'Active handles'], [/│ Event Loop Latency p95\s+│ \d+\.\d\d ms\s+│/, 'p95'],
      [/│ Requests\s+│ 42 req\/min\s+│/, 'custom metric']]) {
      assert.match(out, re, `${what} row in\n${out}`);
    }

    const port = await h.freePort();
    await ok(['web', String(port)], { home });
    await h.waitForProc(home, 'rpm2-http-interface', (p) => p.pm2_env.status === 'online');
    const text = await h.waitFor(async () => {
      const r = await get(port, '/metrics').catch(() => ({ body: '' }));
      return /rpm2_process_heap_size_bytes\{[^}]*name="shown"[^}]*\} \d+/.test(r.body) ? r.body : undefined;
    }, { timeout: 20000, message: 'heap gauge of shown in /metrics' });
    const line = (re) => text.split('\n').find((l) => re.test(l) && l.includes('name="shown"'));
    assert.ok(Number(line(/^rpm2_process_heap_size_bytes\{/).split(' ').pop()) > 1024 * 1024);
    assert.ok(Number(line(/^rpm2_process_heap_used_bytes\{/).split(' ').pop()) > 0);
    assert.ok(line(/^rpm2_process_event_loop_delay_seconds\{.*quantile="0\.95"/), text);
    assert.ok(line(/^rpm2_process_active_handles\{/), text);
    assert.ok(line(/^rpm2_process_custom_metric\{.*metric="Requests"/), 'custom metrics stay custom');
    assert.ok(!line(/^rpm2_process_custom_metric\{.*metric="Heap Size"/), 'built-in ones are not custom');
    // The web JSON carries them in pm2_env.axm_monitor, like jlist.
    const root = JSON.parse((await get(port, '/')).body);
    assertBuiltInShape(root.processes.find((p) => p.name === 'shown').pm2_env.axm_monitor, 'web JSON');
  });

  test('differential: the built-in metrics have pm2 7\'s names, units and types in axm_monitor', async (t) => {
    if (!fs.existsSync(PM2)) {
      t.skip(`pm2 is not installed (${PM2}): npm install to compare with it`);
      return;
    }
    const pm2Home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-metrics-pm2-'));
    const pm2 = (args) => spawnSync(PM2, args, { cwd: h.ROOT, env: { ...process.env, PM2_HOME: pm2Home }, encoding: 'utf8', timeout: 60000 });
    let theirs;
    try {
      const s = pm2(['start', APP, '--name', 'diff']);
      assert.equal(s.status, 0, `pm2 start\n${s.stdout}${s.stderr}`);
      theirs = await h.waitFor(() => {
        const r = pm2(['jlist']);
        const list = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
        const p = list.find((x) => x.name === 'diff');
        return p && hasBuiltIns(p) ? p.pm2_env.axm_monitor : undefined;
      }, { timeout: 30000, interval: 500, message: 'pm2 jlist shows the built-in metrics' });
    } finally {
      pm2(['kill']);
      fs.rmSync(pm2Home, { recursive: true, force: true });
    }
    const { home } = h.useHome(t, 'rpm2-metrics-');
    await ok(['start', APP, '--name', 'diff'], { home });
    const ours = (await withMetrics(home, 'diff')).pm2_env.axm_monitor;
    assert.deepEqual(shapeOf(ours), shapeOf(theirs));
    assert.deepEqual(Object.keys(shapeOf(theirs)), NAMES, 'pm2 reports every built-in metric this test knows');
    assert.deepEqual(Object.keys(ours).filter((k) => k in BUILT_IN), Object.keys(theirs).filter((k) => k in BUILT_IN), 'same order');
  });
});
