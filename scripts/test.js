#!/usr/bin/env node
// `npm test`: the Rust core's tests, then the end-to-end suite against the built rpm2d and addon.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const path = require('path');
const fs = require('fs');

const root = path.resolve(__dirname, '..');
const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1].trim();
if (!fs.existsSync(path.join(root, 'rpm2d'))) {
  console.error('rpm2d is not built: run `npm run build` first');
  process.exit(1);
}
let r = spawnSync('cargo', ['test', '--release', '--target', host, '-p', 'rpm2-core'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status || 1);
const files = fs.readdirSync(path.join(root, '__test__')).filter((f) => /\.test\.(c|m)?js$/.test(f)).sort()
  .map((f) => path.join('__test__', f));
r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
