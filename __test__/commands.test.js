'use strict';
// End-to-end tests of issue 14's command surface (signals and stdin, actions, monitor, serve, module
// configuration, report, completion, inspect, link, update, the pid file): each through the CLI and,
// where PM2 has an API method, through require('rpm2'), against a real daemon in a temporary home.
//   node --test --test-concurrency=2 __test__/commands.test.js

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const h = require('./helpers');
const rpm2 = require('..');
const { ok } = h;

const APP = h.fixture('cmd-actions.js');
const IDLE = h.fixture('cli-idle.js');

/** Starts APP as `name` (extra flags appended) and waits until every instance printed `ready`. */
async function startApp(home, name, extra = []) {
  await ok(['start', APP, '--name', name, ...extra], { home });
  const want = extra.includes('-i') ? Number(extra[extra.indexOf('-i') + 1]) : 1;
  await h.waitFor(async () => {
    const l = (await h.jlist(home)).filter((p) => p.name === name);
    return l.length === want && l.every((p) => p.pm2_env.status === 'online' && p.pm2_env.axm_actions.length === 2);
  }, { message: `${name} online with its actions` });
  await h.waitLog(home, name, /ready/);
}

/** One raw HTTP/1.0 GET (the path sent as is) → {status, headers, body}. */
function get(port, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('error', reject);
    s.on('data', (d) => (data += d));
    s.on('end', () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), head, body: rest.join('\r\n\r\n') });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    s.write(`GET ${p} HTTP/1.0\r\n${extra}\r\n`);
  });
}

describe('signals and stdin', () => {
  test('sendSignal reaches every instance and ignores extra words (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'sig', ['-i', '2', '-x']);
    const r = await h.rpm2(['sendSignal', 'SIGUSR2', 'sig', '0', '0'], { home });
    assert.equal(r.code, 0, h.show(r));
    await h.waitLog(home, 'sig', /USR2 0[\s\S]*USR2 1|USR2 1[\s\S]*USR2 0/);
    const api = new rpm2.custom({ home });
    await api.sendSignalToProcessName('SIGUSR2', 'all');
    await h.waitFor(async () => ((await h.outLog(home, 'sig')).match(/USR2/g) || []).length >= 4, { message: '4 USR2' });
  });

  test('send and sendLineToStdin write lines to the app; cluster mode and names are refused', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'in');
    await ok(['send', '0', 'hello there'], { home });
    await h.waitLog(home, 'in', /STDIN:hello there/);
    const api = new rpm2.custom({ home });
    const res = await api.sendLineToStdin(0, 'from api');
    assert.equal(res.pm_id, 0);
    assert.equal(res.line, 'from api\n');
    await h.waitLog(home, 'in', /STDIN:from api/);
    const byName = await h.rpm2(['send', 'in', 'x'], { home });
    assert.equal(byName.code, 1, h.show(byName));
    assert.match(byName.stderr, /pm_id must be a process number/);
    await ok(['start', IDLE, '--name', 'cl', '-i', '1'], { home });
    const cl = await h.waitForProc(home, 'cl', (p) => p.pm2_env.status === 'online');
    const refused = await h.rpm2(['send', String(cl.pm_id), 'x'], { home });
    assert.equal(refused.code, 1, h.show(refused));
    assert.match(refused.stderr, /cluster mode/);
    await assert.rejects(api.sendLineToStdin(99, 'x'), /unknown/);
  });

  test('attach prints the output and sends what it reads to the app', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'att');
    const child = spawn(h.BIN, ['attach', '0'], { env: h.homeEnv(home), stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await h.sleep(500); // subscribed
    child.stdin.write('typed line\n');
    await h.waitFor(() => out.includes('STDIN:typed line'), { message: 'the echo in attach output' });
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdin.end();
    assert.equal(await exited, 0);
  });
});

describe('actions (tx2/@pm2/io) and monitoring', () => {
  test('trigger runs declared actions on every instance; jlist and show list them (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'act', ['-i', '2', '-x']);
    const l = await h.jlist(home);
    assert.deepEqual(l[0].pm2_env.axm_actions.map((a) => a.action_name), ['hello', 'echo']);
    const r = await ok(['trigger', 'act', 'hello'], { home });
    assert.match(r.stdout, /2 processes have received command hello/);
    assert.match(r.stdout, /\[act:0:default\]=\{"hi":"0"\}/);
    assert.match(r.stdout, /\[act:1:default\]=\{"hi":"1"\}/);
    const e = await ok(['trigger', '1', 'echo', 'abc'], { home });
    assert.match(e.stdout, /\[act:1:default\]=\{"got":"abc"\}/);
    const none = await h.rpm2(['trigger', 'act', 'nope'], { home });
    assert.equal(none.code, 1, h.show(none));
    assert.match(none.stderr, /Not any process has received a command/);
    const show = await ok(['show', '0'], { home });
    assert.match(show.stdout, /Actions available[\s\S]*hello[\s\S]*echo/);
    const api = new rpm2.custom({ home });
    const replies = await api.trigger('act', 'echo', { n: 1 });
    assert.equal(replies.length, 2);
    assert.deepEqual(replies.map((x) => x.data.return), [{ got: { n: 1 } }, { got: { n: 1 } }]);
    await assert.rejects(api.trigger('act', 'nope'), /Not any process/);
  });

  test('monitor/unmonitor set _km_monitored as PM2 (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'mon');
    assert.equal((await h.proc(home, 'mon')).pm2_env._km_monitored, undefined);
    await ok(['monitor', 'mon'], { home });
    assert.equal((await h.proc(home, 'mon')).pm2_env._km_monitored, true);
    await ok(['unmonitor', '0'], { home });
    assert.equal((await h.proc(home, 'mon')).pm2_env._km_monitored, false);
    const api = new rpm2.custom({ home });
    await api.monitor('mon');
    assert.equal((await h.proc(home, 'mon')).pm2_env._km_monitored, true);
    const missing = await h.rpm2(['monitor'], { home });
    assert.equal(missing.code, 1);
  });
});

describe('serve', () => {
  test('serve runs a static server app on 127.0.0.1: files, --spa, no escape from the folder', async (t) => {
    const { home, dir } = h.useHome(t);
    const site = path.join(dir, 'site');
    fs.mkdirSync(path.join(site, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(site, 'index.html'), '<h1>home</h1>');
    fs.writeFileSync(path.join(site, 'sub', 'a b.css'), 'b{}');
    fs.writeFileSync(path.join(dir, 'secret.txt'), 'secret');
    const port = await h.freePort();
    const r = await ok(['serve', site, String(port), '--spa'], { home });
    assert.match(r.stdout, new RegExp(`Serving ${site} on port ${port}`));
    const p = await h.waitForProc(home, `static-page-server-${port}`, (x) => x.pm2_env.status === 'online');
    assert.equal(p.pm2_env.exec_mode, 'fork_mode');
    await h.waitLog(home, `static-page-server-${port}`, /listening on http:\/\/127\.0\.0\.1/);
    assert.equal((await get(port, '/')).body, '<h1>home</h1>');
    const css = await get(port, '/sub/a%20b.css');
    assert.equal(css.status, 200);
    assert.match(css.head, /Content-Type: text\/css/);
    assert.equal((await get(port, '/deep/route')).body, '<h1>home</h1>', '--spa serves index.html');
    const esc = await get(port, '/../secret.txt');
    assert.notEqual(esc.body, 'secret');
    assert.notEqual((await get(port, '/%2e%2e/secret.txt')).body, 'secret');
  });

  test('serve with basic auth (API), 404 without --spa', async (t) => {
    const { home, dir } = h.useHome(t);
    fs.writeFileSync(path.join(dir, 'index.html'), 'auth');
    const port = await h.freePort();
    const api = new rpm2.custom({ home, cwd: dir });
    const res = await api.serve('.', port, { basicAuthUsername: 'u', basicAuthPassword: 'p' });
    assert.equal(res.name, `static-page-server-${port}`);
    assert.equal(res.port, port);
    await h.waitLog(home, res.name, /listening on/);
    assert.equal((await get(port, '/')).status, 401);
    const good = await get(port, '/', { Authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
    assert.equal(good.status, 200);
    assert.equal(good.body, 'auth');
    const nf = await get(port, '/nope', { Authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
    assert.equal(nf.status, 404);
    // The password is not on the server's command line.
    const p = await h.proc(home, res.name);
    assert.ok(!h.cmdline(p.pid).includes('p\0') && !h.cmdline(p.pid).join(' ').includes(' p '), 'no password in argv');
  });
});

describe('module configuration', () => {
  test('set/get/unset/multiset/conf write PM2\'s module_conf.json (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    const s = await ok(['set', 'mymod:key', 'val'], { home });
    assert.match(s.stdout, /Setting changed/);
    assert.match(s.stdout, /Module: mymod/);
    assert.match(s.stdout, /\$ rpm2 set mymod:key val/);
    const g = await ok(['get', 'mymod:key'], { home });
    assert.match(g.stdout, /Value for module mymod key key: val/);
    assert.equal((await h.rpm2(['get', 'nope:x'], { home })).code, 1);
    await ok(['multiset', 'a:b 1 a:c 2'], { home });
    const file = JSON.parse(fs.readFileSync(path.join(home, 'module_conf.json'), 'utf8'));
    assert.deepEqual(file, { mymod: { key: 'val' }, a: { b: '1', c: '2' } });
    assert.match(fs.readFileSync(path.join(home, 'module_conf.json'), 'utf8'), /^\{\n {4}"mymod": \{\n {8}"key"/);
    await ok(['unset', 'mymod:key'], { home });
    const c = await ok(['conf'], { home });
    assert.match(c.stdout, /Module: a/);
    assert.doesNotMatch(c.stdout, /mymod:key/);
    const api = new rpm2.custom({ home });
    await api.set('api:k', 5);
    assert.equal(await api.get('api:k'), '5');
    assert.deepEqual(await api.get('a'), { b: '1', c: '2' });
    await api.unset('api:k');
    await assert.rejects(api.get('api:k'), /Unknown key/);
    assert.equal(await api.conf('a:b'), '1');
  });
});

describe('report, completion, inspect, link, update, pid file', () => {
  test('report shows versions, the daemon, apps and their last log lines (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'rep');
    const r = await ok(['report'], { home });
    for (const word of ['rpm2 report', 'Daemon', 'rpm2d version', 'node version', 'System info', 'rep', 'out | ready', 'Daemon logs']) {
      assert.ok(r.stdout.includes(word), `report mentions ${word}\n${r.stdout}`);
    }
    const api = new rpm2.custom({ home });
    const rep = await api.report();
    assert.equal(rep.cli.rpm2_version, require('../package.json').version);
    assert.equal(rep.apps[0].name, 'rep');
    assert.ok(rep.apps[0].out_log.includes('ready'));
    assert.ok(rep.daemon.pid > 0);
  });

  test('completion prints bash, zsh and fish scripts', async () => {
    for (const [sh, word] of [['bash', 'complete'], ['zsh', '#compdef rpm2'], ['fish', 'complete -c rpm2']]) {
      const r = await ok(['completion', sh]);
      assert.ok(r.stdout.includes(word), `${sh}: ${r.stdout.slice(0, 200)}`);
      assert.ok(r.stdout.includes('sendSignal') && r.stdout.includes('trigger'), sh);
    }
    assert.equal((await h.rpm2(['completion', 'tcsh'])).code, 1);
  });

  test('inspect restarts the app with --inspect (CLI and API)', async (t) => {
    const { home } = h.useHome(t);
    await startApp(home, 'insp');
    await ok(['inspect', 'insp'], { home });
    const p = await h.waitForProc(home, 'insp', (x) => x.pm2_env.status === 'online' && x.pm2_env.restart_time === 1);
    assert.deepEqual(p.pm2_env.node_args, ['--inspect']);
    const errLog = () => fs.readFileSync(p.pm2_env.pm_err_log_path, 'utf8');
    await h.waitFor(() => /Debugger listening on ws:\/\/127\.0\.0\.1:9229/.test(errLog()), { message: 'inspector URL' });
    const api = new rpm2.custom({ home });
    await api.inspect('insp'); // already inspected: restarts as it is
    const q = await h.waitForProc(home, 'insp', (x) => x.pm2_env.restart_time === 2 && x.pm2_env.status === 'online');
    assert.deepEqual(q.pm2_env.node_args, ['--inspect']);
  });

  test('link/unlink say there is no cloud link and exit 1; updatePM2 resets restart counts', async (t) => {
    const { home } = h.useHome(t);
    for (const cmd of [['link'], ['link', 'secret', 'public'], ['unlink']]) {
      const r = await h.rpm2(cmd, { home });
      assert.equal(r.code, 1, h.show(r));
      assert.match(r.stderr, /no PM2 Plus cloud link/);
    }
    await startApp(home, 'up');
    await ok(['restart', 'up'], { home });
    await h.waitForProc(home, 'up', (x) => x.pm2_env.restart_time === 1 && x.pm2_env.status === 'online');
    await ok(['updatePM2'], { home });
    const p = await h.waitForProc(home, 'up', (x) => x.pm2_env.status === 'online');
    assert.equal(p.pm2_env.restart_time, 0);
  });

  test('RPM2_PID_FILE_PATH (and PM2_PID_FILE_PATH) move the daemon pid file', async (t) => {
    for (const key of ['RPM2_PID_FILE_PATH', 'PM2_PID_FILE_PATH']) {
      const { home, dir } = h.useHome(t);
      const pidFile = path.join(dir, `${key}.pid`);
      await ok(['ping'], { home, env: { [key]: pidFile } });
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      assert.ok(h.isAlive(pid), 'the pid file holds the live daemon');
      assert.ok(!fs.existsSync(path.join(home, 'rpm2d.pid')));
      await ok(['kill'], { home, env: { [key]: pidFile } });
      await h.waitFor(() => !fs.existsSync(pidFile), { message: 'pid file removed' });
    }
  });
});

describe('cluster apps sharing a port', () => {
  const HTTP = h.fixture('cluster-http.js');

  async function pidsServing(port, n) {
    const pids = new Set();
    for (let i = 0; i < n; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`, { headers: { Connection: 'close' } });
      pids.add((await r.json()).pid);
    }
    return pids;
  }

  test('two cluster apps on one port both run; connections go round-robin over all their workers', async (t) => {
    const { home } = h.useHome(t);
    const port = await h.freePort();
    for (const name of ['a', 'b']) {
      await ok(['start', HTTP, '--name', name, '-i', '2'], { home, env: { PORT: port } });
    }
    const online = await h.waitFor(async () => {
      const l = await h.jlist(home);
      return l.length === 4 && l.every((p) => p.pm2_env.status === 'online') && l;
    }, { message: 'four workers online' });
    for (const name of ['a', 'b']) await h.waitLog(home, name, new RegExp(`listening main ${port}[\\s\\S]*listening main ${port}`));
    await h.sleep(500);
    const l = await h.jlist(home);
    assert.deepEqual(l.map((p) => p.pm2_env.restart_time), [0, 0, 0, 0], 'no crash loop (EADDRINUSE)');
    const served = await pidsServing(port, 16);
    assert.deepEqual([...served].sort(), online.map((p) => p.pid).sort(), 'every worker of both apps serves');
    // Deleting one app keeps the port for the other.
    await ok(['delete', 'a'], { home });
    const rest = (await h.jlist(home)).map((p) => p.pid).sort();
    assert.deepEqual([...(await pidsServing(port, 6))].sort(), rest);
    await ok(['stop', 'b'], { home });
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`), 'the port is closed once no app uses it');
  });
});
