// Reliability under faults (issue 17): a frozen daemon never hangs a command or a Promise, `rpm2 kill`
// stops a frozen daemon and its apps, a JS ecosystem file that never finishes is cut off, names with
// control characters are refused, and a daemon SIGKILLed mid-operation comes back with every app once.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./helpers');

const IDLE = h.fixture('cli-idle.js');

// A small query deadline so that the tests stay short; the message and the exit code are what count.
const FAST = { RPM2_TIMEOUT_MS: '1500' };

test('a SIGSTOPped daemon: list (CLI and API) fails with one line, kill stops it and its apps', async (t) => {
  const { home } = h.useHome(t, 'rpm2-faults-');
  await h.ok(['start', IDLE, '--name', 'frozen-a'], { home });
  await h.ok(['start', IDLE, '--name', 'frozen-b'], { home });
  const list = await h.jlist(home);
  const appPids = list.map((p) => p.pid);
  assert.equal(appPids.length, 2);
  const dpid = h.daemonPid(home);
  assert.ok(dpid > 0, 'the daemon wrote its pid file');
  process.kill(dpid, 'SIGSTOP');
  t.after(() => {
    try {
      process.kill(dpid, 'SIGCONT');
    } catch {
      /* gone */
    }
  });

  // The CLI: one line naming the pid and the home, non-zero, within a bound.
  const began = Date.now();
  const r = await h.rpm2(['list'], { home, env: FAST, timeout: 20000 });
  assert.notEqual(r.code, 0, h.show(r));
  assert.equal(r.signal, null, `the CLI hung until killed: ${h.show(r)}`);
  assert.ok(Date.now() - began < 15000, 'the CLI gave up within its deadline');
  assert.match(r.stderr, new RegExp(`the rpm2 daemon \\(pid ${dpid}, home ${home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) does not answer`), h.show(r));
  assert.equal(h.lines(r.stderr).filter((l) => /does not answer/.test(l)).length, 1, h.show(r));

  // The JS API: a rejected Promise with the same message.
  process.env.RPM2_TIMEOUT_MS = FAST.RPM2_TIMEOUT_MS;
  try {
    const api = new (require('..').custom)({ home });
    await assert.rejects(api.list(), (e) => {
      assert.match(e.message, new RegExp(`the rpm2 daemon \\(pid ${dpid}, home .*\\) does not answer`));
      return true;
    });
  } finally {
    delete process.env.RPM2_TIMEOUT_MS;
  }

  // `rpm2 kill` still works: no daemon, no app left.
  const k = await h.rpm2(['kill'], { home, env: FAST, timeout: 30000 });
  assert.equal(k.code, 0, h.show(k));
  await h.waitFor(() => !h.isAlive(dpid), { message: 'the frozen daemon is gone' });
  for (const pid of appPids) await h.waitFor(() => !h.isAlive(pid), { message: `app pid ${pid} is gone` });
  assert.deepEqual(h.daemonPids(home), []);
  // The next command starts a fresh daemon with an empty table.
  assert.deepEqual(await h.jlist(home), []);
});

test('a JS ecosystem file that never finishes is cut off at the limit: one line, nothing started', async (t) => {
  const { dir, home } = h.useHome(t, 'rpm2-faults-');
  const cases = {
    'spin.config.js': `module.exports = { apps: [{ name: 'never', script: ${JSON.stringify(IDLE)} }] };\nwhile (true) {}\n`,
    'wait.config.mjs': `await new Promise(() => setInterval(() => {}, 1000));\nexport default { apps: [{ name: 'never', script: ${JSON.stringify(IDLE)} }] };\n`,
  };
  for (const [file, body] of Object.entries(cases)) {
    const p = path.join(dir, file);
    fs.writeFileSync(p, body);
    const r = await h.rpm2(['start', p], { home, env: { RPM2_CONFIG_TIMEOUT_MS: '1000' }, timeout: 20000 });
    assert.notEqual(r.code, 0, h.show(r));
    assert.equal(r.signal, null, `rpm2 start hung: ${h.show(r)}`);
    const line = h.lines(r.stderr).find((l) => l.includes(p));
    assert.ok(line && /1000 ms/.test(line), h.show(r));
    // No Node left evaluating the file.
    await h.waitFor(() => !fs.readdirSync('/proc').some((d) => /^\d+$/.test(d) && h.cmdline(Number(d)).includes(p)),
      { message: `a node process still evaluates ${file}` });
  }
  if (fs.existsSync(path.join(home, 'rpc.sock'))) assert.deepEqual(await h.jlist(home), []);
});

test('names with control characters and empty names are refused with one line (CLI, ecosystem, API)', async (t) => {
  const { dir, home } = h.useHome(t, 'rpm2-faults-');
  for (const name of ['two\nlines', 'tab\there', '\u001b[31mred', '']) {
    const r = await h.rpm2(['start', IDLE, '--name', name], { home });
    assert.notEqual(r.code, 0, h.show(r));
    assert.equal(h.lines(r.stderr).length, 1, `one line expected: ${h.show(r)}`);
    assert.match(r.stderr, /name/, h.show(r));
  }
  const eco = path.join(dir, 'bad-names.json');
  fs.writeFileSync(eco, JSON.stringify({ apps: [{ name: 'bad\rname', script: IDLE }] }));
  const r = await h.rpm2(['start', eco], { home });
  assert.notEqual(r.code, 0, h.show(r));
  assert.equal(h.lines(r.stderr).length, 1, h.show(r));

  const api = new (require('..').custom)({ home });
  await assert.rejects(api.start({ script: IDLE, name: 'new\nline' }), /cannot be used/);
  // Numbers where a number is required.
  const s = await h.rpm2(['scale', 'whatever', 'abc'], { home });
  assert.notEqual(s.code, 0, h.show(s));
  assert.match(s.stderr, /N, \+N or -N/, h.show(s));
  const e = await h.rpm2(['env', 'abc'], { home });
  assert.notEqual(e.code, 0, h.show(e));
  assert.match(e.stderr, /must be a process id/, h.show(e));
  // Nothing was started; a path-like name is still accepted.
  if (fs.existsSync(path.join(home, 'rpc.sock'))) assert.deepEqual(await h.jlist(home), []);
  await h.ok(['start', IDLE, '--name', 'svc/../odd'], { home });
  assert.deepEqual((await h.jlist(home)).map((p) => p.name), ['svc/../odd']);
  await api.disconnect();
});
