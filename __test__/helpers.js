'use strict';
// Shared helpers for the end-to-end suites: temporary RPM2_HOMEs, running the real CLI, polling for
// state, reading /proc, and cleaning up every daemon and app a test started.
//
// Rules these helpers follow (and tests should too): every test gets its own home; never assert on
// elapsed time (the machine is shared and noisy), poll for state with waitFor; never kill by name,
// only by pid / process group of processes that belong to the test's home.

const assert = require('node:assert/strict');
const { execFile, execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'rpm2');
const FIXTURES = path.join(__dirname, 'fixtures');
const PKG_VERSION = require(path.join(ROOT, 'package.json')).version;

// home -> temporary directory that contains it (removed by cleanup).
const tmpDirs = new Map();

/**
 * A fresh temporary directory with an RPM2_HOME inside it that does not exist yet (so that rpm2
 * creates it, with its own mode). `dir` is free for a test's scratch files.
 * Returns {dir, home, env}; `env` is process.env + RPM2_HOME + NO_COLOR=1.
 */
function mkHome(prefix = 'rpm2-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const home = path.join(dir, 'home');
  tmpDirs.set(home, dir);
  return { dir, home, env: homeEnv(home) };
}

/**
 * process.env for a command against `home` (RPM2_HOME set unless home is undefined), colours off,
 * plus `extra` (a value of undefined removes the variable).
 */
function homeEnv(home, extra = {}) {
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.FORCE_COLOR;
  if (home !== undefined) env.RPM2_HOME = home;
  for (const [k, v] of Object.entries(extra || {})) {
    if (v === undefined) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/**
 * Runs `bin/rpm2 ...args` and resolves {code, signal, stdout, stderr} (never rejects on a non-zero exit).
 * opts: home (sets RPM2_HOME), cwd, env (extra variables on top of process.env; a value of undefined
 * removes the variable), timeout (ms, default 30 s: the process is killed and code is null).
 */
function rpm2(args, opts = {}) {
  const { home, cwd, timeout = 30000 } = opts;
  const env = homeEnv(home, opts.env);
  return new Promise((resolve) => {
    execFile(BIN, args, { cwd: cwd || ROOT, env, timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        let code = 0;
        let signal = null;
        if (err) {
          code = typeof err.code === 'number' ? err.code : null;
          signal = err.signal || null;
        }
        resolve({ code, signal, stdout: String(stdout), stderr: String(stderr) });
      });
  });
}

/** Synchronous variant of rpm2(), for the rare place where an await is not possible. */
function rpm2Sync(args, opts = {}) {
  const { home, cwd, timeout = 30000 } = opts;
  const env = homeEnv(home, opts.env);
  const r = spawnSync(BIN, args, { cwd: cwd || ROOT, env, timeout, killSignal: 'SIGKILL', encoding: 'utf8' });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '' };
}

/** Describes a command result for assertion messages. */
function show(r) {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** `rpm2 jlist` parsed; throws with the command's output when it fails or is not JSON. */
async function jlist(home, opts = {}) {
  const r = await rpm2(['jlist'], { ...opts, home });
  if (r.code !== 0) throw new Error(`rpm2 jlist failed: ${show(r)}`);
  try {
    return JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`rpm2 jlist did not print JSON (${e.message}): ${show(r)}`);
  }
}

/** The jlist entry of one process, by name (first match) or pm_id; undefined when absent. */
async function proc(home, nameOrId) {
  const list = await jlist(home);
  return list.find((p) => (typeof nameOrId === 'number' ? p.pm_id === nameOrId : p.name === nameOrId));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` (sync or async) until it returns a truthy value, and returns that value. A throw inside
 * `fn` counts as "not yet". On timeout, throws with `message` and the last value / error seen.
 */
async function waitFor(fn, { timeout = 15000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const seen = lastErr ? `last error: ${lastErr.stack || lastErr}` : `last value: ${safeJson(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${message}; ${seen}`);
    }
    await sleep(interval);
  }
}

function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** Polls jlist until `pred(entry, list)` holds for the process `nameOrId`; returns the entry. */
function waitForProc(home, nameOrId, pred, opts = {}) {
  let lastList;
  return waitFor(async () => {
    const list = await jlist(home);
    lastList = list.map((p) => ({ name: p.name, pm_id: p.pm_id, pid: p.pid, status: p.pm2_env.status,
      restart_time: p.pm2_env.restart_time }));
    const p = list.find((x) => (typeof nameOrId === 'number' ? x.pm_id === nameOrId : x.name === nameOrId));
    return p && pred(p, list) ? p : undefined;
  }, { message: `process ${nameOrId}${opts.message ? `: ${opts.message}` : ''}`, ...opts })
    .catch((e) => {
      e.message += `\nlast list: ${safeJson(lastList)}`;
      throw e;
    });
}

// ---------------------------------------------------------------------------------------------------
// /proc

/** Whether `pid` is a live (non-zombie) process. */
function isAlive(pid) {
  pid = Number(pid);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (e.code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** argv of a process, from /proc/<pid>/cmdline ([] when gone). */
function cmdline(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((s, i, a) => !(s === '' && i === a.length - 1));
  } catch {
    return [];
  }
}

/** Initial environment of a process, from /proc/<pid>/environ ({} when gone or unreadable). */
function procEnv(pid) {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
    const env = {};
    for (const kv of raw.split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return env;
  } catch {
    return {};
  }
}

/** Parent pid and process group of a process (null when gone). */
function procStat(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
  } catch {
    return null;
  }
}

/**
 * Live pids whose environment says they belong to `home` (RPM2_HOME=<home>): the daemon, its apps
 * and the apps' descendants. `filter(env, pid)` narrows the list (e.g. env.name === 'my-app').
 */
function pidsOfHome(home, filter = () => true) {
  const out = [];
  let entries = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const env = procEnv(pid);
    if (env.RPM2_HOME !== home) continue;
    if (!isAlive(pid)) continue;
    if (filter(env, pid)) out.push(pid);
  }
  return out;
}

/** Live pids of the rpm2 daemon(s) of `home`. */
function daemonPids(home) {
  return pidsOfHome(home, (env, pid) => cmdline(pid).includes('--daemon'));
}

/** The pid in `<home>/rpm2d.pid`, or 0. */
function daemonPid(home) {
  try {
    return Number(fs.readFileSync(path.join(home, 'rpm2d.pid'), 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------------
// Cleanup

function readPidFiles(home) {
  const pids = [];
  const files = [path.join(home, 'rpm2d.pid')];
  try {
    for (const f of fs.readdirSync(path.join(home, 'pids'))) files.push(path.join(home, 'pids', f));
  } catch {
    // no pids dir
  }
  for (const f of files) {
    try {
      const n = Number(fs.readFileSync(f, 'utf8').trim());
      if (n > 0) pids.push(n);
    } catch {
      // gone
    }
  }
  return pids;
}

function killHard(pid, home) {
  // Only processes that belong to this home: a recycled pid is left alone.
  if (!isAlive(pid) || procEnv(pid).RPM2_HOME !== home) return;
  const st = procStat(pid);
  if (st && st.pgid === pid) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // group gone
    }
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/**
 * Stops everything a test started under `home`: `rpm2 kill`, then SIGKILL (process group, then pid)
 * for anything still alive that the home's pid files name or whose environment names the home, then
 * removes the home (and the temporary directory mkHome made for it). Never throws.
 */
async function cleanup(home, { keep = false } = {}) {
  if (!home) return;
  try {
    if (fs.existsSync(path.join(home, 'rpc.sock'))) await rpm2(['kill'], { home, timeout: 20000 });
  } catch {
    // best effort
  }
  for (let round = 0; round < 3; round++) {
    const pids = new Set([...readPidFiles(home), ...pidsOfHome(home)]);
    const alive = [...pids].filter((p) => isAlive(p));
    if (alive.length === 0) break;
    for (const p of alive) killHard(p, home);
    await sleep(100);
  }
  if (keep) return;
  const dir = tmpDirs.get(home) || home;
  tmpDirs.delete(home);
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

/**
 * A fresh home whose cleanup is registered on the node:test context `t` (t.after). Returns mkHome()'s
 * {dir, home, env}.
 */
function useHome(t, prefix) {
  const h = mkHome(prefix);
  t.after(() => cleanup(h.home));
  return h;
}

// ---------------------------------------------------------------------------------------------------
// Output parsing

/**
 * Parses a box-drawing table (the list table) into an array of row objects keyed by the header cells.
 * Colour codes are stripped. Returns {headers, rows}.
 */
function parseTable(text) {
  const clean = stripAnsi(text);
  const lines = clean.split('\n').filter((l) => l.trim().startsWith('│'));
  if (lines.length === 0) return { headers: [], rows: [] };
  const cells = (l) => l.trim().replace(/^│/, '').replace(/│$/, '').split('│').map((c) => c.trim());
  const headers = cells(lines[0]);
  const rows = lines.slice(1).map((l) => {
    const c = cells(l);
    const o = {};
    headers.forEach((h, i) => {
      o[h] = c[i];
    });
    return o;
  });
  return { headers, rows };
}

/**
 * Parses a two-column box table without header (`show`/`describe`) into {key: value}. The first
 * occurrence of a key wins.
 */
function parseKeyValues(text) {
  const out = {};
  for (const l of stripAnsi(text).split('\n')) {
    const t = l.trim();
    if (!t.startsWith('│')) continue;
    const c = t.replace(/^│/, '').replace(/│$/, '').split('│').map((x) => x.trim());
    if (c.length >= 2 && !(c[0] in out)) out[c[0]] = c.slice(1).join('│');
  }
  return out;
}

function stripAnsi(s) {
  // eslint-disable-next-line no-control-regex
  return String(s).replace(/\x1b\[[0-9;]*m/g, '');
}

/** Non-empty lines of a text. */
function lines(s) {
  return String(s).split('\n').filter((l) => l.trim() !== '');
}

/** Reads and parses a JSON file written by a fixture; undefined while absent or incomplete. */
function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Path of a fixture file. */
function fixture(name) {
  return path.join(FIXTURES, name);
}

// ---------------------------------------------------------------------------------------------------
// For the suites that run Node apps on several Node versions (ipc, cluster)

/** [{bin, version}] from RPM2_TEST_NODES (colon-separated node binaries), or this node alone. */
function testNodes() {
  const bins = (process.env.RPM2_TEST_NODES || process.execPath).split(':').filter(Boolean);
  const seen = new Set();
  const out = [];
  for (const bin of bins) {
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
    if (seen.has(version)) continue;
    seen.add(version);
    out.push({ bin, version });
  }
  return out;
}

/** Runs rpm2 and asserts it exits 0. */
async function ok(args, opts) {
  const r = await rpm2(args, opts);
  assert.equal(r.code, 0, `rpm2 ${args.join(' ')} should exit 0\n${show(r)}`);
  return r;
}

/** `rpm2 start <script> --name <name> --interpreter <node.bin> ...extra` with `env` for the app (and
 * for the daemon, when this command starts it). */
function startOn(home, node, script, name, extra = [], env = {}) {
  return ok(['start', script, '--name', name, '--interpreter', node.bin, ...extra], { home, env });
}

/** Contents of every out log of the processes named `name` ('' while none). */
async function outLog(home, name) {
  const list = await jlist(home);
  const files = [...new Set(list.filter((p) => p.name === name).map((p) => p.pm2_env.pm_out_log_path))];
  return files.map((f) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  }).join('');
}

/** Waits until the out logs of `name` match `re`; returns the match. */
function waitLog(home, name, re, opts = {}) {
  return waitFor(async () => (await outLog(home, name)).match(re), {
    timeout: 20000, message: `${re} in the out log of ${name}`, ...opts,
  }).catch(async (e) => {
    e.message += `\n--- out log of ${name} ---\n${await outLog(home, name).catch(() => '?')}`;
    throw e;
  });
}

/** The daemon log of `home` ('' while there is none). */
function daemonLog(home) {
  try {
    return fs.readFileSync(path.join(home, 'rpm2.log'), 'utf8');
  } catch {
    return '';
  }
}

/** A TCP (or, with `udp`, UDP) port of 127.0.0.1 that was free a moment ago (the kernel's pick). */
function freePort(udp = false) {
  return new Promise((resolve, reject) => {
    const s = udp ? require('node:dgram').createSocket('udp4') : require('node:net').createServer();
    s.on('error', reject);
    const done = () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    };
    if (udp) s.bind(0, '127.0.0.1', done);
    else s.listen(0, '127.0.0.1', done);
  });
}

/** `rpm2 jlist --env` parsed (env values visible). */
async function jlistEnv(home) {
  const r = await rpm2(['jlist', '--env'], { home });
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout);
}

module.exports = {
  ROOT,
  BIN,
  FIXTURES,
  PKG_VERSION,
  mkHome,
  homeEnv,
  useHome,
  rpm2,
  rpm2Sync,
  show,
  jlist,
  proc,
  waitFor,
  waitForProc,
  sleep,
  isAlive,
  cmdline,
  procEnv,
  procStat,
  pidsOfHome,
  daemonPids,
  daemonPid,
  cleanup,
  parseTable,
  parseKeyValues,
  stripAnsi,
  lines,
  readJson,
  fixture,
  testNodes,
  ok,
  startOn,
  outLog,
  waitLog,
  daemonLog,
  freePort,
  jlistEnv,
};
