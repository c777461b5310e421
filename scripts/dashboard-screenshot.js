#!/usr/bin/env node
// Takes the README's screenshot of the dashboard (docs/dashboard.png): a few real apps in a temporary
// RPM2_HOME, `rpm2 web` with a token, headless chromium (Debian's package) through playwright-core.
//   node scripts/dashboard-screenshot.js [out.png] [seconds of history, default 75]
// Needs `npm run build` first. Everything it starts is stopped at the end (`rpm2 kill`).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.resolve(process.argv[2] || path.join(root, 'docs', 'dashboard.png'));
const seconds = Number(process.argv[3] || 75);
const app = path.join(root, '__test__', 'fixtures', 'web-app.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-shot-'));
const env = { ...process.env, RPM2_HOME: path.join(dir, 'home'), NO_COLOR: '1' };
const rpm2 = (...args) => execFileSync(path.join(root, 'bin', 'rpm2'), args, { env, cwd: dir, encoding: 'utf8' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = 'screenshot';

async function main() {
  const port = 9615 + 1 + Math.floor(Math.random() * 300);
  rpm2('start', app, '--name', 'api', '--', 'api');
  rpm2('start', app, '--name', 'worker', '-i', '2', '--', 'worker');
  rpm2('start', app, '--name', 'mailer', '--', 'mailer');
  rpm2('web', String(port), '--token', token);
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.fill('#token-input', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#procs tbody tr[data-id="0"]');
    await page.click('#procs tbody tr[data-id="0"]');
    const api = JSON.parse(rpm2('jlist')).find((p) => p.name === 'api');
    for (let s = 0; s < seconds; s++) {
      if (s === seconds - 20) rpm2('stop', 'mailer');
      if (s % 9 === 4) process.kill(api.pid, 'SIGUSR2');
      await sleep(1000);
    }
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: false });
    console.log(`wrote ${out}`);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
    try { rpm2('kill'); } catch { /* best effort */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  try { rpm2('kill'); } catch { /* best effort */ }
  process.exit(1);
});
