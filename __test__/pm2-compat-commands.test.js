'use strict';
// Differential tests of issue 14's command surface: the same steps under PM2 7
// (node_modules/.bin/pm2, its own PM2_HOME, `pm2 kill` at the end) and under rpm2 (its own
// RPM2_HOME); exit codes and the key words a script would grep must agree. Skipped, with a message,
// when pm2 is not installed. Run: node --test __test__/pm2-compat-commands.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const h = require('./helpers');

const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');
const HAVE_PM2 = fs.existsSync(PM2);
const APP = h.fixture('cmd-actions.js');
const SKIP = HAVE_PM2 ? false : 'pm2 is not installed (node_modules/.bin/pm2): differential cases skipped';

/** A process manager under test: `run(args)` → {code, stdout, stderr} (colours stripped). */
function manager(kind, t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cmp-${kind}-`));
  const home = path.join(dir, 'home');
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete env.RPM2_HOME;
  delete env.PM2_HOME;
  if (kind === 'pm2') env.PM2_HOME = home;
  else env.RPM2_HOME = home;
  const bin = kind === 'pm2' ? PM2 : h.BIN;
  const run = (args, timeout = 30000) => new Promise((resolve) => {
    execFile(bin, args, { cwd: dir, env, timeout, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({
        code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
        stdout: h.stripAnsi(String(stdout)),
        stderr: h.stripAnsi(String(stderr)),
      }));
  });
  const jlist = async () => {
    const r = await run(['jlist']);
    const text = r.stdout.slice(r.stdout.indexOf('['));
    return JSON.parse(text);
  };
  t.after(async () => {
    await run(['kill'], 20000);
    if (kind === 'rpm2') await h.cleanup(home);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { kind, home, dir, run, jlist };
}

/** Both managers, for one test. */
function both(t) {
  return [manager('pm2', t), manager('rpm2', t)];
}

/** The actions the app declared itself (PM2 also lists @pm2/io's internal `km:*` ones: rpm2 does not
 * inject @pm2/io, see README). */
function own(p) {
  return (p.pm2_env.axm_actions || []).map((a) => a.action_name).filter((n) => !n.startsWith('km:'));
}

async function startApp(m, name, extra = []) {
  const r = await m.run(['start', APP, '--name', name, ...extra]);
  assert.equal(r.code, 0, `${m.kind} start: ${r.stdout}${r.stderr}`);
  await h.waitFor(async () => {
    const l = (await m.jlist()).filter((p) => p.name === name);
    return l.length > 0 && l.every((p) => p.pm2_env.status === 'online' && own(p).length === 2);
  }, { message: `${m.kind}: ${name} online with its actions` });
}

async function outLog(m, name) {
  const files = [...new Set((await m.jlist()).filter((p) => p.name === name).map((p) => p.pm2_env.pm_out_log_path))];
  return files.map((f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '')).join('');
}

function waitOut(m, name, re) {
  return h.waitFor(async () => re.test(await outLog(m, name)), { timeout: 15000, message: `${m.kind}: ${re}` });
}

describe('pm2 7 and rpm2 side by side: commands', { skip: SKIP }, () => {
  test('sendSignal with extra words reaches every instance; send writes to stdin', async (t) => {
    for (const m of both(t)) {
      await startApp(m, 'sig', ['-i', '2', '-x']);
      const r = await m.run(['sendSignal', 'SIGUSR2', 'sig', '0', '0']);
      assert.equal(r.code, 0, `${m.kind}: ${r.stdout}${r.stderr}`);
      await waitOut(m, 'sig', /USR2 0[\s\S]*USR2 1|USR2 1[\s\S]*USR2 0/);
      const s = await m.run(['send', '0', 'line one']);
      assert.equal(s.code, 0, `${m.kind}: ${s.stdout}${s.stderr}`);
      await waitOut(m, 'sig', /STDIN:line one/);
    }
  });

  test('trigger: the same replies and exit codes; jlist lists axm_actions', async (t) => {
    const seen = {};
    for (const m of both(t)) {
      await startApp(m, 'act');
      const l = await m.jlist();
      seen[m.kind] = own(l[0]);
      const r = await m.run(['trigger', 'act', 'hello']);
      assert.equal(r.code, 0, `${m.kind}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 processes have received command hello/, m.kind);
      assert.match(r.stdout, /\[act:0:default\]=\{"hi":"0"\}/, m.kind);
      const e = await m.run(['trigger', 'act', 'echo', 'xyz']);
      assert.match(e.stdout, /\[act:0:default\]=\{"got":"xyz"\}/, m.kind);
      const bad = await m.run(['trigger', 'act', 'nope']);
      assert.equal(bad.code, 1, `${m.kind}: ${bad.stdout}${bad.stderr}`);
      assert.match(bad.stdout + bad.stderr, /Not any process has received a command/, m.kind);
    }
    assert.deepEqual(seen.rpm2, seen.pm2);
  });

  test('monitor/unmonitor: the same _km_monitored in jlist', async (t) => {
    const got = {};
    for (const m of both(t)) {
      await startApp(m, 'mon');
      assert.equal((await m.run(['monitor', 'mon'])).code, 0);
      const on = (await m.jlist())[0].pm2_env._km_monitored;
      assert.equal((await m.run(['unmonitor', '0'])).code, 0);
      const off = (await m.jlist())[0].pm2_env._km_monitored;
      got[m.kind] = [on, off];
    }
    assert.deepEqual(got.rpm2, got.pm2);
  });

  test('set/get/multiset/unset: the same module_conf.json and output words', async (t) => {
    const files = {};
    for (const m of both(t)) {
      const s = await m.run(['set', 'mymod:key', 'val']);
      assert.equal(s.code, 0, `${m.kind}: ${s.stdout}${s.stderr}`);
      assert.match(s.stdout, /Module: mymod/, m.kind);
      assert.match(s.stdout, /set mymod:key val/, m.kind);
      const g = await m.run(['get', 'mymod:key']);
      assert.equal(g.code, 0);
      assert.match(g.stdout, /Value for module mymod key key: val/, m.kind);
      assert.equal((await m.run(['get', 'nope:x'])).code, 1, m.kind);
      assert.equal((await m.run(['multiset', 'a:b 1 a:c 2'])).code, 0);
      assert.equal((await m.run(['unset', 'mymod:key'])).code, 0);
      files[m.kind] = fs.readFileSync(path.join(m.home, 'module_conf.json'), 'utf8');
    }
    assert.deepEqual(JSON.parse(files.rpm2), JSON.parse(files.pm2));
    assert.equal(files.rpm2, files.pm2, 'the same bytes (four-space indentation)');
  });

  test('update (and updatePM2) start the restart counts again at 0', async (t) => {
    for (const m of both(t)) {
      await startApp(m, 'up');
      assert.equal((await m.run(['restart', 'up'])).code, 0);
      await h.waitFor(async () => (await m.jlist())[0].pm2_env.restart_time === 1, { message: `${m.kind} restarted` });
      const u = await m.run(['updatePM2'], 60000);
      assert.equal(u.code, 0, `${m.kind}: ${u.stdout}${u.stderr}`);
      await h.waitFor(async () => {
        const l = await m.jlist().catch(() => []);
        return l.length === 1 && l[0].pm2_env.status === 'online';
      }, { message: `${m.kind}: back online after update` });
      assert.equal((await m.jlist())[0].pm2_env.restart_time, 0, m.kind);
    }
  });

  test('serve: an app named static-page-server-<port> that serves the folder', async (t) => {
    for (const m of both(t)) {
      fs.writeFileSync(path.join(m.dir, 'index.html'), 'served');
      const port = await h.freePort();
      const r = await m.run(['serve', m.dir, String(port)]);
      assert.equal(r.code, 0, `${m.kind}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Serving ${m.dir} on port ${port}`), m.kind);
      await h.waitFor(async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/`);
          return (await res.text()) === 'served';
        } catch {
          return false;
        }
      }, { message: `${m.kind}: serving` });
      assert.ok((await m.jlist()).some((p) => p.name === `static-page-server-${port}`), m.kind);
    }
  });
});

describe('documented differences', { skip: SKIP }, () => {
  test('link: rpm2 has no cloud link and says so (exit 1)', async (t) => {
    const [, r] = both(t);
    const res = await r.run(['link']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no PM2 Plus cloud link/);
  });
});
