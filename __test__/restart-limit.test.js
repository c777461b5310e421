'use strict';
// The restart limit, side by side with PM2 7 (node_modules/.bin/pm2, its own PM2_HOME, `pm2 kill` at
// the end). PM2 counts an exit as unstable only when the process ran less than min_uptime AND the app
// was (re)started less than min_uptime x max_restarts ago; max_restarts unstable exits make it
// `errored`. So `--max-restarts 1` stops an app that crashes at once, but not one that crashes after
// min_uptime (1 s by default), which restarts for ever, in PM2 as in rpm2: that is how a crashing app
// once got 44 restarts under `--max-restarts 1`. Restart counts are compared with a tolerance (they
// depend on how fast Node starts). Skipped when pm2 is not installed.
// Run: node --test __test__/restart-limit.test.js

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const h = require('./helpers');

const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');
const SKIP = fs.existsSync(PM2) ? false : 'pm2 is not installed (node_modules/.bin/pm2)';
const EXIT = h.fixture('cli-exit.js'); // exits with code argv[2] after argv[3] ms
/** How long the apps run before the lists are compared. */
const RUN_MS = 9000;

/** PM2 or rpm2 in a home of its own (and a folder, `dir`): run(args) -> {code, out}; jlist(). */
function manager(kind, t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rl-${kind}-`));
  const home = path.join(dir, 'home');
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.RPM2_HOME;
  delete env.PM2_HOME;
  env[kind === 'pm2' ? 'PM2_HOME' : 'RPM2_HOME'] = home;
  const bin = kind === 'pm2' ? PM2 : h.BIN;
  const run = (args, timeout = 30000) => new Promise((resolve) => {
    execFile(bin, args, { cwd: dir, env, timeout, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: `${stdout}${stderr}` }));
  });
  const jlist = async () => {
    const r = await run(['jlist']);
    return JSON.parse(r.out.slice(r.out.indexOf('['), r.out.lastIndexOf(']') + 1));
  };
  t.after(async () => {
    await run(['kill'], 20000);
    if (kind === 'rpm2') await h.cleanup(home);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { kind, dir, run, jlist };
}

// The apps, as an ecosystem file (PM2's CLI has no --min-uptime); min_uptime is 1000 ms by default.
const APPS = [
  // Crashes at once: the first exit is unstable, and one is the limit.
  { name: 'now', max_restarts: 1, args: ['1', '0'] },
  // Crashes after 1.5 s, longer than min_uptime: never unstable, so never errored.
  { name: 'late', max_restarts: 1, args: ['1', '1500'] },
  // Crashes at once, 3 allowed within 3 x 3 s: errored after 2 restarts.
  { name: 'three', max_restarts: 3, min_uptime: 3000, args: ['1', '0'] },
].map((a) => ({ script: EXIT, ...a }));

async function runAll(m) {
  const file = path.join(m.dir, 'limits.json');
  fs.writeFileSync(file, JSON.stringify({ apps: APPS }));
  const r = await m.run(['start', file]);
  assert.equal(r.code, 0, `${m.kind} start: ${r.out}`);
  await h.sleep(RUN_MS);
  const seen = {};
  for (const p of await m.jlist()) seen[p.name] = { status: p.pm2_env.status, restarts: p.pm2_env.restart_time };
  return seen;
}

test('max_restarts counts only unstable restarts, as PM2 7 does', { skip: SKIP, timeout: 120000 }, async (t) => {
  const [pm2, rpm2] = await Promise.all([runAll(manager('pm2', t)), runAll(manager('rpm2', t))]);
  const shown = `pm2 ${JSON.stringify(pm2)}; rpm2 ${JSON.stringify(rpm2)}`;
  t.diagnostic(shown);
  for (const seen of [pm2, rpm2]) {
    assert.deepEqual(seen.now, { status: 'errored', restarts: 0 }, shown);
    assert.deepEqual(seen.three, { status: 'errored', restarts: 2 }, shown);
    // Still restarting: about one restart per 1.5 s plus Node's start-up.
    assert.notEqual(seen.late.status, 'errored', shown);
    assert.ok(seen.late.restarts >= 2, shown);
  }
  // The same pace: within 2 restarts (or a third) of each other.
  const diff = Math.abs(pm2.late.restarts - rpm2.late.restarts);
  assert.ok(diff <= Math.max(2, Math.ceil(pm2.late.restarts / 3)), shown);
});
