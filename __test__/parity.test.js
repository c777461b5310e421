// Parity of the CLI and the JS API: both run the core's one start/operate flow, so the same request
// through `bin/rpm2` and through `require('..')` (each against its own temporary home) must leave
// the same process list and fail with the same message. Run with `node --test
// __test__/parity.test.js` after `npm run build`.
//
// The CLI prints the core's message after `[rpm2][ERROR]`; the JS API's Error has the same message,
// or, where PM2's API words an error differently ("process or namespace not found: x"), PM2's words
// as `message` and the core's as `detail`.
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');
const rpm2 = require('..');

const IDLE = h.fixture('cli-idle.js');

// Two apps in namespace `ns`, one with an env_production block.
const ECO = `module.exports = {
  apps: [
    { name: 'par-a', script: ${JSON.stringify(IDLE)}, namespace: 'ns', env: { PAR: 'dev' },
      env_production: { PAR: 'prod' } },
    { name: 'par-b', script: ${JSON.stringify(IDLE)}, namespace: 'ns' },
  ],
};
`;

/** What a request did, the same way for both sides: its error line (null when it succeeded). */
const cli = {
  async run(env, args) {
    const r = await h.rpm2(args, { home: env.home, cwd: env.dir });
    const err = h.lines(r.stderr).filter((l) => !/Spawned the rpm2 daemon/.test(l) && /\[rpm2\]\[ERROR\] /.test(l));
    if (r.code === 0) {
      assert.deepEqual(err, [], h.show(r));
      return null;
    }
    assert.equal(err.length, 1, `one error line\n${h.show(r)}`);
    return err[0].replace(/^.*\[rpm2\]\[ERROR\] /, '');
  },
  start: (env, script, o = {}) => cli.run(env, ['start', script, ...flags(o)]),
  op: (env, method, target) => cli.run(env, [method, String(target)]),
};

function flags(o) {
  const out = [];
  for (const [k, v] of Object.entries(o)) out.push(`--${k}`, String(v));
  return out;
}

const api = {
  async run(env, call) {
    env.api = env.api || new rpm2.custom({ home: env.home, cwd: env.dir });
    try {
      await call(env.api);
      return null;
    } catch (e) {
      assert.ok(e instanceof Error, String(e));
      return e.detail || e.message;
    }
  },
  start: (env, script, o = {}) => api.run(env, (a) => a.start(script, o)),
  op: (env, method, target) => api.run(env, (a) => a[method](target)),
};

/** The process list of a home once no process is between states: [{name, pm_id, namespace, status, restarts, PAR}]. */
function settled(home) {
  return h.waitFor(async () => {
    const r = await h.rpm2(['jlist', '--env'], { home });
    if (r.code !== 0) throw new Error(h.show(r));
    const list = JSON.parse(r.stdout).map((p) => ({
      name: p.name,
      pm_id: p.pm_id,
      namespace: p.pm2_env.namespace,
      status: p.pm2_env.status,
      restarts: p.pm2_env.restart_time,
      PAR: (p.pm2_env.env || {}).PAR,
    }));
    return list.every((p) => ['online', 'stopped', 'errored'].includes(p.status)) ? list : undefined;
  }, { message: `a settled list in ${home}` });
}

/**
 * Runs `steps(side, env)` through the CLI and through the API, each on a fresh home (with the
 * ecosystem file in its folder), and asserts the same errors and the same list after it.
 */
async function parity(t, steps) {
  const results = {};
  for (const [name, side] of [['cli', cli], ['api', api]]) {
    const env = h.useHome(t, `rpm2-parity-${name}-`);
    t.after(() => env.api && env.api.disconnect());
    fs.writeFileSync(path.join(env.dir, 'par.config.js'), ECO);
    fs.writeFileSync(path.join(env.dir, 'bad.config.js'), 'module.exports = { apps: [ { name: "x", } \n');
    env.eco = path.join(env.dir, 'par.config.js');
    env.bad = path.join(env.dir, 'bad.config.js');
    const errors = await steps(side, env);
    // Paths differ between the two homes: compare messages with the folder replaced.
    const norm = (e) => (e === null ? null : e.split(env.dir).join('<dir>'));
    const running = fs.existsSync(path.join(env.home, 'rpc.sock'));
    results[name] = { errors: errors.map(norm), list: running ? await settled(env.home) : [] };
  }
  assert.deepEqual(results.api.errors, results.cli.errors, 'the same errors');
  assert.deepEqual(results.api.list, results.cli.list, 'the same process list');
  return results.cli;
}

describe('the CLI and the JS API run the same start/operate flow', () => {
  test('start a script', async (t) => {
    const r = await parity(t, async (s, env) => [await s.start(env, IDLE, { name: 'par-s', namespace: 'one' })]);
    assert.deepEqual(r.list.map((p) => [p.name, p.namespace, p.status]), [['par-s', 'one', 'online']]);
  });

  test('start an ecosystem file with --only', async (t) => {
    const r = await parity(t, async (s, env) => [await s.start(env, env.eco, { only: 'par-b' })]);
    assert.deepEqual(r.list.map((p) => p.name), ['par-b']);
  });

  test('start an ecosystem file with --env production', async (t) => {
    const r = await parity(t, async (s, env) => [await s.start(env, env.eco, { env: 'production' })]);
    assert.deepEqual(r.list.map((p) => [p.name, p.PAR]), [['par-a', 'prod'], ['par-b', undefined]]);
  });

  const TARGETS = { 'by name': 'par-a', 'by id': 1, all: 'all', 'by namespace': 'ns' };
  for (const method of ['stop', 'restart', 'delete']) {
    for (const [what, target] of Object.entries(TARGETS)) {
      test(`${method} ${what}`, async (t) => {
        const r = await parity(t, async (s, env) => [await s.start(env, env.eco), await s.op(env, method, target)]);
        assert.deepEqual(r.errors, [null, null]);
        if (method === 'delete') assert.ok(r.list.length < 2, JSON.stringify(r.list));
        if (method === 'stop') assert.ok(r.list.some((p) => p.status === 'stopped'), JSON.stringify(r.list));
        if (method === 'restart') assert.ok(r.list.some((p) => p.restarts === 1), JSON.stringify(r.list));
      });
    }
  }

  test('an unknown app name', async (t) => {
    const r = await parity(t, async (s, env) => [
      await s.start(env, IDLE, { name: 'known' }),
      await s.op(env, 'stop', 'ghost'),
      await s.op(env, 'restart', 'ghost'),
      await s.op(env, 'delete', 'ghost'),
    ]);
    assert.equal(r.errors[0], null);
    for (const e of r.errors.slice(1)) assert.match(e, /ghost/);
    assert.deepEqual(r.list.map((p) => [p.name, p.status, p.restarts]), [['known', 'online', 0]]);
  });

  test('a missing script', async (t) => {
    const r = await parity(t, async (s, env) => [await s.start(env, path.join(env.dir, 'nope.js'))]);
    assert.match(r.errors[0], /script not found: <dir>\/nope\.js/);
    assert.deepEqual(r.list, []);
  });

  test('a malformed ecosystem file', async (t) => {
    const r = await parity(t, async (s, env) => [await s.start(env, env.bad)]);
    assert.match(r.errors[0], /<dir>\/bad\.config\.js/);
    assert.deepEqual(r.list, []);
  });

  test('--only that matches nothing fails; an --env that matches nothing starts with the base env', async (t) => {
    const r = await parity(t, async (s, env) => [
      await s.start(env, env.eco, { only: 'nope' }),
      await s.start(env, env.eco, { env: 'staging' }),
    ]);
    assert.match(r.errors[0], /--only nope: no app of that name in <dir>\/par\.config\.js/);
    // PM2 starts the apps with their base env; rpm2 also warns (issue 20), which does not fail.
    assert.equal(r.errors[1], null);
    assert.deepEqual(r.list.map((p) => [p.name, p.PAR]), [['par-a', 'dev'], ['par-b', undefined]]);
  });
});
