'use strict';
// End-to-end tests of monitoring (issue 8): CPU/memory sampling of process trees, `rpm2 monit` driven
// through a pseudo-terminal (util-linux `script`), and `rpm2 web` (the JSON API and Prometheus
// /metrics) as its own managed process. Each test has its own RPM2_HOME and cleans up everything it
// started (helpers.cleanup: rpm2 kill, then SIGKILL by pid). Only 127.0.0.1 is ever connected to;
// ports are picked free by the kernel. Run:
//   node --test __test__/monitor.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const h = require('./helpers');
const { ok, freePort } = h;

const APP = h.fixture('monitor-app.js');
const TREE = h.fixture('monitor-tree.js');
const BLINK = h.fixture('monitor-blink.js');
const WEB = 'rpm2-http-interface';

async function startApp(home, name, script = APP, extra = [], opts = {}) {
  await ok(['start', script, '--name', name, ...extra], { home, ...opts });
  return h.waitForProc(home, name, (p) => p.pm2_env.status === 'online' && p.pid > 0);
}

/** GET http://127.0.0.1:port/path; resolves {status, headers, body} (rejects on connection errors). */
function get(port, urlPath = '/', headers = {}, agent = false) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('request timed out')));
  });
}

async function getJson(port, urlPath = '/', headers = {}) {
  const r = await get(port, urlPath, headers);
  assert.equal(r.status, 200, `GET ${urlPath} should answer 200: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'], /^application\/json/);
  return JSON.parse(r.body);
}

/** Sends raw bytes on a fresh connection and resolves what came back before the server closed it. */
function rawExchange(port, bytes) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(30000, () => s.destroy(new Error('raw exchange timed out')));
  });
}

/** `rpm2 web ...args` must succeed; waits for the entry to be online and the port to answer. */
async function startWeb(home, args, opts = {}) {
  const r = await h.rpm2(['web', ...args], { home, ...opts });
  assert.equal(r.code, 0, `rpm2 web ${args.join(' ')} should exit 0\n${h.show(r)}`);
  const entry = await h.waitForProc(home, WEB, (p) => p.pm2_env.status === 'online' && p.pid > 0);
  return { r, entry };
}

/** The stable /metrics names (README "Monitoring") and their types. */
const METRIC_TYPES = {
  rpm2_up: 'gauge', rpm2_info: 'gauge', rpm2_daemon_memory_bytes: 'gauge', rpm2_daemon_cpu_seconds_total: 'counter',
  rpm2_daemon_uptime_seconds: 'gauge', rpm2_daemon_pid: 'gauge', rpm2_processes: 'gauge',
  rpm2_process_cpu_percent: 'gauge', rpm2_process_memory_bytes: 'gauge', rpm2_process_restarts: 'gauge',
  rpm2_process_unstable_restarts: 'gauge', rpm2_process_uptime_seconds: 'gauge', rpm2_process_pid: 'gauge',
  rpm2_process_status: 'gauge', rpm2_process_custom_metric: 'gauge',
  // the built-in code metrics of Node apps (issue 22)
  rpm2_process_heap_size_bytes: 'gauge', rpm2_process_heap_used_bytes: 'gauge',
  rpm2_process_event_loop_delay_seconds: 'gauge', rpm2_process_active_handles: 'gauge',
  rpm2_process_active_requests: 'gauge',
};

// ---------------------------------------------------------------------------------------------------
// A small Prometheus text-format (0.0.4) parser: every line is a comment (# HELP / # TYPE / other),
// blank, or a sample `name{label="value",...} value [timestamp]`. Throws on anything else.

function parsePrometheus(text) {
  const help = new Map();
  const type = new Map();
  const samples = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) return; // a plain comment
      if (m[1] === 'HELP') {
        assert.ok(!help.has(m[2]), `duplicate HELP, ${where}`);
        help.set(m[2], m[3]);
      } else {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), `bad TYPE, ${where}`);
        assert.ok(!type.has(m[2]), `duplicate TYPE, ${where}`);
        type.set(m[2], m[3]);
      }
      return;
    }
    const nm = NAME.exec(line);
    assert.ok(nm, `sample name, ${where}`);
    const name = nm[0];
    let pos = name.length;
    const labels = {};
    if (line[pos] === '{') {
      pos += 1;
      for (;;) {
        if (line[pos] === '}') { pos += 1; break; }
        const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
        assert.ok(lm, `label name, ${where}`);
        pos += lm[0].length;
        assert.equal(line.slice(pos, pos + 2), '="', `label '=', ${where}`);
        pos += 2;
        let value = '';
        for (;;) {
          const c = line[pos];
          assert.ok(c !== undefined, `unterminated label value, ${where}`);
          if (c === '\\') {
            const n = line[pos + 1];
            assert.ok(['\\', '"', 'n'].includes(n), `bad escape, ${where}`);
            value += n === 'n' ? '\n' : n;
            pos += 2;
          } else if (c === '"') {
            pos += 1;
            break;
          } else {
            value += c;
            pos += 1;
          }
        }
        assert.ok(!(lm[0] in labels), `duplicate label, ${where}`);
        labels[lm[0]] = value;
        if (line[pos] === ',') pos += 1;
        else assert.equal(line[pos], '}', `label list, ${where}`);
      }
    }
    const rest = line.slice(pos);
    const vm = /^ +(\S+)( +-?\d+)?$/.exec(rest);
    assert.ok(vm, `sample value, ${where}`);
    const raw = vm[1];
    let value;
    if (raw === 'NaN') value = NaN;
    else if (raw === '+Inf') value = Infinity;
    else if (raw === '-Inf') value = -Infinity;
    else {
      assert.match(raw, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `numeric value, ${where}`);
      value = Number(raw);
    }
    samples.push({ name, labels, value });
  });
  return { help, type, samples };
}

/**
 * A minimal terminal emulator for what ratatui's crossterm backend writes: cursor moves (CSI H),
 * clears (CSI 2J), colours and modes (ignored), CR/LF and printable characters. Returns the screen's
 * text, one line per row.
 */
function renderScreen(out, rows = 32, cols = 120) {
  const grid = Array.from({ length: rows }, () => Array(cols).fill(' '));
  let r = 0;
  let c = 0;
  const chars = Array.from(out);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === '\x1b') {
      if (chars[i + 1] === '[') {
        let j = i + 2;
        let params = '';
        while (j < chars.length && !/[@-~]/.test(chars[j])) params += chars[j++];
        const fin = chars[j];
        if (fin === 'H' || fin === 'f') {
          const [row, col] = params.split(';').map((x) => Number(x) || 1);
          r = Math.min(rows - 1, (row || 1) - 1);
          c = Math.min(cols - 1, (col || 1) - 1);
        } else if (fin === 'J' && params === '2') {
          for (const line of grid) line.fill(' ');
        }
        i = j;
      } else {
        i += 1;
      }
    } else if (ch === '\r') {
      c = 0;
    } else if (ch === '\n') {
      r = Math.min(rows - 1, r + 1);
    } else if (ch >= ' ') {
      if (c < cols) grid[r][c] = ch;
      c += 1;
    }
  }
  return grid.map((l) => l.join('')).join('\n');
}

/** The sample `name` whose labels include `match`; undefined when none. */
function sample(parsed, name, match = {}) {
  return parsed.samples.find((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

// ---------------------------------------------------------------------------------------------------

describe('sampling', () => {
  test('CPU and memory cover the whole process tree, and list/jlist show them', async (t) => {
    const { dir, home } = h.useHome(t, 'rpm2-monitor-');
    const info = path.join(dir, 'tree.json');
    const p = await startApp(home, 'tree', TREE, ['--', info, '80']);
    const pids = await h.waitFor(() => h.readJson(info), { message: 'tree.json' });
    assert.equal(pids.pid, p.pid);
    // The child holds 80 MB and spins: only a sampler that sums the tree sees both.
    const seen = await h.waitForProc(home, 'tree', (x) => x.monit.memory > 80 * 1024 * 1024 && x.monit.cpu > 20,
      { timeout: 30000, message: 'tree memory > 80 MB and cpu > 20%' });
    assert.equal(typeof seen.monit.cpu, 'number');
    const r = await ok(['list'], { home });
    const row = h.parseTable(r.stdout).rows.find((x) => x['App name'] === 'tree');
    assert.ok(row, r.stdout);
    assert.match(row.cpu, /^\d+(\.\d+)?%$/);
    assert.match(row.memory, /^\d+(\.\d+)?(b|kb|mb|gb)$/);
    await ok(['stop', 'tree'], { home });
    const stopped = await h.waitForProc(home, 'tree', (x) => x.pm2_env.status === 'stopped');
    assert.deepEqual(stopped.monit, { memory: 0, cpu: 0 });
    assert.ok(!h.isAlive(pids.child), 'the spinning child is stopped with its parent');
  });

  test('a process that exits between two samples: no crash, no stale figures', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const port = await freePort();
    await ok(['start', BLINK, '--name', 'blink', '--restart-delay', '50', '--', '120'], { home });
    await startWeb(home, [String(port)]);
    // Read while it keeps exiting and coming back.
    for (let i = 0; i < 15; i++) {
      const list = await h.jlist(home);
      const b = list.find((x) => x.name === 'blink');
      assert.ok(b, 'blink is listed');
      if (b.pid === 0) assert.deepEqual(b.monit, { memory: 0, cpu: 0 }, 'no figures without a process');
      const m = parsePrometheus((await get(port, '/metrics')).body);
      assert.ok(sample(m, 'rpm2_process_pid', { name: 'blink' }));
    }
    await ok(['stop', 'blink'], { home });
    const b = await h.waitForProc(home, 'blink', (x) => x.pm2_env.status === 'stopped');
    assert.equal(b.pid, 0);
    assert.deepEqual(b.monit, { memory: 0, cpu: 0 });
    const m = await h.waitFor(async () => {
      const parsed = parsePrometheus((await get(port, '/metrics')).body);
      const s = sample(parsed, 'rpm2_process_status', { name: 'blink', status: 'stopped' });
      return s && s.value === 1 ? parsed : undefined;
    }, { message: 'blink stopped in /metrics' });
    assert.equal(sample(m, 'rpm2_process_pid', { name: 'blink' }).value, 0);
    assert.equal(sample(m, 'rpm2_process_memory_bytes', { name: 'blink' }).value, 0);
    assert.equal((await ok(['ping'], { home })).code, 0, 'the daemon is alive');
  });
});

describe('rpm2 web', () => {
  test('GET / returns the PM2 payload for the running apps; other paths 404', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const a = await startApp(home, 'alpha');
    const b = await startApp(home, 'beta', APP, ['--', 'beta']);
    const port = await freePort();
    const { r, entry } = await startWeb(home, [String(port)]);
    assert.match(r.stdout, new RegExp(`http://127\\.0\\.0\\.1:${port}`));
    // The server is its own fork-mode entry: the rpm2d executable itself, no interpreter.
    assert.equal(entry.pm2_env.exec_mode, 'fork_mode');
    assert.equal(entry.pm2_env.exec_interpreter, 'none');
    assert.equal(fs.realpathSync(entry.pm2_env.pm_exec_path), fs.realpathSync(path.join(h.ROOT, 'rpm2d')));
    assert.ok(entry.pm2_env.args.includes('--web-server'), JSON.stringify(entry.pm2_env.args));

    const body = await h.waitFor(async () => {
      const j = await getJson(port);
      const alpha = j.processes.find((p) => p.name === 'alpha');
      return alpha && alpha.pm2_env.axm_monitor && alpha.pm2_env.axm_monitor.Requests ? j : undefined;
    }, { message: 'payload with alpha custom metrics' });
    assert.deepEqual(Object.keys(body), ['system_info', 'monit', 'processes']);
    assert.equal(typeof body.system_info.hostname, 'string');
    assert.equal(body.system_info.hostname, require('node:os').hostname());
    assert.ok(body.system_info.uptime > 0);
    const mon = body.monit;
    assert.equal(mon.loadavg.length, 3);
    assert.ok(mon.loadavg.every((x) => typeof x === 'number'));
    assert.ok(mon.total_mem > 0 && mon.free_mem > 0 && mon.free_mem <= mon.total_mem);
    assert.equal(mon.cpu.length, require('node:os').cpus().length);
    for (const c of mon.cpu) {
      assert.equal(typeof c.model, 'string');
      assert.equal(typeof c.speed, 'number');
      assert.deepEqual(Object.keys(c.times), ['user', 'nice', 'sys', 'idle', 'irq']);
      assert.ok(Object.values(c.times).every((x) => Number.isInteger(x) && x >= 0));
    }
    const lo = mon.interfaces.lo;
    assert.ok(Array.isArray(lo), JSON.stringify(mon.interfaces));
    const lo4 = lo.find((x) => x.family === 'IPv4');
    assert.deepEqual(lo4, { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00',
      internal: true, cidr: '127.0.0.1/8' });
    // Node's own view of the interfaces agrees on names and addresses.
    const nodeIfs = require('node:os').networkInterfaces();
    assert.deepEqual(Object.keys(mon.interfaces).sort(), Object.keys(nodeIfs).sort());
    for (const [name, addrs] of Object.entries(nodeIfs)) {
      assert.deepEqual(mon.interfaces[name].map((x) => x.address).sort(), addrs.map((x) => x.address).sort());
    }

    // processes[] are the jlist objects of the running apps.
    const list = await h.jlist(home);
    assert.deepEqual(body.processes.map((p) => p.name).sort(), list.map((p) => p.name).sort());
    for (const [want, name] of [[a, 'alpha'], [b, 'beta']]) {
      const p = body.processes.find((x) => x.name === name);
      assert.deepEqual(Object.keys(p).sort(), ['monit', 'name', 'pid', 'pm2_env', 'pm_id']);
      assert.equal(p.pid, want.pid);
      assert.equal(p.pm_id, want.pm_id);
      assert.equal(p.pm2_env.status, 'online');
      assert.equal(p.pm2_env.pm_exec_path, want.pm2_env.pm_exec_path);
      assert.equal(p.pm2_env.exec_mode, 'fork_mode');
      assert.equal(typeof p.monit.memory, 'number');
      assert.equal(typeof p.monit.cpu, 'number');
    }
    const alpha = body.processes.find((x) => x.name === 'alpha');
    assert.equal(alpha.pm2_env.axm_monitor.Requests.value, 42);
    const self = body.processes.find((x) => x.name === WEB);
    assert.equal(self.pid, entry.pid);

    for (const p of ['/nope', '/metrics/x', '/processes']) {
      const r404 = await get(port, p);
      assert.equal(r404.status, 404, p);
      assert.deepEqual(JSON.parse(r404.body), { err: '404' });
    }
    // No CORS wildcard (no CORS headers at all), a query string is ignored, HEAD has no body.
    const root = await get(port, '/?x=1', { Origin: 'http://evil.example' });
    assert.equal(root.status, 200);
    assert.equal(root.headers['access-control-allow-origin'], undefined);
    const post = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end('x=1');
    });
    assert.equal(post, 405);
  });

  test('/metrics parses as Prometheus text and matches jlist', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    await startApp(home, 'alpha');
    await startApp(home, 'beta', APP, ['--', 'beta']);
    await ok(['restart', 'beta'], { home });
    await h.waitForProc(home, 'beta', (p) => p.pm2_env.status === 'online' && p.pm2_env.restart_time === 1);
    const port = await freePort();
    await startWeb(home, [String(port)]);
    const r = await get(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const m = parsePrometheus(r.body);
    // Every sample's metric has HELP and TYPE.
    for (const s of m.samples) {
      assert.ok(m.help.has(s.name), `HELP for ${s.name}`);
      assert.ok(m.type.has(s.name), `TYPE for ${s.name}`);
    }
    // The documented names are all there, with their types, and no others.
    for (const [name, ty] of Object.entries(METRIC_TYPES)) assert.equal(m.type.get(name), ty, name);
    assert.deepEqual([...m.type.keys()].sort(), Object.keys(METRIC_TYPES).sort());
    assert.equal(sample(m, 'rpm2_up').value, 1);
    const daemonPid = h.daemonPid(home);
    assert.equal(sample(m, 'rpm2_daemon_pid').value, daemonPid);
    assert.ok(sample(m, 'rpm2_daemon_memory_bytes').value > 0);
    assert.ok(sample(m, 'rpm2_daemon_uptime_seconds').value > 0);
    assert.ok(sample(m, 'rpm2_info', { version: h.PKG_VERSION }));

    // Values for the running apps match jlist (pid, restarts, status; memory of the same magnitude).
    const list = await h.jlist(home);
    const online = list.filter((p) => p.pm2_env.status === 'online').length;
    assert.equal(sample(m, 'rpm2_processes', { status: 'online' }).value, online);
    for (const p of list.filter((x) => x.name !== WEB)) {
      const id = { pm_id: String(p.pm_id), name: p.name, namespace: 'default', exec_mode: 'fork' };
      assert.equal(sample(m, 'rpm2_process_pid', id).value, p.pid, `pid of ${p.name}`);
      assert.equal(sample(m, 'rpm2_process_restarts', id).value, p.pm2_env.restart_time, `restarts of ${p.name}`);
      assert.equal(sample(m, 'rpm2_process_status', { ...id, status: 'online' }).value, 1);
      assert.equal(sample(m, 'rpm2_process_status', { ...id, status: 'errored' }).value, 0);
      const statuses = m.samples.filter((s) => s.name === 'rpm2_process_status' && s.labels.pm_id === id.pm_id);
      assert.equal(statuses.length, 6);
      assert.equal(statuses.filter((s) => s.value === 1).length, 1);
      const mem = sample(m, 'rpm2_process_memory_bytes', id).value;
      assert.ok(mem > 0 && mem < p.monit.memory * 4 && mem * 4 > p.monit.memory, `memory of ${p.name}: ${mem} vs ${p.monit.memory}`);
      assert.ok(sample(m, 'rpm2_process_cpu_percent', id).value >= 0);
      assert.ok(sample(m, 'rpm2_process_uptime_seconds', id).value >= 0);
    }
    // Numeric custom metrics (axm:monitor) are exported; text ones are not.
    const custom = await h.waitFor(async () => {
      const parsed = parsePrometheus((await get(port, '/metrics')).body);
      return sample(parsed, 'rpm2_process_custom_metric', { name: 'alpha', metric: 'Requests' }) ? parsed : undefined;
    }, { message: 'custom metric of alpha' });
    assert.equal(sample(custom, 'rpm2_process_custom_metric', { name: 'alpha', metric: 'Requests', unit: 'req/min' }).value, 42);
    assert.equal(sample(custom, 'rpm2_process_custom_metric', { name: 'alpha', metric: 'Queue depth' }).value, 7);
    assert.equal(sample(custom, 'rpm2_process_custom_metric', { name: 'alpha', metric: 'Mode' }), undefined);
  });

  test('off loopback a token is required: refused without, 401 without the header, 200 with', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const port = await freePort();
    const refused = await h.rpm2(['web', String(port), '--host', '0.0.0.0'], { home, env: { RPM2_WEB_TOKEN: undefined } });
    assert.notEqual(refused.code, 0, h.show(refused));
    assert.match(refused.stderr, /token/);
    assert.match(refused.stderr, /0\.0\.0\.0/);
    // Nothing was started.
    assert.equal((await h.jlist(home)).find((p) => p.name === WEB), undefined);

    const token = 'monitor-test-token-0123456789';
    await startWeb(home, [String(port), '--host', '0.0.0.0', '--token', token]);
    const no = await get(port, '/');
    assert.equal(no.status, 401);
    assert.match(no.headers['www-authenticate'], /^Bearer/);
    assert.equal((await get(port, '/metrics')).status, 401);
    assert.equal((await get(port, '/', { Authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get(port, '/', { Authorization: `Basic ${token}` })).status, 401);
    const yes = await get(port, '/', { Authorization: `Bearer ${token}` });
    assert.equal(yes.status, 200);
    assert.equal((await get(port, '/metrics', { Authorization: `Bearer ${token}` })).status, 200);
    // The token is in no argument (ps shows those) and in no payload.
    const entry = (await h.jlist(home)).find((p) => p.name === WEB);
    assert.ok(!h.cmdline(entry.pid).join(' ').includes(token));
    assert.ok(!yes.body.includes(token));
    // The same token from the environment works too.
    await ok(['delete', WEB], { home });
    await startWeb(home, [String(port), '--host', '0.0.0.0'], { env: { RPM2_WEB_TOKEN: token } });
    assert.equal((await get(port, '/')).status, 401);
    assert.equal((await get(port, '/', { Authorization: `Bearer ${token}` })).status, 200);
  });

  test('env values are redacted by default (keys kept); --show-env shows them but never the token', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const secret = 'super-secret-value-4242';
    await startApp(home, 'alpha', APP, [], { env: { MONITOR_SECRET: secret } });
    const port = await freePort();
    await startWeb(home, [String(port)]);
    const r = await get(port, '/');
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes(secret), 'the secret value is not served');
    const alpha = JSON.parse(r.body).processes.find((p) => p.name === 'alpha');
    assert.ok('MONITOR_SECRET' in alpha.pm2_env.env, 'keys are kept');
    assert.notEqual(alpha.pm2_env.env.MONITOR_SECRET, secret);

    // Re-running `rpm2 web` replaces the server with the new options.
    const token = 'show-env-token-abcdef0123';
    await startWeb(home, [String(port), '--show-env', '--token', token]);
    const list = await h.jlist(home);
    assert.equal(list.filter((p) => p.name === WEB).length, 1);
    const shown = await h.waitFor(async () => {
      const x = await get(port, '/', { Authorization: `Bearer ${token}` });
      return x.status === 200 && x.body.includes(secret) ? x : undefined;
    }, { message: 'payload with env values' });
    assert.ok(!shown.body.includes(token), 'the token is never served');
  });

  test('the web entry can be stopped and deleted like any process', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const port = await freePort();
    const { entry } = await startWeb(home, [String(port)]);
    assert.equal((await get(port, '/')).status, 200);
    await ok(['stop', WEB], { home });
    await h.waitForProc(home, WEB, (p) => p.pm2_env.status === 'stopped');
    assert.ok(!h.isAlive(entry.pid));
    await assert.rejects(get(port, '/'), /ECONNREFUSED/);
    await ok(['restart', WEB], { home });
    await h.waitForProc(home, WEB, (p) => p.pm2_env.status === 'online');
    await h.waitFor(async () => (await get(port, '/')).status === 200, { message: 'web answers after restart' });
    await ok(['delete', WEB], { home });
    await h.waitFor(async () => !(await h.jlist(home)).some((p) => p.name === WEB), { message: 'web deleted' });
    await assert.rejects(get(port, '/'), /ECONNREFUSED/);
  });

  test('a port in use: a clear error and the entry goes errored with the reason in its error log', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const blocker = net.createServer();
    await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => blocker.close());
    const port = blocker.address().port;
    const r = await h.rpm2(['web', String(port)], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, new RegExp(`${port}.*in use`), h.show(r));
    const e = await h.waitForProc(home, WEB, (p) => p.pm2_env.status === 'errored', { timeout: 30000 });
    assert.equal(e.pid, 0);
    const errLog = fs.readFileSync(e.pm2_env.pm_err_log_path, 'utf8');
    assert.match(errLog, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: port ${port} is already in use`));
    assert.equal((await ok(['ping'], { home })).code, 0);
  });

  test('malformed HTTP, slow clients and 1000 parallel requests: the daemon stays responsive', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    await startApp(home, 'alpha');
    const port = await freePort();
    await startWeb(home, [String(port)]);

    // Malformed requests get a 4xx/5xx and a closed connection, never a crash.
    const bad = [
      'garbage\r\n\r\n',
      'GET / HTTP/9.9\r\n\r\n',
      'GET /\r\n\r\n',
      'GET / HTTP/1.1\r\nNo-Colon-Header\r\n\r\n',
      `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`,
      Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]),
    ];
    for (const b of bad) {
      const out = await rawExchange(port, b);
      assert.match(out, /^HTTP\/1\.1 (400|431|505) /, `answer to ${JSON.stringify(String(b).slice(0, 40))}: ${out.slice(0, 80)}`);
    }
    // Slow clients: connections that send half a request and wait.
    const slow = [];
    for (let i = 0; i < 50; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: x\r\n');
      slow.push(s);
    }
    t.after(() => slow.forEach((s) => s.destroy()));

    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    t.after(() => agent.destroy());
    const flood = Promise.all(Array.from({ length: 1000 }, (_, i) => get(port, i % 2 ? '/' : '/metrics', {}, agent)
      .then((x) => x.status, (e) => `error ${e.code || e.message}`)));
    // The CLI is answered while the flood is in flight.
    const list = await ok(['list'], { home });
    assert.ok(h.parseTable(list.stdout).rows.some((x) => x['App name'] === 'alpha'));
    const statuses = await flood;
    const counts = statuses.reduce((acc, s) => ({ ...acc, [s]: (acc[s] || 0) + 1 }), {});
    assert.deepEqual(counts, { 200: 1000 }, JSON.stringify(counts));
    await ok(['list'], { home });
    assert.equal((await get(port, '/')).status, 200);
    const web = (await h.jlist(home)).find((p) => p.name === WEB);
    assert.equal(web.pm2_env.restart_time, 0, 'the web server did not crash');
  });
});

describe('docs and examples', () => {
  test('the README documents every /metrics name and the Grafana example uses only those', () => {
    const readme = fs.readFileSync(path.join(h.ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Monitoring'), readme.indexOf('\n## ', readme.indexOf('## Monitoring') + 3));
    assert.ok(section.length > 100, 'README has a Monitoring section');
    for (const [name, ty] of Object.entries(METRIC_TYPES)) {
      assert.match(section, new RegExp(`\\| \`${name}(\\{[^}]*\\})?\` \\| ${ty} \\|`), `README row for ${name}`);
    }
    const dir = path.join(h.ROOT, 'examples', 'grafana');
    const dash = JSON.parse(fs.readFileSync(path.join(dir, 'rpm2-dashboard.json'), 'utf8'));
    const exprs = [];
    const walk = (v) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if ((k === 'expr' || k === 'definition') && typeof x === 'string') exprs.push(x);
          else walk(x);
        }
      }
    };
    walk(dash);
    assert.ok(exprs.length >= 8, 'the dashboard has queries');
    const used = new Set(exprs.flatMap((e) => e.match(/\brpm2_[a-z_]+/g) || []));
    for (const n of used) assert.ok(n in METRIC_TYPES, `dashboard uses unknown metric ${n}`);
    for (const n of ['rpm2_process_cpu_percent', 'rpm2_process_memory_bytes', 'rpm2_process_restarts', 'rpm2_process_status']) {
      assert.ok(used.has(n), `dashboard charts ${n}`);
    }
  });
});

describe('rpm2 monit', () => {
  const haveScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

  test('refuses to run without a terminal, with a clear error', async (t) => {
    const { home } = h.useHome(t, 'rpm2-monitor-');
    const r = await h.rpm2(['monit'], { home });
    assert.equal(r.code, 1, h.show(r));
    assert.match(r.stderr, /monit needs an interactive terminal/);
    assert.equal(r.stdout, '', 'no escape codes written into a pipe');
  });

  test('in a pseudo-terminal: shows the apps, their logs and metrics, and quits cleanly on q', { skip: !haveScript && 'util-linux script is not installed' }, async (t) => {
    const { home, env } = h.useHome(t, 'rpm2-monitor-');
    await startApp(home, 'alpha', APP, ['--', 'alpha-log']);
    await startApp(home, 'beta', APP, ['--', 'beta-log']);
    const cmd = `stty rows 32 cols 120; exec '${h.BIN}' monit`;
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...env, TERM: 'xterm-256color' }, stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const screen = () => renderScreen(out);
    const waitScreen = (pred, message) => h.waitFor(() => pred(screen()), { timeout: 20000, message })
      .catch((e) => { e.message += `\nscreen:\n${screen()}`; throw e; });
    await waitScreen((sc) => sc.includes('alpha') && sc.includes('beta') && sc.includes('Process List'),
      'monit to show both apps');
    // The selected app's live log lines and its custom metrics.
    await waitScreen((sc) => /alpha-log tick \d+/.test(sc) && sc.includes('Requests'), 'alpha logs and custom metrics');
    // Select the next app: its logs replace the first one's.
    child.stdin.write('\x1b[B');
    await waitScreen((sc) => /beta-log tick \d+/.test(sc) && !/alpha-log tick/.test(sc), 'beta logs after the down key');
    child.stdin.write('q');
    const res = await exited;
    assert.deepEqual(res, { code: 0, signal: null }, `monit should exit 0 on q\n${screen()}`);
    assert.ok(out.includes('\x1b[?1049h'), 'entered the alternate screen');
    assert.ok(out.lastIndexOf('\x1b[?1049l') > out.lastIndexOf('\x1b[?1049h'), 'left the alternate screen');
    assert.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'showed the cursor again');
    // The apps are untouched.
    const list = await h.jlist(home);
    assert.ok(list.every((p) => p.pm2_env.status === 'online'));
  });
});
