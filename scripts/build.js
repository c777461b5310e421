#!/usr/bin/env node
// Builds the napi addon (rpm2.<platform>.node + native.js loader) and the native rpm2d executable,
// with one cargo target dir and profile so dependencies compile once.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1].trim();

run(process.execPath, [path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'), 'build', '--platform', '--release',
  '--target', host, '--js', 'native.js', '--dts', 'native.d.ts']);
run('cargo', ['build', '--release', '--target', host, '-p', 'rpm2d']);
const exe = path.join(root, 'target', host, 'release', 'rpm2d');
const dest = path.join(root, 'rpm2d');
fs.copyFileSync(exe, dest + '.tmp');
fs.chmodSync(dest + '.tmp', 0o755);
fs.renameSync(dest + '.tmp', dest);
console.log(`built ${path.relative(root, dest)} and the addon for ${host}`);
