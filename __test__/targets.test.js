// End-to-end tests of PM2's command surface for targets and starts (issue 14, items 1-5): target
// forms of every action, start forms, startOrRestart/startOrReload, configuration updates on restart
// and watch toggles, through the CLI and `require('rpm2')`. Each test has its own RPM2_HOME and
// cleans up every process it started. Run with `node --test __test__/targets.test.js` after
// `npm run build`.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./helpers');

const APP = 'setInterval(() => {}, 1000);\n';

// A home and a scratch directory holding a.js, b.js, c.js (idle apps).
function setup(t) {
  const s = h.useHome(t, 'rpm2-targets-');
  for (const f of ['a.js', 'b.js', 'c.js', 'echo.js']) fs.writeFileSync(path.join(s.dir, f), APP);
  s.run = (args, opts = {}) => h.rpm2(args, { home: s.home, cwd: s.dir, ...opts });
  s.ok = (args, opts = {}) => h.ok(args, { home: s.home, cwd: s.dir, ...opts });
  s.states = async () => Object.fromEntries((await h.jlist(s.home)).map((p) => [p.pm_id, `${p.name}:${p.pm2_env.status}`]));
  s.api = () => new (require('..').custom)({ home: s.home, cwd: s.dir });
  return s;
}

function writeJson(dir, name, v) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof v === 'string' ? v : JSON.stringify(v));
  return f;
}

// ---- targets ----------------------------------------------------------------------------------------

test('target forms: several scripts in one start; /regex/, script file names, several targets', async (t) => {
  const s = setup(t);
  await s.ok(['start', 'a.js', 'b.js', 'c.js']);
  assert.deepEqual(await s.states(), { 0: 'a:online', 1: 'b:online', 2: 'c:online' });
  // A regular expression matches names.
  await s.ok(['stop', '/^[ab]$/']);
  assert.deepEqual(await s.states(), { 0: 'a:stopped', 1: 'b:stopped', 2: 'c:online' });
  // A script file matches the script's path (PM2's pm_exec_path), also under another name.
  await s.ok(['restart', 'a.js']);
  assert.deepEqual(await s.states(), { 0: 'a:online', 1: 'b:stopped', 2: 'c:online' });
  await s.ok(['start', path.join(s.dir, 'echo.js'), '--name', 'renamed']);
  await s.ok(['stop', './echo.js']);
  assert.equal((await h.proc(s.home, 'renamed')).pm2_env.status, 'stopped');
  // Several targets of different forms in one command.
  await s.ok(['stop', 'a', '2', 'b.js']);
  assert.deepEqual(await s.states(), { 0: 'a:stopped', 1: 'b:stopped', 2: 'c:stopped', 3: 'renamed:stopped' });
  // A regex matching nothing, and a JS-only pattern, fail with one clear line.
  let r = await s.run(['restart', '/^zzz/']);
  assert.equal(r.code, 1, h.show(r));
  assert.match(r.stderr, /zzz/);
  r = await s.run(['restart', '/(?<=a)b/']);
  assert.equal(r.code, 1, h.show(r));
  assert.match(r.stderr, /not supported/);
  // describe and sendSignal take the same forms; extra words after sendSignal's target are ignored.
  await s.ok(['restart', '/./']);
  r = await s.ok(['describe', '/^c$/']);
  assert.match(r.stdout, /c\b/);
  await s.ok(['sendSignal', 'SIGUSR2', '0', '0']);
  await s.ok(['delete', 'all']);
});

test('ecosystem file targets act on exactly the apps the file declares', async (t) => {
  const s = setup(t);
  const eco = writeJson(s.dir, 'eco.json', {
    apps: [
      { name: 'e1', script: 'a.js', env: { A: 'base' }, env_production: { A: 'prod' } },
      { name: 'e2', script: 'b.js' },
    ],
  });
  await s.ok(['start', eco]);
  await s.ok(['start', 'c.js', '--name', 'other']);
  await s.ok(['stop', 'eco.json']);
  let states = await s.states();
  assert.deepEqual(Object.values(states).sort(), ['e1:stopped', 'e2:stopped', 'other:online']);
  await s.ok(['restart', 'eco.json', '--env', 'production']);
  const list = await h.jlist(s.home);
  assert.ok(list.filter((p) => p.name.startsWith('e')).every((p) => p.pm2_env.status === 'online'));
  const e1 = (await h.jlistEnv(s.home)).find((p) => p.name === 'e1');
  assert.equal(e1.pm2_env.env.A, 'prod');
  await s.ok(['delete', 'eco.json']);
  states = await s.states();
  assert.deepEqual(Object.values(states), ['other:online']);
});

// ---- start forms -------------------------------------------------------------------------------------

test('start forms: `start -` from stdin, a .json holding a JS expression, smart start, already running needs -f', async (t) => {
  const s = setup(t);
  const piped = spawnSync(h.BIN, ['start', '-'], {
    cwd: s.dir,
    env: h.homeEnv(s.home),
    input: JSON.stringify({ apps: [{ name: 'piped', script: 'a.js', args: '-x 1' }] }),
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(piped.status, 0, piped.stderr);
  const p = await h.proc(s.home, 'piped');
  assert.equal(p.pm2_env.status, 'online');
  assert.deepEqual(p.pm2_env.args, ['-x', '1']);
  // `stop -` acts on the apps of the declaration on stdin.
  const stopped = spawnSync(h.BIN, ['stop', '-'], {
    cwd: s.dir,
    env: h.homeEnv(s.home),
    input: JSON.stringify([{ name: 'piped', script: 'a.js' }]),
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.equal((await h.proc(s.home, 'piped')).pm2_env.status, 'stopped');
  writeJson(s.dir, 'js.json', "{ apps: [{ name: 'j' + 1, script: 'b.js', args: ['p', 'q'] }] }");
  await s.ok(['start', 'js.json']);
  assert.deepEqual((await h.proc(s.home, 'j1')).pm2_env.args, ['p', 'q']);
  // Smart start: a stopped app named like a PATH command is restarted, not replaced by the command.
  await s.ok(['start', 'c.js', '--name', 'echo']);
  await s.ok(['stop', 'echo']);
  await s.ok(['start', 'echo']);
  const echo = await h.proc(s.home, 'echo');
  assert.equal(echo.pm2_env.status, 'online');
  assert.equal(echo.pm2_env.pm_exec_path, path.join(s.dir, 'c.js'));
  // A running script again: refused (needs -f), as PM2.
  const r = await s.run(['start', 'c.js', '--name', 'echo']);
  assert.equal(r.code, 1, h.show(r));
  assert.match(r.stderr, /-f/);
  await s.ok(['start', 'c.js', '--name', 'echo', '-f']);
  assert.equal((await h.jlist(s.home)).filter((x) => x.name === 'echo').length, 2);
  // --args as one string, -- as words.
  await s.ok(['start', 'a.js', '--name', 'argstr', '--args', '-p 80']);
  assert.deepEqual((await h.proc(s.home, 'argstr')).pm2_env.args, ['-p', '80']);
  await s.ok(['start', 'b.js', '--name', 'argw', '--node-args=--no-warnings', '--', 'u', 'v']);
  const w = await h.proc(s.home, 'argw');
  assert.deepEqual(w.pm2_env.args, ['u', 'v']);
  assert.ok(h.cmdline(w.pid).includes('--no-warnings'), h.cmdline(w.pid).join(' '));
});

// ---- startOrRestart / startOrReload ------------------------------------------------------------------

test('startOrRestart / startOrReload / startOrGracefulReload start what is missing and restart the rest', async (t) => {
  const s = setup(t);
  const eco = writeJson(s.dir, 'apps.json', { apps: [{ name: 's1', script: 'a.js' }, { name: 's2', script: 'b.js' }] });
  await s.ok(['startOrRestart', eco, '--only', 's1']);
  assert.deepEqual(Object.values(await s.states()), ['s1:online']);
  await s.ok(['startOrRestart', eco]);
  let list = await h.jlist(s.home);
  assert.deepEqual(list.map((p) => [p.name, p.pm2_env.restart_time]), [['s1', 1], ['s2', 0]]);
  await s.ok(['startOrReload', eco]);
  await s.ok(['startOrGracefulReload', eco]);
  list = await h.jlist(s.home);
  assert.ok(list.every((p) => p.pm2_env.status === 'online'));
  assert.deepEqual(list.map((p) => p.pm2_env.restart_time), [3, 2]);
  // A script: started, then restarted instead of refused.
  await s.ok(['startOrRestart', 'c.js']);
  await s.ok(['startOrRestart', 'c.js']);
  assert.equal((await h.proc(s.home, 'c')).pm2_env.restart_time, 1);
});

// ---- configuration updates -----------------------------------------------------------------------------

test('restart applies start options; --update-env refreshes the env; an unknown --env warns and starts', async (t) => {
  const s = setup(t);
  await s.ok(['start', 'a.js'], { env: { TGT: 'one' } });
  let r = await s.ok(['restart', 'a.js', '--node-args=--no-warnings', '--', 'x', 'y'], { env: { TGT: 'two' } });
  let a = await h.proc(s.home, 'a');
  assert.ok(h.cmdline(a.pid).includes('--no-warnings'), h.cmdline(a.pid).join(' '));
  assert.deepEqual(a.pm2_env.args, ['x', 'y']);
  assert.equal(h.procEnv(a.pid).TGT, 'one', 'no --update-env: the env is kept');
  await s.ok(['restart', 'a', '--update-env'], { env: { TGT: 'three' } });
  a = await h.proc(s.home, 'a');
  assert.equal(h.procEnv(a.pid).TGT, 'three');
  // An --env that no block declares: exit 0, the base env, one warning naming the file and the blocks.
  const eco = writeJson(s.dir, 'env.json', {
    apps: [{ name: 'en', script: 'b.js', env: { MODE: 'base' }, env_production: { MODE: 'prod' } }],
  });
  r = await s.ok(['start', eco, '--env', 'nope']);
  const warn = h.lines(r.stderr).filter((l) => /nope/.test(l));
  assert.equal(warn.length, 1, h.show(r));
  assert.ok(warn[0].includes(eco) && warn[0].includes('production'), warn[0]);
  const en = await h.proc(s.home, 'en');
  assert.equal(h.procEnv(en.pid).MODE, 'base');
  // deploy.<name>.env is an environment too.
  const dep = writeJson(s.dir, 'dep.json', {
    apps: [{ name: 'dp', script: 'c.js' }],
    deploy: { staging: { env: { MODE: 'staging' } } },
  });
  r = await s.ok(['start', dep, '--env', 'staging']);
  assert.ok(!/WARN/.test(r.stderr), h.show(r));
  assert.equal(h.procEnv((await h.proc(s.home, 'dp')).pid).MODE, 'staging');
});

test('append_env_to_name: --env names the app <name>-<env>; the file with --env targets it', async (t) => {
  const s = setup(t);
  writeJson(s.dir, 'ap.json', { apps: [{ name: 'ap', script: 'a.js', append_env_to_name: true, env_production: { M: 'p' } }] });
  await s.ok(['start', 'ap.json', '--env', 'production']);
  await s.ok(['start', 'ap.json']);
  assert.deepEqual(Object.values(await s.states()).sort(), ['ap-production:online', 'ap:online']);
  await s.ok(['stop', 'ap.json', '--env', 'production']);
  assert.deepEqual(Object.values(await s.states()).sort(), ['ap-production:stopped', 'ap:online']);
  await s.ok(['delete', 'ap.json', '--env', 'production']);
  assert.deepEqual(Object.values(await s.states()), ['ap:online']);
});

test('instance_var sets only the named variable; increment_var counts across instances and after scale', async (t) => {
  const s = setup(t);
  const eco = writeJson(s.dir, 'iv.json', {
    apps: [{ name: 'iv', script: 'a.js', instances: 2, exec_mode: 'fork', instance_var: 'APP_ID',
      increment_var: 'PORT', env: { PORT: 4100 } }],
  });
  await s.ok(['start', eco]);
  const list = await h.waitFor(async () => {
    const l = (await h.jlist(s.home)).filter((p) => p.pid);
    return l.length === 2 && l;
  }, { message: 'two instances' });
  const envs = list.map((p) => h.procEnv(p.pid));
  assert.deepEqual(envs.map((e) => e.APP_ID).sort(), ['0', '1']);
  assert.deepEqual(envs.map((e) => e.PORT).sort(), ['4100', '4101']);
  assert.ok(envs.every((e) => e.NODE_APP_INSTANCE === undefined), 'no NODE_APP_INSTANCE with instance_var');
  // After scale, the new instance continues the count.
  await s.ok(['scale', 'iv', '3']);
  const three = await h.waitFor(async () => {
    const l = (await h.jlist(s.home)).filter((p) => p.pid && p.pm2_env.status === 'online');
    return l.length === 3 && l;
  }, { message: 'three instances' });
  assert.deepEqual(three.map((p) => h.procEnv(p.pid).PORT).sort(), ['4100', '4101', '4102']);
  assert.deepEqual(three.map((p) => h.procEnv(p.pid).APP_ID).sort(), ['0', '1', '2']);
});

// ---- watch toggles --------------------------------------------------------------------------------------

test('watch: restart --watch toggles it, stop stops watching and keeps the app listed, start --watch on a known app', async (t) => {
  const s = setup(t);
  const watching = async () => (await h.proc(s.home, 'a')).pm2_env.watch;
  await s.ok(['start', 'a.js']);
  assert.equal(await watching(), false);
  await s.ok(['restart', 'a', '--watch']);
  assert.equal(await watching(), true);
  await s.ok(['restart', 'a', '--watch']);
  assert.equal(await watching(), false);
  await s.ok(['start', 'a', '--watch']);
  assert.equal(await watching(), true);
  await s.ok(['stop', 'a', '--watch']);
  const a = await h.proc(s.home, 'a');
  assert.equal(a.pm2_env.status, 'stopped');
  assert.equal(a.pm2_env.watch, false);
});

// ---- require('rpm2') ---------------------------------------------------------------------------------------

test('API: startOrRestart/startOrGracefulReload, target forms and start options on restart', async (t) => {
  const s = setup(t);
  const api = s.api();
  const eco = writeJson(s.dir, 'api.json', { apps: [{ name: 'x1', script: 'a.js' }, { name: 'x2', script: 'b.js' }] });
  await api.startOrRestart(eco);
  await api.startOrRestart(eco);
  await api.startOrGracefulReload(eco);
  let list = await api.list();
  assert.deepEqual(list.map((p) => [p.name, p.pm2_env.restart_time]), [['x1', 2], ['x2', 2]]);
  const stopped = await api.stop('/^x/');
  assert.deepEqual(stopped.map((p) => p.name), ['x1', 'x2']);
  await api.restart('a.js', { node_args: '--no-warnings' });
  const x1 = (await api.describe('/1$/'))[0];
  assert.equal(x1.pm2_env.status, 'online');
  assert.ok(h.cmdline(x1.pid).includes('--no-warnings'));
  assert.deepEqual(await api.describe('/^nothing/'), []);
  await assert.rejects(api.restart('/^nothing/'), (e) => e.code === 'not_found');
  await api.delete(['x1', 'x2']);
  assert.deepEqual(await api.list(), []);
});
