'use strict';
// End-to-end tests of issue 6: watch (restart on file changes, ignore rules, debounce, toggles, loop
// breaker, polling fallback), max_memory_restart, cron_restart, bad input, and the seed's
// microservices example (Listing 4-7). Real bin/rpm2, real daemon, real apps (fixtures/watch-*), one
// temporary RPM2_HOME per test, cleaned up with helpers.cleanup. No timed assertions: every wait polls
// for a state. Negative checks ("this change did not restart the app") are proven with a positive
// change made afterwards: changes are handled in order, so when the later change's restart is seen,
// an earlier wrongful restart would already show in restart_time.
//   node --test --test-concurrency=2 __test__/watch.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./helpers');
const { ok, daemonLog, freePort } = h;

const APP = h.fixture('watch-app.js');
const HOG = h.fixture('watch-hog.js');
const WRITER = h.fixture('watch-self-writer.js');
const HTTP = h.fixture('watch-http.js');
const MICRO = path.join(h.ROOT, 'examples', 'microservices');

function count(text, needle) {
  return text.split(needle).length - 1;
}

/** Waits until the daemon log says the watching of `name` was set up `n` times in all. */
function waitWatching(home, name, n = 1) {
  return h.waitFor(() => count(daemonLog(home), `[Watch] Start watching ${name} (`) >= n, {
    message: `the watching of ${name} set up (${n})`,
  });
}

function write(file, text = `${Date.now()}\n`) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A home and an app directory (the watched tree) inside the test's temporary directory. */
function setup(t) {
  const env = h.useHome(t, 'rpm2-watch-');
  const dir = path.join(env.dir, 'app');
  fs.mkdirSync(dir, { recursive: true });
  return { ...env, dir };
}

/** Starts APP as `name` with its cwd in `dir`, watched, and waits until it runs and is watched. */
async function startWatched(ctx, name, extra = [], n = 1) {
  await ok(['start', APP, '--name', name, '--cwd', ctx.dir, '--watch', ...extra], { home: ctx.home });
  await h.waitForProc(ctx.home, name, (p) => p.pm2_env.status === 'online' && p.pid > 0);
  await waitWatching(ctx.home, name, n);
}

/** Waits for `name` to have been restarted for a change of `file` (the reason names it). */
function waitRestartFor(home, name, file, opts = {}) {
  return h.waitForProc(home, name, (p) => p.pm2_env.status === 'online' && p.pid > 0 &&
    String(p.pm2_env.restart_reason || '').includes(file), { message: `restart for ${file}`, ...opts });
}

function watchingColumn(stdout, name) {
  const row = h.parseTable(stdout).rows.find((r) => r['App name'] === name);
  return row && row.watching;
}

/** Asserts a failed command: non-zero exit, exactly one line on stderr, mentioning every `needles`. */
function assertOneLineError(r, needles, what) {
  assert.notEqual(r.code, 0, `${what}: should fail\n${h.show(r)}`);
  const errLines = h.lines(r.stderr);
  assert.equal(errLines.length, 1, `${what}: stderr should be exactly one line\n${h.show(r)}`);
  for (const n of needles) {
    assert.ok(errLines[0].includes(n), `${what}: the error should name ${JSON.stringify(n)}\n${h.show(r)}`);
  }
}

describe('watch', () => {
  test('a change under the watched path restarts the app; the reason and the daemon log name the file', async (t) => {
    const ctx = setup(t);
    await startWatched(ctx, 'w');
    const before = await h.proc(ctx.home, 'w');
    assert.equal(before.pm2_env.watch, true);
    assert.equal(watchingColumn((await ok(['ls'], { home: ctx.home })).stdout, 'w'), 'enabled');

    write(path.join(ctx.dir, 'data.txt'));
    const p = await waitRestartFor(ctx.home, 'w', 'data.txt');
    assert.equal(p.pm2_env.restart_time, 1, 'one restart');
    assert.notEqual(p.pid, before.pid, 'a new process');
    assert.match(p.pm2_env.restart_reason, /^watch: data\.txt changed$/);
    assert.match(daemonLog(ctx.home), /Change detected on path data\.txt for app w - restarting/);
    const show = h.parseKeyValues((await ok(['show', 'w'], { home: ctx.home })).stdout);
    assert.match(show['last restart reason'], /data\.txt/);
    assert.equal(show['watch & reload'], '✔');

    // A directory created after the start is a change, and is watched from then on.
    write(path.join(ctx.dir, 'lib', 'deep', 'mod.js'));
    await waitRestartFor(ctx.home, 'w', 'watch: lib changed');
    write(path.join(ctx.dir, 'lib', 'deep', 'again.js'));
    const q = await waitRestartFor(ctx.home, 'w', 'lib/deep/again.js');
    assert.equal(q.pm2_env.restart_time, 3);
  });

  test('ignored changes do not restart: node_modules, dot-files, .git, ignore_watch entries, the app\'s own logs', async (t) => {
    const ctx = setup(t);
    // Directories that are not ignored exist before the start (creating one is a change).
    for (const d of ['sub', 'src']) fs.mkdirSync(path.join(ctx.dir, d));
    // The app's own out log inside the watched tree: its writes must not restart it.
    await startWatched(ctx, 'ig', ['--ignore-watch', '*.tmp', 'cache', 'src/generated', '-o', 'out.log']);
    await h.waitFor(() => fs.existsSync(path.join(ctx.dir, 'out.log')) &&
      fs.readFileSync(path.join(ctx.dir, 'out.log'), 'utf8').includes('watch-app up'), { message: 'the out log' });

    write(path.join(ctx.dir, 'node_modules', 'dep', 'index.js'));
    write(path.join(ctx.dir, '.hidden'));
    write(path.join(ctx.dir, '.git', 'HEAD'));
    write(path.join(ctx.dir, 'sub', '.env'));
    write(path.join(ctx.dir, 'scratch.tmp'));
    write(path.join(ctx.dir, 'cache', 'x.js'));
    write(path.join(ctx.dir, 'src', 'generated', 'y.js'));
    fs.appendFileSync(path.join(ctx.dir, 'out.log'), 'more\n');
    // Then one change that counts: its restart must be the first and only one, and alone in its burst.
    write(path.join(ctx.dir, 'src', 'real.js'));
    const p = await waitRestartFor(ctx.home, 'ig', 'real.js');
    assert.equal(p.pm2_env.restart_time, 1, `only the real change restarted the app: ${p.pm2_env.restart_reason}`);
    assert.equal(p.pm2_env.restart_reason, 'watch: src/real.js changed');
  });

  test('200 files changed at once give exactly one restart', async (t) => {
    const ctx = setup(t);
    await startWatched(ctx, 'burst');
    const files = [];
    for (let i = 0; i < 200; i++) files.push(path.join(ctx.dir, 'gen', `f${i}.js`));
    fs.mkdirSync(path.join(ctx.dir, 'gen'));
    await waitRestartFor(ctx.home, 'burst', 'gen'); // the new directory itself is a change
    execFileSync('touch', files); // one process, 200 files
    const p = await waitRestartFor(ctx.home, 'burst', '(and 199 more)');
    assert.equal(p.pm2_env.restart_time, 2, 'one restart for the directory, one for the 200 files');
    write(path.join(ctx.dir, 'sentinel.txt'));
    const q = await waitRestartFor(ctx.home, 'burst', 'sentinel.txt');
    assert.equal(q.pm2_env.restart_time, 3, 'no restart in between: the burst gave exactly one');
  });

  test('watch paths, relative ignore paths and watch_delay from an ecosystem file', async (t) => {
    const ctx = setup(t);
    write(path.join(ctx.dir, 'config.json'), '{}');
    fs.mkdirSync(path.join(ctx.dir, 'src'));
    const eco = path.join(ctx.dir, 'eco.json');
    fs.writeFileSync(eco, JSON.stringify([{
      name: 'paths', script: APP, cwd: ctx.dir, watch: ['src', 'config.json'], ignore_watch: ['src/gen'],
      watch_delay: 300,
    }]));
    await ok(['start', eco], { home: ctx.home });
    await waitWatching(ctx.home, 'paths');
    const p0 = await h.proc(ctx.home, 'paths');
    assert.equal(p0.pm2_env.watch_delay, 300);
    write(path.join(ctx.dir, 'other.txt')); // not under a watched path
    write(path.join(ctx.dir, 'src', 'gen', 'x.js')); // ignored
    write(path.join(ctx.dir, 'config.json'), '{"a":1}'); // a watched file
    const p = await waitRestartFor(ctx.home, 'paths', 'config.json');
    assert.equal(p.pm2_env.restart_time, 1, p.pm2_env.restart_reason);
    write(path.join(ctx.dir, 'src', 'a.js'));
    const q = await waitRestartFor(ctx.home, 'paths', 'src/a.js');
    assert.equal(q.pm2_env.restart_time, 2);
  });

  test('stop turns watching off, restart --watch toggles it, start --watch on a stopped app turns it on', async (t) => {
    const ctx = setup(t);
    await startWatched(ctx, 'tog');
    await startWatched(ctx, 'sentinel');

    const stop = await ok(['stop', 'tog'], { home: ctx.home });
    assert.equal(watchingColumn(stop.stdout, 'tog'), 'disabled');
    let p = await h.proc(ctx.home, 'tog');
    assert.equal(p.pm2_env.watch, false);
    assert.equal(p.pm2_env.status, 'stopped');
    await h.waitFor(() => daemonLog(ctx.home).includes('[Watch] Stop watching tog'), { message: 'watching stopped' });
    // The sentinel watches the same tree: its restarts prove the changes were seen.
    write(path.join(ctx.dir, 'a.txt'));
    await waitRestartFor(ctx.home, 'sentinel', 'a.txt');
    write(path.join(ctx.dir, 'b.txt'));
    await waitRestartFor(ctx.home, 'sentinel', 'b.txt');
    p = await h.proc(ctx.home, 'tog');
    assert.equal(p.pm2_env.status, 'stopped', 'a stopped app is not started by file changes');
    assert.equal(p.pm2_env.restart_time, 0);

    // restart --watch: on (and the app runs again).
    const on = await ok(['restart', 'tog', '--watch'], { home: ctx.home });
    assert.equal(watchingColumn(on.stdout, 'tog'), 'enabled');
    await waitWatching(ctx.home, 'tog', 2);
    write(path.join(ctx.dir, 'c.txt'));
    p = await waitRestartFor(ctx.home, 'tog', 'c.txt');
    assert.equal(p.pm2_env.watch, true);

    // restart --watch again: off.
    const off = await ok(['restart', 'tog', '--watch'], { home: ctx.home });
    assert.equal(watchingColumn(off.stdout, 'tog'), 'disabled');
    assert.equal((await h.proc(ctx.home, 'tog')).pm2_env.watch, false);

    // start <script> --watch on the existing, stopped app: on again.
    await ok(['stop', 'tog', '--watch'], { home: ctx.home });
    await ok(['start', APP, '--name', 'tog', '--cwd', ctx.dir, '--watch'], { home: ctx.home });
    p = await h.waitForProc(ctx.home, 'tog', (x) => x.pm2_env.status === 'online');
    assert.equal(p.pm2_env.watch, true);
    // And `start <name> --watch` too.
    await ok(['stop', 'tog'], { home: ctx.home });
    assert.equal((await h.proc(ctx.home, 'tog')).pm2_env.watch, false);
    await ok(['start', 'tog', '--watch'], { home: ctx.home });
    p = await h.waitForProc(ctx.home, 'tog', (x) => x.pm2_env.status === 'online');
    assert.equal(p.pm2_env.watch, true);
  });

  test('a cluster app is reloaded instance by instance on a change', async (t) => {
    const ctx = setup(t);
    const port = await freePort();
    await ok(['start', HTTP, '--name', 'cw', '--cwd', ctx.dir, '-i', '2', '--watch'], { home: ctx.home, env: { PORT: port } });
    await h.waitFor(async () => (await h.jlist(ctx.home)).filter((p) => p.pm2_env.status === 'online').length === 2,
      { message: 'two online workers' });
    await waitWatching(ctx.home, 'cw');
    // Serving (so the daemon holds the listener and a reload is the way to replace them).
    await h.waitFor(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false), { message: 'serving' });
    write(path.join(ctx.dir, 'change.js'));
    await h.waitFor(async () => {
      const l = await h.jlist(ctx.home);
      return l.length === 2 && l.every((p) => p.pm2_env.status === 'online' && p.pm2_env.restart_time === 1 &&
        String(p.pm2_env.restart_reason).includes('change.js'));
    }, { message: 'both workers replaced for change.js' });
    assert.equal(count(daemonLog(ctx.home), 'reloading (watch: change.js changed)'), 2);
  });

  test('the loop breaker pauses an app that rewrites its own watched files, and a restart resumes it', async (t) => {
    const ctx = setup(t);
    await ok(['start', WRITER, '--name', 'loop', '--cwd', ctx.dir, '--watch'], { home: ctx.home });
    await waitWatching(ctx.home, 'loop');
    write(path.join(ctx.dir, 'kick.txt')); // in case the first write came before the watch was set up
    const p = await h.waitForProc(ctx.home, 'loop', (x) => typeof x.pm2_env.watch_paused === 'string',
      { timeout: 90000, interval: 250, message: 'watching paused' });
    assert.equal(p.pm2_env.restart_time, 10, 'paused after 10 restarts');
    assert.match(p.pm2_env.watch_paused, /restarted 10 times .* watching paused/);
    assert.match(p.pm2_env.watch_paused, /written-by-app\.txt/);
    assert.match(daemonLog(ctx.home), /\[Watch\] App \[loop\] restarted 10 times .*watching paused/);
    const running = await h.waitForProc(ctx.home, 'loop', (x) => x.pm2_env.status === 'online' && x.pid > 0);
    assert.ok(h.isAlive(running.pid), 'the app is left running');
    assert.equal(running.pm2_env.watch, true, 'watch stays on (paused, not disabled)');
    const ls = await ok(['ls'], { home: ctx.home });
    assert.equal(watchingColumn(ls.stdout, 'loop'), 'paused');
    const show = h.parseKeyValues((await ok(['show', 'loop'], { home: ctx.home })).stdout);
    assert.match(show['watch paused'], /watching paused/);

    await ok(['restart', 'loop'], { home: ctx.home });
    await h.waitFor(async () => {
      const x = await h.proc(ctx.home, 'loop');
      return x.pm2_env.watch_paused === undefined || daemonLog(ctx.home).includes('[Watch] watching of app [loop] resumed');
    }, { message: 'watching resumed' });
    assert.match(daemonLog(ctx.home), /watching of app \[loop\] resumed/);
  });

  test('without native events the watcher polls, says so, and still restarts', async (t) => {
    const ctx = setup(t);
    // RPM2_WATCH_POLL reaches the daemon through the environment of the CLI that spawns it.
    await ok(['start', APP, '--name', 'poll', '--cwd', ctx.dir, '--watch'], { home: ctx.home, env: { RPM2_WATCH_POLL: '1' } });
    await waitWatching(ctx.home, 'poll');
    assert.match(daemonLog(ctx.home), /Start watching poll \(.*polled/);
    write(path.join(ctx.dir, 'polled.txt'), 'some content');
    await waitRestartFor(ctx.home, 'poll', 'polled.txt');
  });

  test('a quiet tree of 50k files costs the daemon no CPU', async (t) => {
    const ctx = setup(t);
    for (let d = 0; d < 500; d++) {
      const sub = path.join(ctx.dir, `d${d}`);
      fs.mkdirSync(sub);
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(sub, `f${f}.js`), '');
    }
    await startWatched(ctx, 'big');
    assert.match(daemonLog(ctx.home), /Start watching big \(.*; 501 directories/);
    const pid = h.daemonPid(ctx.home);
    const ticks = () => {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    };
    await h.sleep(6000); // past the window in which the list's last reader keeps the sampler busy
    const before = ticks();
    await h.sleep(3000); // no client talks to the daemon meanwhile
    const used = ticks() - before;
    assert.ok(used <= 5, `the idle daemon used ${used} ticks of CPU in 3 s over a 50k-file watched tree`);
    write(path.join(ctx.dir, 'd250', 'f50.js'), 'changed');
    await waitRestartFor(ctx.home, 'big', 'd250/f50.js');
  });
});

describe('max_memory_restart', () => {
  test('an app over the limit is restarted, with the measured and allowed values recorded', async (t) => {
    const ctx = setup(t);
    await ok(['start', HOG, '--name', 'hog', '--max-memory-restart', '50M'], { home: ctx.home });
    const p = await h.waitForProc(ctx.home, 'hog', (x) => x.pm2_env.restart_time >= 1 &&
      String(x.pm2_env.restart_reason).includes('max_memory_restart'), { timeout: 60000, message: 'memory restart' });
    assert.equal(p.pm2_env.max_memory_restart, 52428800);
    assert.match(p.pm2_env.restart_reason, /using [\d.]+mb \(\d+ bytes\), over the limit of 50\.0mb \(52428800 bytes\)/);
    const used = Number(/\((\d+) bytes\), over/.exec(p.pm2_env.restart_reason)[1]);
    assert.ok(used > 52428800, `measured ${used} bytes`);
    assert.match(daemonLog(ctx.home),
      /App \[hog:0\] restarted because it exceeds --max-memory-restart value \(current_memory=\d+ max_memory_limit=52428800 \[octets\]\)/);
    const show = h.parseKeyValues((await ok(['show', 'hog'], { home: ctx.home })).stdout);
    assert.match(show['last restart reason'], /max_memory_restart/);
  });

  test('an app under the limit is left alone', async (t) => {
    const ctx = setup(t);
    await ok(['start', HOG, '--name', 'small', '--max-memory-restart', '1G'], { home: ctx.home, env: { HOG_MB: '10' } });
    await ok(['start', HOG, '--name', 'big', '--max-memory-restart', '50M'], { home: ctx.home });
    // Both are checked on the same samples: once the big one was restarted twice, the small one
    // went through at least as many checks.
    await h.waitForProc(ctx.home, 'big', (x) => x.pm2_env.restart_time >= 2, { timeout: 60000 });
    const small = await h.proc(ctx.home, 'small');
    assert.equal(small.pm2_env.restart_time, 0);
    assert.equal(small.pm2_env.status, 'online');
  });
});

describe('cron_restart', () => {
  test('restarts on schedule, and starts a stopped app', async (t) => {
    const ctx = setup(t);
    await ok(['start', APP, '--name', 'cron', '--cron-restart', '*/2 * * * * *'], { home: ctx.home });
    const p = await h.waitForProc(ctx.home, 'cron', (x) => x.pm2_env.restart_time >= 2 && x.pm2_env.status === 'online',
      { timeout: 30000, message: 'two cron restarts' });
    assert.match(p.pm2_env.restart_reason, /^cron_restart "\*\/2 \* \* \* \* \*"/);
    assert.equal(p.pm2_env.cron_restart, '*/2 * * * * *');
    assert.match(daemonLog(ctx.home), /\[Cron\] app \[cron\] restarts on "\*\/2 \* \* \* \* \*"/);

    const stop = await ok(['stop', 'cron'], { home: ctx.home });
    const row = h.parseTable(stop.stdout).rows.find((r) => r['App name'] === 'cron');
    assert.equal(row.status, 'stopped');
    const q = await h.waitForProc(ctx.home, 'cron', (x) => x.pm2_env.status === 'online' && x.pid > 0,
      { timeout: 30000, message: 'started again by its cron' });
    assert.match(q.pm2_env.restart_reason, /^cron_restart/);

    // Deleting the app removes its schedule.
    await ok(['delete', 'cron'], { home: ctx.home });
    await h.waitFor(() => daemonLog(ctx.home).includes('[Cron] cron_restart of app [cron] removed'));
  });
});

describe('bad input', () => {
  test('a missing watch path, a malformed size, cron, glob or delay: one-line error naming app, field and value; nothing started', async (t) => {
    const ctx = setup(t);
    const cases = [
      [['--watch', 'no-such-dir'], ['watch', 'no-such-dir']],
      [['--max-memory-restart', '60X'], ['max_memory_restart', '60X']],
      [['--max-memory-restart', '1.5G'], ['max_memory_restart', '1.5G']],
      [['--cron-restart', '61 * * * *'], ['cron_restart', '61 * * * *']],
      [['--cron-restart', '* * *'], ['cron_restart', '* * *', '3 fields']],
      [['--watch', '--ignore-watch', 'src/[oops'], ['ignore_watch', 'src/[oops']],
      [['--watch', '--watch-delay', 'soon'], ['watch_delay', 'soon']],
    ];
    for (const [flags, needles] of cases) {
      const r = await h.rpm2(['start', APP, '--name', 'bad-app', '--cwd', ctx.dir, ...flags], { home: ctx.home });
      assertOneLineError(r, ['bad-app', ...needles], `start ${flags.join(' ')}`);
    }
    // An ecosystem file whose second app is bad starts neither.
    const eco = path.join(ctx.dir, 'two.json');
    fs.writeFileSync(eco, JSON.stringify([
      { name: 'good-one', script: APP, cwd: ctx.dir },
      { name: 'bad-two', script: APP, cwd: ctx.dir, cron_restart: '0 0 31 2 *' },
    ]));
    const r = await h.rpm2(['start', eco], { home: ctx.home });
    assertOneLineError(r, ['bad-two', 'cron_restart', '0 0 31 2 *'], 'ecosystem with a bad cron');
    assert.deepEqual(await h.jlist(ctx.home), [], 'nothing was started');
  });
});

describe('the seed\'s microservices example (Listing 4-7)', () => {
  test('main prints temperatures from weather-api; both apps are watched and memory-limited', async (t) => {
    const ctx = h.useHome(t, 'rpm2-watch-micro-');
    // A copy named "microservices", so the file's cwd "../microservices" resolves to it from inside.
    const root = path.join(ctx.dir, 'microservices');
    fs.cpSync(MICRO, root, { recursive: true });
    const port = await freePort();
    const file = path.join(root, 'pm2', 'development.json');
    const apps = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(apps.map((a) => a.name), ['main', 'weather-api']);
    apps[0].env.WEATHER_API_URL = `http://127.0.0.1:${port}`;
    apps[1].env.PORT = port;
    apps[1].env.HOST = '127.0.0.1';
    fs.writeFileSync(file, JSON.stringify(apps, null, 2));

    await ok(['start', 'pm2/development.json'], { home: ctx.home, cwd: root });
    const list = await h.waitFor(async () => {
      const l = await h.jlist(ctx.home);
      return l.length === 2 && l.every((p) => p.pm2_env.status === 'online') ? l : undefined;
    }, { message: 'both apps online' });
    for (const p of list) {
      assert.equal(p.pm2_env.pm_cwd, root);
      assert.equal(p.pm2_env.watch, true, `${p.name} is watched`);
      assert.equal(p.pm2_env.max_memory_restart, 62914560, `${p.name}: 60M`);
    }
    const main = list.find((p) => p.name === 'main');
    await h.waitFor(() => /The temperature is: \d+/.test(fs.readFileSync(main.pm2_env.pm_out_log_path, 'utf8')),
      { timeout: 20000, message: 'a temperature in main\'s log' });
    await waitWatching(ctx.home, 'main');
    await waitWatching(ctx.home, 'weather-api');

    // A change in the project restarts both apps (each watches the whole project).
    fs.appendFileSync(path.join(root, 'weather', 'index.js'), '\n');
    for (const name of ['main', 'weather-api']) await waitRestartFor(ctx.home, name, 'weather/index.js');
  });
});
