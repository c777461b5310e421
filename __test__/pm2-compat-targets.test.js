// Differential tests of issue 14's target and start forms: the same steps run under PM2 7
// (node_modules/.bin/pm2, its own PM2_HOME) and under rpm2 (its own RPM2_HOME), each in a scratch
// directory holding the same files; the exit codes and what jlist shows (names, statuses, restart
// counts) and the apps' real environment and argv (from /proc) must agree. Skipped with a message
// when pm2 is not installed. Run with `node --test __test__/pm2-compat-targets.test.js`.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const h = require('./helpers');

const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');
const HAVE_PM2 = fs.existsSync(PM2);
const SKIP = HAVE_PM2 ? false : 'pm2 is not installed (npm install): the differential suite needs it';

const APP = 'setInterval(() => {}, 1000);\n';

// One side of a comparison: a scratch directory with the fixture files and a way to run the tool.
function side(t, kind, files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rpm2-cmp-${kind}-`));
  const home = path.join(dir, 'home');
  fs.writeFileSync(path.join(dir, 'a.js'), APP);
  fs.writeFileSync(path.join(dir, 'b.js'), APP);
  fs.writeFileSync(path.join(dir, 'c.js'), APP);
  for (const [name, v] of Object.entries(files || {})) fs.writeFileSync(path.join(dir, name), JSON.stringify(v));
  const env = kind === 'pm2' ? h.homeEnv(undefined, { PM2_HOME: home, RPM2_HOME: undefined }) : h.homeEnv(home);
  const bin = kind === 'pm2' ? PM2 : h.BIN;
  const run = (args, extra = {}) => new Promise((resolve) => {
    execFile(bin, args, { cwd: dir, env: { ...env, ...extra }, timeout: 20000, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
  });
  const s = {
    kind,
    dir,
    run,
    async jlist() {
      const r = await run(['jlist']);
      const text = r.stdout.slice(r.stdout.indexOf('['));
      return JSON.parse(text.slice(0, text.lastIndexOf(']') + 1));
    },
  };
  t.after(async () => {
    if (kind === 'pm2') await run(['kill']);
    else await h.cleanup(home, { keep: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return s;
}

// Runs `steps` (argv arrays; `['@wait', ms]` pauses) on both sides; returns each side's exit codes and final jlist summary.
async function both(t, steps, files) {
  const out = {};
  for (const kind of ['pm2', 'rpm2']) {
    const s = side(t, kind, files);
    const codes = [];
    for (const step of steps) {
      if (step[0] === '@wait') {
        await h.sleep(step[1]);
        continue;
      }
      const r = await s.run(step);
      codes.push(r.code);
    }
    // Let restarts settle before reading (both tools answer before a restarted app is up).
    await h.sleep(300);
    const list = await s.jlist();
    out[kind] = {
      s,
      codes,
      list,
      summary: list.map((p) => `${p.name}:${p.pm2_env.status}:${p.pm2_env.restart_time}`),
    };
  }
  return out;
}

function same(r, what = '') {
  assert.deepEqual(r.rpm2.codes, r.pm2.codes, `exit codes ${what}`);
  assert.deepEqual(r.rpm2.summary, r.pm2.summary, `jlist name:status:restarts ${what}`);
}

test('several scripts, /regex/, script files, several targets', { skip: SKIP }, async (t) => {
  const r = await both(t, [
    ['start', 'a.js', 'b.js', 'c.js'],
    ['stop', '/^[ab]$/'],
    ['restart', 'a.js'],
    ['sendSignal', 'SIGUSR2', '0', '0'],
    // SIGUSR2 ends a.js (Node's default action): let both tools restart it before it is stopped,
    // or the restart count depends on which came first.
    ['@wait', 1500],
    ['stop', 'a', '2', 'b.js'],
    ['restart', '/^zzz$/'],
  ]);
  same(r);
});

test('ecosystem file targets: stop/restart --env/delete act on the declared apps only', { skip: SKIP }, async (t) => {
  const files = {
    'eco.json': { apps: [{ name: 'e1', script: 'a.js', env: { A: 'base' }, env_production: { A: 'prod' } },
      { name: 'e2', script: 'b.js' }] },
  };
  const r = await both(t, [
    ['start', 'eco.json'],
    ['start', 'c.js', '--name', 'other'],
    ['stop', 'eco.json'],
    ['restart', 'eco.json', '--env', 'production'],
  ], files);
  same(r);
  for (const kind of ['pm2', 'rpm2']) {
    const e1 = r[kind].list.find((p) => p.name === 'e1');
    assert.equal(h.procEnv(e1.pid).A, 'prod', `${kind}: env_production applied`);
  }
  const after = {};
  for (const kind of ['pm2', 'rpm2']) {
    const code = (await r[kind].s.run(['delete', 'eco.json'])).code;
    after[kind] = [code, (await r[kind].s.jlist()).map((p) => p.name)];
  }
  assert.deepEqual(after.rpm2, after.pm2);
});

test('startOrRestart twice, and a running script needs -f', { skip: SKIP }, async (t) => {
  const files = { 'apps.json': { apps: [{ name: 's1', script: 'a.js' }, { name: 's2', script: 'b.js' }] } };
  const r = await both(t, [
    ['startOrRestart', 'apps.json', '--only', 's1'],
    ['startOrRestart', 'apps.json'],
    ['startOrReload', 'apps.json'],
    ['start', 'c.js'],
    ['start', 'c.js'],
    ['start', 'c.js', '-f'],
  ], files);
  same(r);
});

test('an unknown --env starts with the base env (exit 0); instance_var sets only its variable', { skip: SKIP }, async (t) => {
  const files = {
    'env.json': { apps: [{ name: 'en', script: 'a.js', env: { MODE: 'base' }, env_production: { MODE: 'prod' } }] },
    'iv.json': { apps: [{ name: 'iv', script: 'b.js', instances: 2, exec_mode: 'fork', instance_var: 'APP_ID' }] },
  };
  const r = await both(t, [['start', 'env.json', '--env', 'nope'], ['start', 'iv.json']], files);
  same(r);
  for (const kind of ['pm2', 'rpm2']) {
    const en = r[kind].list.find((p) => p.name === 'en');
    assert.equal(h.procEnv(en.pid).MODE, 'base', `${kind}: base env`);
    const ivs = r[kind].list.filter((p) => p.name === 'iv').map((p) => h.procEnv(p.pid));
    assert.deepEqual(ivs.map((e) => e.APP_ID).sort(), ['0', '1'], `${kind}: APP_ID`);
    assert.ok(ivs.every((e) => e.NODE_APP_INSTANCE === undefined), `${kind}: no NODE_APP_INSTANCE`);
  }
});

test('restart applies --node-args', { skip: SKIP }, async (t) => {
  const r = await both(t, [['start', 'a.js'], ['restart', 'a.js', '--node-args=--no-warnings']]);
  same(r);
  for (const kind of ['pm2', 'rpm2']) {
    const a = r[kind].list.find((p) => p.name === 'a');
    assert.deepEqual(a.pm2_env.node_args, ['--no-warnings'], `${kind}: node_args in jlist`);
  }
});
