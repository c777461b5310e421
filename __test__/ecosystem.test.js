'use strict';
// End-to-end tests of ecosystem files (issue 7): every format gives the same apps, --only, --env and
// PM2's environment precedence, restart <file>, relative paths, the seed's Listings 4-5, 4-7 and 4-9,
// every option of PM2's option table, bad input, `rpm2 init`, and the shipped JSON Schema.
// Real bin/rpm2, real daemon, fixtures eco-*; one temporary RPM2_HOME per test, cleaned up by t.after.
//   node --test __test__/ecosystem.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');
const { spawnSync } = require('node:child_process');
const { pathToFileURL } = require('node:url');
const h = require('./helpers');
const { ok, jlistEnv, freePort } = h;

const FIX = h.FIXTURES;
const ECO_APP = h.fixture('eco-app.js');

// ---------------------------------------------------------------------------------------------------
// Helpers

/** Polls until the list holds exactly `count` processes, all online with a pid; returns the list. */
function waitAllOnline(home, count, message = `${count} online process(es)`) {
  let last;
  return h.waitFor(async () => {
    const l = await h.jlist(home);
    last = l.map((p) => [p.name, p.pm_id, p.pid, p.pm2_env.status]);
    return l.length === count && l.every((p) => p.pm2_env.status === 'online' && p.pid > 0) ? l : undefined;
  }, { message, timeout: 20000 }).catch((e) => {
    e.message += `\nlast list: ${JSON.stringify(last)}`;
    throw e;
  });
}

/** The ECO_* variables of an env object (ECO_OUT, the tests' plumbing, left out). */
function ecoVars(env) {
  return Object.fromEntries(Object.entries(env || {}).filter(([k]) => k.startsWith('ECO_') && k !== 'ECO_OUT').sort());
}

/** What the format tests compare: the declared parts of each process, in pm_id order. */
function summary(list) {
  return [...list].sort((a, b) => a.pm_id - b.pm_id).map((p) => ({
    name: p.name,
    script: p.pm2_env.pm_exec_path,
    cwd: p.pm2_env.pm_cwd,
    args: p.pm2_env.args,
    exec_mode: p.pm2_env.exec_mode,
    instances: p.pm2_env.instances,
    interpreter: p.pm2_env.exec_interpreter,
    env: ecoVars(p.pm2_env.env),
  }));
}

/** The file eco-app.js writes for a process (ECO_OUT set), once it is the one of the current pid. */
function childReport(out, p, timeout = 15000) {
  const f = path.join(out, `${p.name}-${p.pm_id}.json`);
  return h.waitFor(() => {
    const d = h.readJson(f);
    return d && d.pid === p.pid ? d : undefined;
  }, { message: `${f} written by pid ${p.pid}`, timeout });
}

/** GET http://127.0.0.1:port/path on a fresh connection: {status, headers, body}. */
function get(port, p = '/') {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function write(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** A fresh home plus an `out` folder for the fixture's reports. */
function setup(t) {
  const env = h.useHome(t, 'rpm2-eco-');
  const out = path.join(env.dir, 'out');
  fs.mkdirSync(out);
  return { ...env, out };
}

// The two apps every format declares (run from the fixtures folder: relative scripts resolve there).
const APP_A = {
  name: 'eco-a',
  script: ECO_APP,
  cwd: FIX,
  args: ['--flag', 'value', 'two words'],
  exec_mode: 'fork_mode',
  instances: 1,
  interpreter: 'node',
  env: { ECO_A: 'alpha', ECO_NUM: '42' },
};
const APP_B = {
  name: 'eco-b',
  script: ECO_APP,
  cwd: FIX,
  args: ['one', 'two three'],
  exec_mode: 'cluster_mode',
  instances: 2,
  interpreter: 'node',
  env: { ECO_B: 'beta' },
};

/** Checks what the children of APP_A / APP_B really got (argv, env, cwd, instance numbers). */
async function checkChildren(out, list) {
  const instancesOfB = [];
  for (const p of list) {
    const d = await childReport(out, p);
    const want = p.name === 'eco-a' ? APP_A : APP_B;
    assert.deepEqual(d.argv, want.args, `${p.name} argv`);
    assert.deepEqual(ecoVars(d.env), want.env, `${p.name} child env`);
    assert.equal(d.cwd, FIX, `${p.name} child cwd`);
    if (p.name === 'eco-b') instancesOfB.push(d.env.NODE_APP_INSTANCE);
  }
  if (instancesOfB.length) assert.deepEqual(instancesOfB.sort(), ['0', '1'], 'eco-b instances are 0 and 1');
}

// The options of PM2 7's option table (reference §3.2), canonical names.
const PM2_OPTIONS = [
  'script', 'name', 'name_prefix', 'namespace', 'cwd', 'args', 'interpreter', 'node_args', 'instances',
  'exec_mode', 'watch', 'ignore_watch', 'watch_options', 'watch_delay', 'max_memory_restart', 'env',
  'append_env_to_name', 'filter_env', 'log_date_format', 'time', 'log_type', 'error_file', 'out_file',
  'log_file', 'merge_logs', 'disable_logs', 'pid_file', 'min_uptime', 'max_restarts', 'restart_delay',
  'exp_backoff_restart_delay', 'autorestart', 'autostart', 'stop_exit_codes', 'cron_restart', 'kill_timeout',
  'kill_retry_time', 'listen_timeout', 'wait_ready', 'shutdown_with_message', 'treekill', 'force',
  'increment_var', 'instance_var', 'port', 'vizion', 'post_update', 'source_map_support',
  'disable_source_map_support', 'pmx', 'automation', 'trace', 'disable_trace', 'deep_monitoring', 'v8',
  'event_loop_inspector', 'io', 'uid', 'gid', 'windowsHide', 'execute_command', 'write', 'username',
  'install_url',
];
// Options of the table that rpm2 learnt late (86ee66e): kept out of eco-all-options.json, tested on their own.
const NOT_KNOWN_YET = ['v8', 'event_loop_inspector', 'write', 'install_url'];

// ---------------------------------------------------------------------------------------------------

describe('ecosystem files (issue 7)', { concurrency: 3 }, () => {
  // ---- formats ------------------------------------------------------------------------------------

  const FORMATS = [
    ['eco-two.json', 'JSON as the seed writes it (// comments, trailing commas)'],
    ['eco-two.json5', 'JSON5'],
    ['eco-two.yaml', 'YAML (.yaml)'],
    ['eco-two.yml', 'YAML (.yml)'],
    ['eco-two.config.js', 'ecosystem .config.js (module.exports)'],
    ['eco-two.config.cjs', '.config.cjs (module.exports)'],
    ['eco-two-default.config.mjs', '.config.mjs with export default {apps}'],
    ['eco-two-const.config.mjs', '.config.mjs with export const apps'],
    ['eco-two-array.json', 'a bare array of apps'],
  ];
  for (const [file, what] of FORMATS) {
    test(`format: ${what} (${file}) starts the same two apps`, async (t) => {
      const { home, out } = setup(t);
      const r = await ok(['start', file], { home, cwd: FIX, env: { ECO_OUT: out } });
      assert.doesNotMatch(r.stderr, /WARN|unknown/i, `no warning expected\n${h.show(r)}`);
      await waitAllOnline(home, 3);
      const list = await jlistEnv(home);
      assert.deepEqual(summary(list), [APP_A, APP_B, APP_B]);
      await checkChildren(out, list);
    });
  }

  test('format: one app object (eco-one.json) starts that app', async (t) => {
    const { home, out } = setup(t);
    await ok(['start', 'eco-one.json'], { home, cwd: FIX, env: { ECO_OUT: out } });
    await waitAllOnline(home, 1);
    const list = await jlistEnv(home);
    assert.deepEqual(summary(list), [APP_A]);
    await checkChildren(out, list);
  });

  test('format: an absolute path to the file works from any folder (scripts still resolve against the shell cwd)', async (t) => {
    const { home, dir, out } = setup(t);
    // From `dir`, eco-app.js must be found in `dir` (PM2: relative scripts resolve against the shell cwd).
    fs.copyFileSync(ECO_APP, path.join(dir, 'eco-app.js'));
    await ok(['start', h.fixture('eco-two.yaml')], { home, cwd: dir, env: { ECO_OUT: out } });
    const list = await waitAllOnline(home, 3);
    for (const p of list) {
      assert.equal(p.pm2_env.pm_exec_path, path.join(dir, 'eco-app.js'));
      assert.equal(p.pm2_env.pm_cwd, dir);
    }
  });

  // ---- start without argument, --only, --env -----------------------------------------------------

  test('`rpm2 start` with no argument uses ./ecosystem.config.js', async (t) => {
    const { home, dir, out } = setup(t);
    fs.copyFileSync(h.fixture('eco-two.config.js'), path.join(dir, 'ecosystem.config.js'));
    fs.copyFileSync(ECO_APP, path.join(dir, 'eco-app.js'));
    fs.writeFileSync(path.join(dir, 'other.config.js'), 'module.exports = {apps: [{name: "decoy", script: "eco-app.js"}]};\n');
    await ok(['start'], { home, cwd: dir, env: { ECO_OUT: out } });
    const list = await waitAllOnline(home, 3);
    assert.deepEqual(list.map((p) => p.name).sort(), ['eco-a', 'eco-b', 'eco-b']);
    assert.ok(list.every((p) => p.pm2_env.pm_exec_path === path.join(dir, 'eco-app.js')));

    // Without ecosystem.config.js: a clear error, nothing started.
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const { home: home2 } = setup(t);
    const r = await h.rpm2(['start'], { home: home2, cwd: empty });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, /ecosystem\.config\.js/, h.show(r));
    assert.deepEqual(await h.jlist(home2), []);
  });

  test('--only starts only the named apps (one, or a comma-separated list); an unknown name is an error', async (t) => {
    const { home, out } = setup(t);
    await ok(['start', 'eco-two.config.js', '--only', 'eco-a'], { home, cwd: FIX, env: { ECO_OUT: out } });
    let list = await waitAllOnline(home, 1);
    assert.equal(list[0].name, 'eco-a');

    const { home: home2 } = setup(t);
    await ok(['start', 'eco-two.yaml', '--only', 'eco-b,eco-a'], { home: home2, cwd: FIX, env: { ECO_OUT: out } });
    list = await waitAllOnline(home2, 3);
    assert.deepEqual(list.map((p) => p.name).sort(), ['eco-a', 'eco-b', 'eco-b']);

    const { home: home3 } = setup(t);
    const r = await h.rpm2(['start', 'eco-two.json', '--only', 'nope'], { home: home3, cwd: FIX });
    assert.notEqual(r.code, 0, h.show(r));
    assert.match(r.stderr, /nope/, h.show(r));
    assert.match(r.stderr, /eco-two\.json/, h.show(r));
    assert.deepEqual(await h.jlist(home3), []);
  });

  const SHELL = { ECO_S: 'shell', ECO_D: 'shell', ECO_E: 'shell', ECO_P: 'shell' };
  const WITHOUT_ENV = { ECO_S: 'shell', ECO_D: 'shell', ECO_E: 'env', ECO_P: 'env' };
  const WITH_PRODUCTION = { ECO_S: 'shell', ECO_D: 'deploy', ECO_E: 'env', ECO_P: 'production' };

  test('--env production: shell < deploy.production.env < env < env_production (child env and jlist)', async (t) => {
    const { home, out } = setup(t);
    await ok(['start', 'eco-env.config.js', '--env', 'production'], { home, cwd: FIX, env: { ECO_OUT: out, ...SHELL } });
    const [p] = await waitAllOnline(home, 1);
    const d = await childReport(out, p);
    assert.deepEqual(ecoVars(d.env), WITH_PRODUCTION, 'what the app sees');
    const [e] = await jlistEnv(home);
    assert.deepEqual(ecoVars(e.pm2_env.env), WITH_PRODUCTION, 'what jlist --env shows');
  });

  test('without --env: env over the shell; then `restart <file> --env production` switches the running app', async (t) => {
    const { home, out } = setup(t);
    await ok(['start', 'eco-env.config.js'], { home, cwd: FIX, env: { ECO_OUT: out, ...SHELL } });
    const [p] = await waitAllOnline(home, 1);
    assert.deepEqual(ecoVars((await childReport(out, p)).env), WITHOUT_ENV);

    await ok(['restart', 'eco-env.config.js', '--env', 'production'], { home, cwd: FIX, env: { ECO_OUT: out, ...SHELL } });
    const p2 = await h.waitForProc(home, 'eco-env', (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p.pid);
    assert.equal(p2.pm_id, p.pm_id, 'the same app was restarted');
    assert.deepEqual(ecoVars((await childReport(out, p2)).env), WITH_PRODUCTION);
    assert.equal((await h.jlist(home)).length, 1, 'no duplicate');
  });

  test('restart <file> and start <file> again apply changed options and env to the running app', async (t) => {
    const { home, dir, out } = setup(t);
    const file = path.join(dir, 'eco.config.js');
    const conf = (v, kt, mr, arg) => `module.exports = {apps: [{name: 'eco-r', script: ${JSON.stringify(ECO_APP)},
      args: [${JSON.stringify(arg)}], kill_timeout: ${kt}, max_restarts: ${mr}, env: {ECO_R: ${JSON.stringify(v)}}}]};\n`;
    fs.writeFileSync(file, conf('one', 1600, 5, 'v1'));
    await ok(['start', file], { home, cwd: dir, env: { ECO_OUT: out } });
    const [p] = await waitAllOnline(home, 1);
    let d = await childReport(out, p);
    assert.deepEqual([d.argv, d.env.ECO_R], [['v1'], 'one']);

    fs.writeFileSync(file, conf('two', 2345, 7, 'v2'));
    await ok(['restart', file], { home, cwd: dir, env: { ECO_OUT: out } });
    const p2 = await h.waitForProc(home, 'eco-r', (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p.pid);
    assert.equal(p2.pm_id, p.pm_id);
    assert.equal(p2.pm2_env.kill_timeout, 2345);
    assert.equal(p2.pm2_env.max_restarts, 7);
    assert.deepEqual(p2.pm2_env.args, ['v2']);
    d = await childReport(out, p2);
    assert.deepEqual([d.argv, d.env.ECO_R], [['v2'], 'two']);

    fs.writeFileSync(file, conf('three', 2600, 8, 'v3'));
    await ok(['start', file], { home, cwd: dir, env: { ECO_OUT: out } });
    const p3 = await h.waitForProc(home, 'eco-r', (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p2.pid);
    assert.equal(p3.pm_id, p.pm_id);
    assert.equal(p3.pm2_env.kill_timeout, 2600);
    d = await childReport(out, p3);
    assert.deepEqual([d.argv, d.env.ECO_R], [['v3'], 'three']);
    assert.equal((await h.jlist(home)).length, 1, 'start <file> on a running app restarts it, no duplicate');
  });

  test('reload <file> applies changed env too', async (t) => {
    const { home, dir, out } = setup(t);
    const file = path.join(dir, 'eco.config.js');
    const conf = (v) => `module.exports = {apps: [{name: 'eco-rl', script: ${JSON.stringify(ECO_APP)}, env: {ECO_R: ${JSON.stringify(v)}}}]};\n`;
    fs.writeFileSync(file, conf('one'));
    await ok(['start', file], { home, cwd: dir, env: { ECO_OUT: out } });
    const [p] = await waitAllOnline(home, 1);
    fs.writeFileSync(file, conf('two'));
    await ok(['reload', file], { home, cwd: dir, env: { ECO_OUT: out } });
    const p2 = await h.waitForProc(home, 'eco-rl', (x) => x.pm2_env.status === 'online' && x.pid > 0 && x.pid !== p.pid);
    assert.equal((await childReport(out, p2)).env.ECO_R, 'two');
  });

  test('stop <file> and delete <file> act on the apps the file declares (PM2 accepts a file as target)', async (t) => {
    const { home, out } = setup(t);
    await ok(['start', 'eco-two.config.js'], { home, cwd: FIX, env: { ECO_OUT: out } });
    await waitAllOnline(home, 3);
    await ok(['stop', 'eco-two.config.js'], { home, cwd: FIX });
    const list = await h.jlist(home);
    assert.equal(list.length, 3);
    assert.ok(list.every((p) => p.pm2_env.status === 'stopped'), JSON.stringify(list.map((p) => p.pm2_env.status)));
    await ok(['delete', 'eco-two.config.js'], { home, cwd: FIX });
    assert.deepEqual(await h.jlist(home), []);
  });

  // ---- relative paths ----------------------------------------------------------------------------

  test('relative cwd and script resolve against the shell cwd, not the file\'s folder; absolute cwd works', async (t) => {
    const { home, dir, out } = setup(t);
    const T = path.join(dir, 'rel');
    fs.mkdirSync(path.join(T, 'sub'), { recursive: true });
    fs.mkdirSync(path.join(T, 'conf', 'sub'), { recursive: true });
    fs.mkdirSync(path.join(T, 'other'));
    fs.copyFileSync(ECO_APP, path.join(T, 'sub', 'srv.js'));
    fs.copyFileSync(ECO_APP, path.join(T, 'conf', 'sub', 'srv.js')); // decoy next to the file
    write(path.join(T, 'conf', 'cwd.config.js'), "module.exports = {apps: [{name: 'rel-cwd', cwd: 'sub', script: 'srv.js'}]};\n");
    write(path.join(T, 'conf', 'script.config.js'), "module.exports = {apps: [{name: 'rel-script', script: 'sub/srv.js'}]};\n");
    write(path.join(T, 'conf', 'abs.json'), JSON.stringify({ name: 'abs-cwd', cwd: path.join(T, 'sub'), script: 'srv.js' }));

    // {cwd: 'sub', script: 'srv.js'} from T -> T/sub/srv.js, child cwd T/sub (reference §3.5).
    await ok(['start', 'conf/cwd.config.js'], { home, cwd: T, env: { ECO_OUT: out } });
    let p = await h.waitForProc(home, 'rel-cwd', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.equal(p.pm2_env.pm_cwd, path.join(T, 'sub'));
    assert.equal(p.pm2_env.pm_exec_path, path.join(T, 'sub', 'srv.js'));
    assert.equal((await childReport(out, p)).cwd, path.join(T, 'sub'));

    // {script: 'sub/srv.js'} with an absolute file path, from T -> T/sub/srv.js (not T/conf/sub/srv.js).
    await ok(['start', path.join(T, 'conf', 'script.config.js')], { home, cwd: T, env: { ECO_OUT: out } });
    p = await h.waitForProc(home, 'rel-script', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.equal(p.pm2_env.pm_exec_path, path.join(T, 'sub', 'srv.js'));
    assert.equal(p.pm2_env.pm_cwd, T);

    // Same file from T/other: script not found there (PM2: "Script not found: /tmp/sub/srv.js").
    const { home: home2 } = setup(t);
    const r = await h.rpm2(['start', path.join(T, 'conf', 'script.config.js')], { home: home2, cwd: path.join(T, 'other') });
    assert.notEqual(r.code, 0, h.show(r));
    assert.ok(r.stderr.includes(path.join(T, 'other', 'sub', 'srv.js')), `names the path it looked for\n${h.show(r)}`);
    assert.deepEqual(await h.jlist(home2), []);

    // An absolute cwd works from anywhere (here /).
    await ok(['start', path.join(T, 'conf', 'abs.json')], { home, cwd: '/', env: { ECO_OUT: out } });
    p = await h.waitForProc(home, 'abs-cwd', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.equal(p.pm2_env.pm_cwd, path.join(T, 'sub'));
    assert.equal(p.pm2_env.pm_exec_path, path.join(T, 'sub', 'srv.js'));
    assert.equal((await childReport(out, p)).cwd, path.join(T, 'sub'));
  });

  // ---- the seed's listings -------------------------------------------------------------------------

  /** Listing 4-5 with its absolute paths moved under `dir`; returns {file, appDir, logDir}. */
  function listing45(dir, { pidsDir = true } = {}) {
    const appDir = path.join(dir, 'opt', 'my-app');
    const logDir = path.join(dir, 'var', 'log', 'my-app');
    fs.mkdirSync(appDir, { recursive: true });
    if (pidsDir) fs.mkdirSync(path.join(appDir, 'pids'));
    fs.copyFileSync(ECO_APP, path.join(appDir, 'index.js'));
    const text = fs.readFileSync(h.fixture('eco-listing-4-5.json'), 'utf8')
      .replaceAll('/opt/my-app', appDir).replaceAll('/var/log/my-app', logDir);
    return { file: write(path.join(dir, 'my-app.json'), text), appDir, logDir };
  }

  test('Listing 4-5 (every option of the JSON declaration) starts and behaves as the chapter says', async (t) => {
    const { home, dir, out } = setup(t);
    const { file, appDir, logDir } = listing45(dir);
    const r = await ok(['start', file], { home, cwd: dir, env: { ECO_OUT: out } });
    assert.doesNotMatch(r.stderr, /WARN|unknown/i, h.show(r));
    const p = await h.waitForProc(home, 'my-app', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    const e = p.pm2_env;
    assert.equal(e.pm_cwd, appDir);
    assert.equal(e.pm_exec_path, path.join(appDir, 'index.js'));
    assert.deepEqual(e.args, ['--argument1=value', '--flag', 'value']);
    assert.deepEqual(e.node_args, ['--harmony']);
    assert.equal(e.log_date_format, 'YYYY-MM-DD HH:mm Z');
    assert.equal(e.pm_err_log_path, path.join(logDir, 'err.log'));
    assert.equal(e.pm_out_log_path, path.join(logDir, 'out.log'));
    assert.equal(e.pm_pid_path, path.join(appDir, 'pids', 'my-app-0.pid'), 'pid_file relative to cwd, -<pm_id> inserted as PM2');
    assert.equal(e.instances, 1);
    assert.equal(e.exec_mode, 'fork_mode');
    assert.equal(e.max_restarts, 10);
    assert.equal(e.max_memory_restart, 1024 * 1024, '"1M" = 1 megabyte');
    assert.equal(e.cron_restart, '1 0 * * *');
    assert.equal(e.watch, false);
    assert.deepEqual(e.ignore_watch, ['node_modules']);
    assert.equal(e.merge_logs, true);
    assert.equal(e.autorestart, false);
    const [withEnv] = await jlistEnv(home);
    assert.equal(withEnv.pm2_env.env.NODE_ENV, 'production');

    // The child got args and node_args; NODE_ENV from env.
    const d = await childReport(out, p);
    assert.deepEqual(d.argv, ['--argument1=value', '--flag', 'value']);
    assert.ok(d.execArgv.includes('--harmony'), JSON.stringify(d.execArgv));
    assert.equal(d.env.NODE_ENV, 'production');
    // out_file gets the app's lines prefixed with the log_date_format date.
    await h.waitFor(() => /^\d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d: eco-app my-app up/m.test(readText(path.join(logDir, 'out.log'))),
      { message: `a dated line in ${path.join(logDir, 'out.log')}` });
    // pid_file holds the app's pid.
    await h.waitFor(async () => {
      const now = await h.proc(home, 'my-app');
      return now && now.pid > 0 && Number(readText(e.pm_pid_path).trim()) === now.pid;
    }, { message: 'the pid file holds the current pid' });
    // max_memory_restart "1M": a Node app uses more than 1 MB, so it is restarted (even with
    // autorestart false, as PM2), and comes back online.
    const again = await h.waitForProc(home, 'my-app', (x) => x.pm2_env.restart_time >= 1 && x.pm2_env.status === 'online',
      { timeout: 30000, message: 'restarted for memory' });
    if (again.pm2_env.restart_reason !== undefined) assert.match(again.pm2_env.restart_reason, /max_memory_restart/);
  });

  test('Listing 4-5 as written: pid_file "pids/my-app.pid" under a cwd without pids/ still records the pid', async (t) => {
    const { home, dir } = setup(t);
    const { file, appDir } = listing45(dir, { pidsDir: false });
    await ok(['start', file], { home, cwd: dir });
    await h.waitFor(async () => {
      const now = await h.proc(home, 'my-app');
      return now && now.pid > 0 && Number(readText(path.join(appDir, 'pids', 'my-app-0.pid')).trim()) === now.pid;
    }, { message: 'the pid file holds the current pid' });
  });

  test('Listing 4-7 (microservices): main prints the temperatures it gets from weather-api', async (t) => {
    const { home, dir } = setup(t);
    const port = await freePort();
    const msDir = h.fixture('eco-microservices');
    // As the chapter's note says: the cwds made absolute. Ports: a free one; 127.0.0.1 for localhost.
    const text = fs.readFileSync(h.fixture('eco-listing-4-7.json'), 'utf8')
      .replaceAll('"../microservices"', JSON.stringify(msDir))
      .replaceAll('localhost:7010', `127.0.0.1:${port}`)
      .replaceAll('7010', String(port));
    const file = write(path.join(dir, 'microservices', 'pm2', 'development.json'), text);
    const r = await ok(['start', file], { home, cwd: dir });
    assert.doesNotMatch(r.stderr, /WARN|unknown/i, h.show(r));
    const list = await waitAllOnline(home, 2);
    assert.deepEqual(list.map((p) => p.name), ['main', 'weather-api']);
    for (const p of list) {
      assert.equal(p.pm2_env.pm_cwd, msDir);
      assert.equal(p.pm2_env.watch, true);
      assert.equal(p.pm2_env.max_memory_restart, 60 * 1024 * 1024);
    }
    const byName = Object.fromEntries((await jlistEnv(home)).map((p) => [p.name, p]));
    assert.equal(byName.main.pm2_env.pm_exec_path, path.join(msDir, 'main', 'index.js'));
    assert.equal(byName.main.pm2_env.env.WEATHER_API_URL, `http://127.0.0.1:${port}`);
    assert.equal(byName.main.pm2_env.env.NODE_ENV, 'development');
    assert.equal(byName['weather-api'].pm2_env.env.PORT, String(port));

    const mainOut = byName.main.pm2_env.pm_out_log_path;
    const temps = await h.waitFor(() => {
      const m = readText(mainOut).match(/^The temperature is: (\d+)$/gm);
      return m && m.length >= 2 ? m : undefined;
    }, { timeout: 30000, message: `two temperature lines in ${mainOut}` });
    for (const l of temps) {
      const f = Number(l.split(': ')[1]);
      assert.ok(f >= 70 && f <= 110, l);
    }
    assert.match(readText(byName['weather-api'].pm2_env.pm_out_log_path), /"GET \/api\/weather\/37204 HTTP\/1\.1" 200/);
  });

  test('Listing 4-9 (multicore): instances 0 = one per CPU in cluster mode, all serving the port', async (t) => {
    const { home, dir } = setup(t);
    const port = await freePort();
    const text = fs.readFileSync(h.fixture('eco-listing-4-9.json'), 'utf8')
      .replaceAll('"../multicore"', JSON.stringify(h.fixture('eco-multicore')))
      .replaceAll('9000', String(port));
    const file = write(path.join(dir, 'multicore', 'pm2', 'development.json'), text);
    const r = await ok(['start', file], { home, cwd: dir });
    assert.doesNotMatch(r.stderr, /WARN|unknown/i, h.show(r));
    const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    const list = await waitAllOnline(home, cpus, `${cpus} multicore instances (one per CPU)`);
    for (const p of list) {
      assert.equal(p.name, 'multicore');
      assert.equal(p.pm2_env.exec_mode, 'cluster_mode');
      assert.equal(p.pm2_env.instances, cpus);
      assert.equal(p.pm2_env.merge_logs, true);
      assert.equal(p.pm2_env.autorestart, true);
    }
    const pids = new Set(list.map((p) => String(p.pid)));
    const seen = new Set();
    await h.waitFor(async () => {
      const res = await get(port, '/');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'Hello, world.');
      assert.ok(pids.has(res.headers['x-pid']), `answered by ${res.headers['x-pid']}, not one of ${[...pids]}`);
      seen.add(res.headers['x-pid']);
      return seen.size === pids.size;
    }, { timeout: 20000, interval: 20, message: `every instance answers (seen ${[...seen]})` });
  });

  // ---- options -------------------------------------------------------------------------------------

  /** A folder with work/eco-app.js and work/pids/, for the options fixtures (paths relative to cwd "work"). */
  function workDir(dir) {
    const T = path.join(dir, 'opts');
    fs.mkdirSync(path.join(T, 'work', 'pids'), { recursive: true });
    fs.copyFileSync(ECO_APP, path.join(T, 'work', 'eco-app.js'));
    return T;
  }

  test('every option of PM2\'s option table is accepted without warning and shows in jlist', async (t) => {
    const { home, dir, out } = setup(t);
    const T = workDir(dir);
    const conf = vm.runInThisContext(`(${fs.readFileSync(h.fixture('eco-all-options.json'), 'utf8')})`);
    const me = os.userInfo();
    conf.apps[0].uid = me.username;
    conf.apps[0].gid = me.gid;
    const file = write(path.join(T, 'all.json'), JSON.stringify(conf, null, 2));
    const declared = new Set(Object.keys(conf.apps[0]));
    for (const o of PM2_OPTIONS.filter((x) => !NOT_KNOWN_YET.includes(x))) {
      assert.ok(declared.has(o) || o === 'env', `the fixture declares ${o}`);
    }
    const r = await ok(['start', file], { home, cwd: T, env: { ECO_OUT: out } });
    assert.equal(h.lines(r.stderr).filter((l) => !/Spawned the rpm2 daemon/.test(l)).join('\n'), '', `no warning\n${h.show(r)}`);
    const p = await h.waitForProc(home, 'pre:every-option', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    const W = path.join(T, 'work');
    const e = p.pm2_env;
    const expected = {
      name: 'pre:every-option',
      namespace: 'eco-ns',
      pm_cwd: W,
      pm_exec_path: path.join(W, 'eco-app.js'),
      args: ['a1', 'a 2'],
      exec_interpreter: 'node',
      node_args: ['--max-old-space-size=200'],
      instances: 1,
      exec_mode: 'fork_mode',
      watch: false,
      ignore_watch: ['node_modules', 'logs'],
      watch_delay: 500,
      max_memory_restart: 500 * 1024 * 1024,
      log_date_format: 'YYYY-MM-DD',
      log_type: 'json',
      pm_err_log_path: path.join(W, 'logs', 'err.log'),
      pm_out_log_path: path.join(W, 'logs', 'out.log'),
      pm_log_path: path.join(W, 'logs', 'combined.log'),
      merge_logs: true,
      disable_logs: false,
      pm_pid_path: path.join(W, 'pids', `app-${p.pm_id}.pid`),
      min_uptime: 2000,
      max_restarts: 7,
      restart_delay: 100,
      exp_backoff_restart_delay: 150,
      autorestart: true,
      autostart: true,
      stop_exit_codes: [3],
      cron_restart: '0 3 * * *',
      kill_timeout: 2500,
      listen_timeout: 4000,
      wait_ready: false,
      shutdown_with_message: false,
      treekill: true,
      force: false,
      increment_var: 'ECO_INC',
      instance_var: 'ECO_INSTANCE',
      vizion: false,
    };
    const got = Object.fromEntries(Object.keys(expected).map((k) => [k, e[k]]));
    assert.deepEqual(got, expected);
    const [withEnv] = await jlistEnv(home);
    assert.equal(withEnv.pm2_env.env.ECO_ALL, 'yes', 'env (no --env given: env_production not applied)');
    assert.equal(withEnv.pm2_env.env.PORT, '3999', 'port -> env.PORT');
    const d = await childReport(out, p);
    assert.equal(d.env.ECO_INSTANCE, '0', 'instance_var names the instance variable');
    assert.equal(d.env.PORT, '3999');
    assert.equal(d.env.ECO_INC, '10', 'increment_var: instance 0 keeps the env value');
    assert.ok(d.execArgv.includes('--max-old-space-size=200'));
  });

  test('PM2 aliases and camelCase spellings are accepted without warning', async (t) => {
    const { home, dir } = setup(t);
    const T = workDir(dir);
    const r = await ok(['start', h.fixture('eco-aliases.json')], { home, cwd: T });
    assert.equal(h.lines(r.stderr).filter((l) => !/Spawned the rpm2 daemon/.test(l)).join('\n'), '', `no warning\n${h.show(r)}`);
    const list = await waitAllOnline(home, 3);
    const by = Object.fromEntries(list.map((p) => [p.name, p.pm2_env]));
    const W = path.join(T, 'work');
    for (const n of ['alias-exec', 'alias-cmd', 'alias-command']) assert.equal(by[n].pm_exec_path, path.join(W, 'eco-app.js'), n);
    assert.equal(by['alias-exec'].exec_interpreter, 'node');
    assert.deepEqual(by['alias-exec'].node_args, ['--max-old-space-size=150']);
    assert.equal(by['alias-exec'].pm_err_log_path, path.join(W, 'logs', 'e1.log'));
    assert.equal(by['alias-exec'].pm_out_log_path, path.join(W, 'logs', 'o1.log'));
    assert.equal(by['alias-exec'].pm_log_path, path.join(W, 'logs', 'c1.log'));
    assert.equal(by['alias-exec'].pm_pid_path, path.join(W, 'pids', `p1-${list.find((p) => p.name === 'alias-exec').pm_id}.pid`));
    assert.equal(by['alias-exec'].cron_restart, '0 4 * * *');
    assert.equal(by['alias-exec'].max_memory_restart, 400 * 1024 * 1024);
    assert.equal(by['alias-exec'].kill_timeout, 2100);
    assert.equal(by['alias-cmd'].pm_err_log_path, path.join(W, 'logs', 'e2.log'));
    assert.equal(by['alias-cmd'].pm_out_log_path, path.join(W, 'logs', 'o2.log'));
    assert.deepEqual(by['alias-cmd'].node_args, ['--max-old-space-size=160']);
    assert.equal(by['alias-cmd'].max_restarts, 4);
    assert.equal(by['alias-cmd'].min_uptime, 2000);
    assert.equal(by['alias-cmd'].restart_delay, 50);
    assert.equal(by['alias-command'].pm_err_log_path, path.join(W, 'logs', 'e3.log'));
    assert.equal(by['alias-command'].pm_out_log_path, path.join(W, 'logs', 'o3.log'));
    assert.equal(by['alias-command'].listen_timeout, 3500);
    assert.deepEqual(by['alias-command'].stop_exit_codes, [5]);
  });

  test('the rest of PM2\'s option table (v8, event_loop_inspector, write, install_url) is accepted without warning', async (t) => {
    const { home, dir } = setup(t);
    const file = write(path.join(dir, 'rest.json'), JSON.stringify({
      name: 'rest', script: ECO_APP, v8: false, event_loop_inspector: false, write: false, install_url: '',
    }));
    const r = await ok(['start', file], { home, cwd: dir });
    assert.doesNotMatch(r.stderr, /unknown option/, h.show(r));
    await h.waitForProc(home, 'rest', (x) => x.pm2_env.status === 'online');
  });

  test('an unknown option warns, naming it and the closest known option, and the app still starts', async (t) => {
    const { home, dir } = setup(t);
    const file = write(path.join(dir, 'typo.config.js'),
      `module.exports = {apps: [{name: 'typo', script: ${JSON.stringify(ECO_APP)}, max_restart: 3, kill_timout: 2000}]};\n`);
    const r = await ok(['start', file], { home, cwd: dir });
    const warn = h.lines(r.stderr).filter((l) => /max_restart\b/.test(l));
    assert.equal(warn.length, 1, `one warning for max_restart\n${h.show(r)}`);
    assert.match(warn[0], /'max_restart'/);
    assert.match(warn[0], /max_restarts/, 'suggests max_restarts');
    assert.match(warn[0], /typo/, 'names the app');
    assert.match(r.stderr, /kill_timout[^\n]*kill_timeout/, `suggests kill_timeout\n${h.show(r)}`);
    const p = await h.waitForProc(home, 'typo', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.equal(p.pm2_env.max_restarts, 16, 'the unknown key was ignored (default kept)');
  });

  // ---- bad input -----------------------------------------------------------------------------------

  const GOOD = (dir) => JSON.stringify({ name: 'good', script: path.join(dir, 'app.js') });
  const APP = (dir) => JSON.stringify(path.join(dir, 'app.js'));
  const BAD = [
    {
      what: 'a syntax error in .json (file and line:column)',
      file: 'bad.json',
      text: () => '{\n  "apps": [\n    { "name": "a", "script": "app.js" "args": [] }\n  ]\n}\n',
      needles: (f) => [f, /\b3:\d+\b|line 3\b/],
    },
    {
      what: 'a syntax error in .yaml (file and line)',
      file: 'bad.yaml',
      text: () => 'apps:\n  - name: a\n    script: [app.js\n  - name: b\n',
      needles: (f) => [f, /line [345]\b/],
    },
    {
      what: 'a syntax error in .config.js (file:line)',
      file: 'bad.config.js',
      text: (dir) => `module.exports = {\n  apps: [\n    {name: 'a', script: ${APP(dir)}\n  ]\n};\n`,
      needles: (f) => [new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4\\b`)],
    },
    {
      what: 'a wrong type (instances: "lots")',
      file: 'type.config.js',
      text: (dir) => `module.exports = {apps: [${GOOD(dir)}, {name: 'a', script: ${APP(dir)}, instances: 'lots'}]};\n`,
      needles: (f) => [f, "'a'", 'instances', 'lots'],
    },
    {
      what: 'a wrong type in YAML (kill_timeout: soon)',
      file: 'type.yaml',
      text: (dir) => `apps:\n  - name: good\n    script: ${path.join(dir, 'app.js')}\n  - name: a\n    script: ${path.join(dir, 'app.js')}\n    kill_timeout: soon\n`,
      needles: (f) => [f, "'a'", 'kill_timeout', 'soon'],
    },
    {
      what: 'a missing script',
      file: 'noscript.config.js',
      text: (dir) => `module.exports = {apps: [${GOOD(dir)}, {name: 'a', instances: 1}]};\n`,
      needles: (f) => [f, "'a'", 'script'],
    },
    {
      what: 'a script that does not exist',
      file: 'gone.json',
      text: (dir) => JSON.stringify({ apps: [JSON.parse(GOOD(dir)), { name: 'a', script: path.join(dir, 'nope.js') }] }),
      needles: (f, dir) => [f, "'a'", 'script', path.join(dir, 'nope.js')],
    },
    {
      what: 'two apps with the same name',
      file: 'dup.config.js',
      text: (dir) => `module.exports = {apps: [${GOOD(dir)}, {name: 'a', script: ${APP(dir)}}, {name: 'a', script: ${APP(dir)}}]};\n`,
      needles: (f) => [f, "'a'", 'name'],
    },
    // `--env staging` when no app has env_staging starts with the base env and warns (PM2 starts
    // silently): see targets.test.js.
  ];
  for (const c of BAD) {
    test(`bad input: ${c.what} -> one clear message, non-zero exit, nothing started`, c.todo ? { todo: c.todo } : {}, async (t) => {
      const { home, dir } = setup(t);
      fs.copyFileSync(ECO_APP, path.join(dir, 'app.js'));
      const f = write(path.join(dir, c.file), c.text(dir));
      const r = await h.rpm2(['start', f, ...(c.args || [])], { home, cwd: dir });
      assert.notEqual(r.code, 0, `should fail\n${h.show(r)}`);
      assert.equal(r.signal, null, h.show(r));
      const errLines = h.lines(r.stderr).filter((l) => !/Spawned the rpm2 daemon/.test(l));
      assert.equal(errLines.length, 1, `exactly one error line\n${h.show(r)}`);
      assert.match(errLines[0], /ERROR/, h.show(r));
      for (const n of c.needles(f, dir)) {
        if (n instanceof RegExp) assert.match(errLines[0], n, h.show(r));
        else assert.ok(errLines[0].includes(n), `the error names ${JSON.stringify(n)}\n${h.show(r)}`);
      }
      assert.deepEqual(await h.jlist(home), [], 'nothing started');
    });
  }

  // ---- rpm2 init -----------------------------------------------------------------------------------

  test('rpm2 init writes an ecosystem.config.js Node can require and rpm2 can start; no overwrite without --force', async (t) => {
    const { home, dir, out } = setup(t);
    const r = await ok(['init'], { home, cwd: dir });
    const file = path.join(dir, 'ecosystem.config.js');
    assert.ok(r.stdout.includes(file), h.show(r));
    const starter = fs.readFileSync(file, 'utf8');
    const req = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)})))`], { encoding: 'utf8' });
    assert.equal(req.status, 0, req.stderr);
    const conf = JSON.parse(req.stdout);
    assert.ok(Array.isArray(conf.apps) && conf.apps.length >= 1, req.stdout);
    const name = conf.apps[0].name;
    assert.equal(typeof name, 'string');
    // Point its script at a fixture, then `rpm2 start` (no argument) starts it.
    const edited = starter.replace(/script:\s*(['"])[^'"]*\1/, `script: ${JSON.stringify(ECO_APP)}`);
    assert.notEqual(edited, starter, 'the starter has a script line');
    fs.writeFileSync(file, edited);
    const s = await ok(['start'], { home, cwd: dir, env: { ECO_OUT: out } });
    assert.doesNotMatch(s.stderr, /WARN/, h.show(s));
    const p = await h.waitForProc(home, name, (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.equal(p.pm2_env.pm_exec_path, ECO_APP);
    if (conf.apps[0].env && conf.apps[0].env.NODE_ENV) {
      assert.equal((await childReport(out, p)).env.NODE_ENV, conf.apps[0].env.NODE_ENV);
    }

    // A second init refuses to overwrite.
    const again = await h.rpm2(['init'], { home, cwd: dir });
    assert.notEqual(again.code, 0, h.show(again));
    assert.match(again.stderr, /--force/, h.show(again));
    assert.equal(fs.readFileSync(file, 'utf8'), edited, 'the file is untouched');
    // --force overwrites (alias `ecosystem` too).
    await ok(['ecosystem', '--force'], { home, cwd: dir });
    assert.equal(fs.readFileSync(file, 'utf8'), starter);
  });

  // ---- JSON Schema ---------------------------------------------------------------------------------

  const SCHEMA = JSON.parse(fs.readFileSync(path.join(h.ROOT, 'schema', 'ecosystem.schema.json'), 'utf8'));
  const APP_SCHEMA = SCHEMA.definitions.app;

  /** A small JSON Schema (draft 7 subset) validator: returns a list of errors. */
  function validate(value, schema, at = '$', root = SCHEMA) {
    const errs = [];
    if (schema === true || schema === undefined) return errs;
    if (schema === false) return [`${at}: not allowed`];
    if (schema.$ref) {
      const target = schema.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o && o[k], root);
      if (!target) return [`${at}: unresolvable $ref ${schema.$ref}`];
      return validate(value, target, at, root);
    }
    const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
    const isType = (v, t) => (t === 'integer' ? Number.isInteger(v) : t === 'number' ? typeof v === 'number' : typeOf(v) === t);
    if (schema.type) {
      const types = [].concat(schema.type);
      if (!types.some((ty) => isType(value, ty))) errs.push(`${at}: ${JSON.stringify(value)} is not ${types.join('|')}`);
    }
    if (schema.enum && !schema.enum.some((x) => JSON.stringify(x) === JSON.stringify(value))) errs.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
    if (schema.pattern && typeof value === 'string' && !new RegExp(schema.pattern, 'u').test(value)) errs.push(`${at}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    if (typeof schema.minimum === 'number' && typeof value === 'number' && value < schema.minimum) errs.push(`${at}: ${value} < ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && typeof value === 'number' && value > schema.maximum) errs.push(`${at}: ${value} > ${schema.maximum}`);
    if (schema.oneOf) {
      const n = schema.oneOf.filter((s) => validate(value, s, at, root).length === 0).length;
      if (n !== 1) errs.push(`${at}: matches ${n} of oneOf (needs exactly 1)`);
    }
    if (schema.anyOf && !schema.anyOf.some((s) => validate(value, s, at, root).length === 0)) errs.push(`${at}: matches none of anyOf`);
    if (typeOf(value) === 'object') {
      for (const k of schema.required || []) if (!(k in value)) errs.push(`${at}: missing required ${k}`);
      for (const [k, v] of Object.entries(value)) {
        if (schema.properties && k in schema.properties) {
          errs.push(...validate(v, schema.properties[k], `${at}.${k}`, root));
          continue;
        }
        const pats = Object.entries(schema.patternProperties || {}).filter(([p]) => new RegExp(p, 'u').test(k));
        if (pats.length) {
          for (const [, s] of pats) errs.push(...validate(v, s, `${at}.${k}`, root));
          continue;
        }
        if (schema.additionalProperties !== undefined) errs.push(...validate(v, schema.additionalProperties, `${at}.${k}`, root));
      }
    }
    if (typeOf(value) === 'array' && schema.items) value.forEach((v, i) => errs.push(...validate(v, schema.items, `${at}[${i}]`, root)));
    return errs;
  }

  /** Loads a fixture ecosystem file the way PM2 reads its kind (JSON as a JS expression, YAML, JS). */
  async function loadFixture(name) {
    const f = h.fixture(name);
    if (/\.ya?ml$/.test(name)) return require(path.join(h.ROOT, 'node_modules', 'js-yaml')).load(fs.readFileSync(f, 'utf8'));
    if (/\.json5?$/.test(name)) return vm.runInThisContext(`(${fs.readFileSync(f, 'utf8')})`);
    const m = /\.mjs$/.test(name) ? await import(pathToFileURL(f).href) : require(f);
    if (m && m.default !== undefined && !('apps' in m)) return m.default;
    return m.apps && !Array.isArray(m) ? { ...m } : m;
  }

  const SCHEMA_FIXTURES = fs.readdirSync(FIX).filter((f) => /^eco-.*\.(json5?|ya?ml|config\.(c|m)?js)$/.test(f)).sort();

  test('the shipped JSON Schema validates every eco-* fixture (and every key is a schema property)', async () => {
    assert.ok(SCHEMA_FIXTURES.length >= 15, SCHEMA_FIXTURES.join(' '));
    for (const name of SCHEMA_FIXTURES) {
      const doc = await loadFixture(name);
      const errs = validate(doc, SCHEMA);
      assert.deepEqual(errs, [], `${name} validates against schema/ecosystem.schema.json`);
      const apps = Array.isArray(doc) ? doc : doc.apps ? doc.apps : [doc];
      for (const a of apps) {
        for (const k of Object.keys(a)) {
          assert.ok(k in APP_SCHEMA.properties || /^env_\S+$/.test(k), `${name}: key ${k} is a schema property`);
        }
      }
    }
  });

  test('the schema accepts apps that name their script with PM2\'s aliases exec / cmd / command (eco-aliases.json)', async () => {
    const doc = await loadFixture('eco-aliases.json');
    assert.deepEqual(validate(doc, SCHEMA), []);
    assert.notDeepEqual(validate([{ name: 'no-script-at-all' }], SCHEMA), [], 'an app without any script key is still rejected');
    // camelCase spellings: the key or its snake_case form is a schema property.
    const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    for (const a of doc) {
      for (const k of Object.keys(a).filter((x) => /[A-Z]/.test(x))) {
        assert.ok(k in APP_SCHEMA.properties || snake(k) in APP_SCHEMA.properties, `key ${k} (or ${snake(k)}) is a schema property`);
      }
    }
  });

  test('the schema names every alias PM2 documents (err_file, err_log, out_log, user ...)', () => {
    const ALIASES = ['exec', 'cmd', 'command', 'exec_interpreter', 'interpreter_args', 'error', 'err', 'err_file', 'err_log',
      'out', 'output', 'out_log', 'log', 'combine_logs', 'pid', 'cron', 'user'];
    const missing = ALIASES.filter((a) => !(a in APP_SCHEMA.properties));
    assert.deepEqual(missing, [], 'aliases missing from the schema');
  });

  test('the schema validator rejects what rpm2 rejects (wrong type, enum, missing script)', () => {
    assert.deepEqual(validate({ apps: [{ script: 'a.js', instances: 'max', exec_mode: 'cluster' }] }, SCHEMA), []);
    assert.notDeepEqual(validate({ apps: [{ script: 'a.js', instances: 'lots' }] }, SCHEMA), []);
    assert.notDeepEqual(validate({ apps: [{ script: 'a.js', exec_mode: 'forky' }] }, SCHEMA), []);
    assert.notDeepEqual(validate({ apps: [{ name: 'a' }] }, SCHEMA), []);
    assert.notDeepEqual(validate({ apps: [{ script: 'a.js', max_memory_restart: '1.5G' }] }, SCHEMA), []);
    assert.notDeepEqual(validate({ apps: [{ script: 'a.js', kill_timeout: 'soon' }] }, SCHEMA), []);
  });

  test('the schema names every option of PM2\'s option table that rpm2 knows', () => {
    for (const o of PM2_OPTIONS.filter((x) => !NOT_KNOWN_YET.includes(x))) {
      assert.ok(o in APP_SCHEMA.properties, `schema property ${o}`);
    }
  });

  test('the schema names v8, event_loop_inspector, write and install_url too', () => {
    for (const o of NOT_KNOWN_YET) assert.ok(o in APP_SCHEMA.properties, `schema property ${o}`);
  });
});
