'use strict';
// End-to-end tests of the dashboard of `rpm2 web` (issue 18) in a real browser: Debian's chromium,
// headless, driven by playwright-core, against a real daemon with real apps in a temporary RPM2_HOME.
// Only 127.0.0.1 is connected to, on ports the kernel picked free. Skipped (with the reason) only when
// no chromium executable is found (`apt-get install chromium`; RPM2_CHROMIUM names another one).
// Run:
//   node --test __test__/web-dashboard.test.js

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const h = require('./helpers');

const APP = h.fixture('web-app.js');
const WEB = 'rpm2-http-interface';
const TOKEN = 'dash-test-token';
const CHROMIUM = [process.env.RPM2_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .find((p) => p && fs.existsSync(p));
const SKIP = CHROMIUM ? false : 'no chromium executable (/usr/bin/chromium): `apt-get install chromium` to run these tests';
// The machine's network is closed: without these, Chromium waits on connections it tries to make.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A browser of its own (a fresh profile directory), closed and removed by the returned close(). */
async function launchBrowser() {
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1440, height: 900 },
  });
  return {
    ctx,
    async close() {
      await ctx.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** One HTTP request to 127.0.0.1:port; resolves {status, headers, body}. */
function request(port, method, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

/** The first bytes of /events (the connection is closed once `until` matches them). */
function readEvents(port, headers, until) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
        if (until.test(body)) { req.destroy(); resolve({ status: res.statusCode, headers: res.headers, body }); }
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(20000, () => req.destroy(new Error('/events timed out')));
  });
}

/** Runs `rpm2d --web-server` itself (not managed: it outlives the daemon); resolves {child, port}. */
async function unmanagedServer(home, env = {}) {
  const port = await h.freePort();
  const child = spawn(path.join(h.ROOT, 'rpm2d'), ['--web-server', '--port', String(port)],
    { env: h.homeEnv(home, env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  await h.waitFor(() => out.includes('listening on'), { message: `the web server to listen: ${out}` });
  return { child, port };
}

const rowSel = (id) => `#procs tbody tr[data-id="${id}"]`;
const cellText = (page, id, col) => page.textContent(`${rowSel(id)} td.c-${col}`);

describe('rpm2 web dashboard in a browser', { skip: SKIP }, () => {
  let home;
  let port;
  let browser;
  let page;
  let api;
  let worker;
  let readOnly;

  before(async () => {
    ({ home } = h.mkHome('rpm2-dash-'));
    await h.ok(['start', APP, '--name', 'api', '--', 'api'], { home });
    await h.ok(['start', APP, '--name', 'worker', '--', 'worker'], { home });
    api = await h.waitForProc(home, 'api', (p) => p.pm2_env.status === 'online' && p.pid > 0);
    worker = await h.waitForProc(home, 'worker', (p) => p.pm2_env.status === 'online' && p.pid > 0);
    port = await h.freePort();
    const r = await h.rpm2(['web', String(port), '--token', TOKEN], { home });
    assert.equal(r.code, 0, h.show(r));
    await h.waitForProc(home, WEB, (p) => p.pm2_env.status === 'online' && p.pid > 0);
    readOnly = await unmanagedServer(home, { RPM2_WEB_TOKEN: undefined });
    browser = await launchBrowser();
    page = await browser.ctx.newPage();
  });

  after(async () => {
    if (browser) await browser.close();
    if (readOnly) readOnly.child.kill('SIGKILL');
    await h.cleanup(home);
  });

  test('GET / keeps the JSON payload for curl-like clients; a browser gets the page', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const list = await h.jlist(home);
    for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html', 'text/html;q=0']) {
      const headers = accept === undefined ? { ...auth } : { ...auth, Accept: accept };
      const r = await request(port, 'GET', '/', headers);
      assert.equal(r.status, 200, `Accept ${accept}: ${r.body}`);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8', `Accept ${accept}`);
      const body = JSON.parse(r.body);
      // PM2's HttpInterface shape, as before the dashboard: the same keys, the jlist's processes.
      assert.deepEqual(Object.keys(body), ['system_info', 'monit', 'processes']);
      assert.deepEqual(Object.keys(body.system_info), ['hostname', 'uptime']);
      assert.deepEqual(Object.keys(body.monit), ['loadavg', 'total_mem', 'free_mem', 'cpu', 'interfaces']);
      assert.deepEqual(body.processes.map((p) => p.name).sort(), list.map((p) => p.name).sort());
      for (const p of body.processes) {
        const j = list.find((x) => x.pm_id === p.pm_id);
        assert.deepEqual(Object.keys(p), Object.keys(j), `process keys of ${p.name}`);
        assert.deepEqual(Object.keys(p.pm2_env).sort(), Object.keys(j.pm2_env).sort(), `pm2_env keys of ${p.name}`);
        assert.ok(Object.values(p.pm2_env.env).every((v) => v === '[hidden]'), 'env values stay hidden');
      }
    }
    // Unchanged rules: without the token a JSON client gets 401; /metrics is the Prometheus text.
    assert.equal((await request(port, 'GET', '/', { Accept: '*/*' })).status, 401);
    const m = await request(port, 'GET', '/metrics', auth);
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^rpm2_up 1$/m);
    // A browser's Accept: the page (it holds no data, so it needs no token), embedded, self-contained.
    const html = await request(port, 'GET', '/', { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' });
    assert.equal(html.status, 200);
    assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
    assert.ok(html.body.length < 150 * 1024, `page size ${html.body.length}`);
    assert.doesNotMatch(html.body, /(src|href)="(https?:)?\/\//, 'nothing is loaded from another origin');
    assert.match(html.headers['content-security-policy'], /default-src 'none'/);
    assert.match(html.headers['content-security-policy'], /frame-ancestors 'none'/);
    // The stream needs the token as the JSON does.
    assert.equal((await request(port, 'GET', '/events')).status, 401);
    const ev = await readEvents(port, auth, /event: sample/);
    assert.equal(ev.status, 200);
    assert.match(ev.headers['content-type'], /^text\/event-stream/);
    assert.match(ev.body, /^retry: \d+\n\nevent: hello\ndata: \{/);
    assert.doesNotMatch(ev.body, /"env"/, 'the stream carries no env');
  });

  test('the table shows the apps, live', async () => {
    await page.goto(`http://127.0.0.1:${port}/`);
    // The page asks for the token once.
    await page.waitForSelector('#token-dlg[open]');
    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector(`${rowSel(api.pm_id)} .status`);
    await page.waitForSelector(`${rowSel(worker.pm_id)} .status`);
    assert.equal(await cellText(page, api.pm_id, 'name'), 'api');
    assert.equal(await cellText(page, worker.pm_id, 'name'), 'worker');
    await page.waitForFunction((sel) => document.querySelector(sel).textContent === 'online', `${rowSel(api.pm_id)} .status`);
    assert.equal(await cellText(page, api.pm_id, 'pid'), String(api.pid));
    assert.equal(await cellText(page, api.pm_id, 'mode'), 'fork');
    assert.equal(await cellText(page, api.pm_id, 'watch'), '✘');
    // The figures come from the samples: memory becomes non-zero without a reload.
    await page.waitForFunction((sel) => /[1-9]/.test(document.querySelector(sel).textContent), `${rowSel(api.pm_id)} td.c-mem`);
    assert.equal(await page.textContent('#conn'), 'live');
    assert.match(await page.textContent('#d-mem'), /\d/, "the daemon's RSS is shown");
    assert.equal(await page.evaluate(() => sessionStorage.getItem('rpm2-token')), TOKEN, 'kept for the tab only');
    assert.deepEqual((await browser.ctx.cookies()), [], 'no cookie');
  });

  test('a crash shows as a restart within a second, without reloading the page', async (t) => {
    await page.evaluate(() => { window.rpm2Marker = 'same page'; });
    const before = Number(await cellText(page, api.pm_id, 'restarts'));
    const cur = await h.proc(home, 'api');
    const t0 = Date.now();
    process.kill(cur.pid, 'SIGKILL');
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel).textContent) > n,
      [`${rowSel(api.pm_id)} td.c-restarts`, before], { polling: 'raf', timeout: 10000 });
    const took = Date.now() - t0;
    t.diagnostic(`the restart showed ${took} ms after the kill`);
    assert.ok(took < 1000, `the restart showed after ${took} ms`);
    assert.equal(await page.evaluate(() => window.rpm2Marker), 'same page');
    api = await h.waitForProc(home, 'api', (p) => p.pm2_env.status === 'online' && p.pid !== cur.pid && p.pid > 0);
    await page.waitForFunction(([sel, pid]) => document.querySelector(sel).textContent === String(pid),
      [`${rowSel(api.pm_id)} td.c-pid`, api.pid]);
  });

  test('log lines printed by the app appear, stderr marked', async () => {
    await page.click(rowSel(api.pm_id));
    await page.waitForFunction(() => document.getElementById('sel-name').textContent.startsWith('api'));
    // The details (as `rpm2 show`) and the custom metrics (axm:monitor) of the selected app.
    const details = await page.textContent('#details');
    assert.match(details, /script path.*web-app\.js/);
    assert.match(details, /exec modefork_mode/);
    await page.waitForFunction(() => /Requests\s*\d+ req\/min/.test(document.getElementById('metrics').textContent));
    // The line the restarted app printed at start (its SIGUSR2 handler is in place from then on).
    await page.waitForFunction((pid) => document.getElementById('logs').textContent.includes(`api started pid=${pid}`), api.pid);
    process.kill(api.pid, 'SIGUSR2');
    await page.waitForFunction(() => /api got SIGUSR2 #1/.test(document.getElementById('logs').textContent));
    const err = await page.waitForSelector('#logs .ll.err >> text=api warning after SIGUSR2 #1');
    assert.match(await err.textContent(), /ERR/);
  });

  test('actions need the token: with it the app restarts, without it 401, without a server token 403', async () => {
    const before = Number(await cellText(page, api.pm_id, 'restarts'));
    assert.equal(await page.isDisabled('#actions button[data-action="restart"]'), false);
    await page.click('#actions button[data-action="restart"]');
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel).textContent) > n,
      [`${rowSel(api.pm_id)} td.c-restarts`, before]);
    const after = await h.proc(home, 'api');
    assert.equal(after.pm2_env.restart_time, before + 1);
    api = await h.waitForProc(home, 'api', (p) => p.pm2_env.status === 'online' && p.pid > 0);

    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Cookie: `token=${TOKEN}` }]) {
      const r = await request(port, 'POST', `/api/restart/${api.pm_id}`, headers);
      assert.equal(r.status, 401, `${JSON.stringify(headers)}: ${r.body}`);
    }
    const ro = await request(readOnly.port, 'POST', `/api/restart/${api.pm_id}`, { Authorization: `Bearer ${TOKEN}` });
    assert.equal(ro.status, 403, ro.body);
    // Without a token, the stream is not served under a DNS name (another site re-pointing its name at
    // 127.0.0.1 must not read the logs); the address and localhost are fine.
    assert.equal((await request(readOnly.port, 'GET', '/events', { Host: `rebound.example:${readOnly.port}` })).status, 403);
    const local = await readEvents(readOnly.port, { Host: `localhost:${readOnly.port}` }, /event: hello/);
    assert.equal(local.status, 200);
    assert.equal((await h.proc(home, 'api')).pm2_env.restart_time, before + 1, 'no refused action restarted it');
    assert.equal((await request(port, 'GET', `/api/restart/${api.pm_id}`, { Authorization: `Bearer ${TOKEN}` })).status, 405);
    // A read-only server's page has its actions off.
    const p2 = await browser.ctx.newPage();
    await p2.goto(`http://127.0.0.1:${readOnly.port}/`);
    await p2.click(rowSel(api.pm_id));
    await p2.waitForSelector('#actions-note:not([hidden])');
    assert.equal(await p2.isDisabled('#actions button[data-action="restart"]'), true);
    await p2.close();
  });

  test('the page reconnects by itself after the daemon restarts', async () => {
    const ro = await browser.ctx.newPage();
    await ro.goto(`http://127.0.0.1:${readOnly.port}/`);
    await ro.waitForSelector(`${rowSel(api.pm_id)} .status`);
    await ok(['save'], home);
    const oldPid = api.pid;
    await ok(['kill'], home);
    // The managed server went with the daemon: the page says it is reconnecting; the unmanaged one
    // says the daemon is down.
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'wait');
    await ro.waitForFunction(() => document.getElementById('conn').dataset.state === 'down');
    await ok(['resurrect'], home);
    api = await h.waitForProc(home, 'api', (p) => p.pm2_env.status === 'online' && p.pid > 0 && p.pid !== oldPid);
    for (const pg of [page, ro]) {
      await pg.waitForFunction(() => document.getElementById('conn').dataset.state === 'live', null, { timeout: 20000 });
      await pg.waitForFunction(([sel, pid]) => {
        const td = document.querySelector(sel);
        return td && td.textContent === String(pid);
      }, [`${rowSel(api.pm_id)} td.c-pid`, api.pid], { timeout: 20000 });
    }
    await ro.close();
  });
});

async function ok(args, home) {
  const r = await h.rpm2(args, { home });
  assert.equal(r.code, 0, `rpm2 ${args.join(' ')}\n${h.show(r)}`);
  return r;
}
