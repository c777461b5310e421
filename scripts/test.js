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
// Node 22 and 24 for the IPC/cluster matrix (installed from the npm registry on first run).
const nodes = spawnSync(process.execPath, [path.join(__dirname, 'install-nodes.js')], { cwd: root, encoding: 'utf8' });
if (nodes.status !== 0) {
  process.stderr.write(nodes.stderr || '');
  console.error('could not install the Node versions the tests need');
  process.exit(1);
}
process.env.RPM2_TEST_NODES = nodes.stdout.trim().split('\n').join(':');
let r = spawnSync('cargo', ['test', '--release', '--target', host, '-p', 'rpm2-core'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status || 1);
const files = fs.readdirSync(path.join(root, '__test__')).filter((f) => /\.test\.(c|m)?js$/.test(f)).sort()
  .map((f) => path.join('__test__', f));
r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
