#!/usr/bin/env node
// Builds the napi addon (rpm2.<platform>.node) and the native rpm2d executable, with one cargo target
// dir and profile so dependencies compile once.
//
//   node scripts/build.js                  this machine's target, plain cargo, into the checkout
//                                          (what `npm run build`, CI and the tests use)
//   node scripts/build.js --zig [--target T] [--target-dir D] [--out DIR]
//                                          cargo-zigbuild; a linux-gnu target is linked against the
//                                          glibc in package.json's rpm2.glibc (`T.2.17`), and the
//                                          build fails when rpm2d or the addon needs a newer one
//
// After a linux-gnu build it prints the highest GLIBC_ version each binary needs.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { root, mainPackage, platformOfTarget } = require('./platforms.js');
const { checkGlibc, maxGlibc } = require('./glibc.js');

function parseArgs(argv) {
  const o = { zig: false, target: null, targetDir: null, out: root };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--zig') o.zig = true;
    else if (a === '--target') o.target = argv[++i];
    else if (a === '--target-dir') o.targetDir = path.resolve(argv[++i]);
    else if (a === '--out') o.out = path.resolve(argv[++i]);
    else throw new Error(`build.js: unknown argument ${a} (see the usage at the top of scripts/build.js)`);
  }
  return o;
}

function hostTarget() {
  return execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1].trim();
}

/** Builds for `opts`; returns { platform, addon, exe } (paths of the copied files). */
function build(opts) {
  const target = opts.target || hostTarget();
  const platform = platformOfTarget(target);
  if (!platform) throw new Error(`build.js: ${target} is not one of rpm2's targets (scripts/platforms.js)`);
  const { glibc } = mainPackage();
  const gnu = /-linux-gnu$/.test(target);
  // cargo-zigbuild takes the glibc version as a suffix of the target and builds under the plain triple.
  const buildTarget = opts.zig && gnu ? `${target}.${glibc}` : target;
  const env = { ...process.env };
  if (opts.targetDir) env.CARGO_TARGET_DIR = opts.targetDir;
  const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  fs.mkdirSync(opts.out, { recursive: true });
  const napi = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  run(process.execPath, [napi, 'build', '--platform', '--release', '--target', buildTarget, '--no-js', '--dts', 'native.d.ts',
    '--output-dir', opts.out, ...(opts.zig ? ['--cross-compile'] : [])]);
  run('cargo', [...(opts.zig ? ['zigbuild'] : ['build']), '--release', '--target', buildTarget, '-p', 'rpm2d']);
  const targetDir = opts.targetDir || path.join(root, 'target');
  const exe = path.join(opts.out, 'rpm2d');
  fs.copyFileSync(path.join(targetDir, target, 'release', 'rpm2d'), exe + '.tmp');
  fs.chmodSync(exe + '.tmp', 0o755);
  fs.renameSync(exe + '.tmp', exe);
  const addon = path.join(opts.out, `rpm2.${platform}.node`);
  if (gnu) {
    // The packaged (zig) build must run on the oldest supported glibc; a plain build only reports.
    const check = opts.zig ? (f) => checkGlibc(f, glibc) : maxGlibc;
    const needs = [exe, addon].map((f) => `${path.relative(root, f)} needs GLIBC_${check(f)}`);
    console.log(`${needs.join(', ')} (supported: ${glibc}${opts.zig ? '' : ', checked by `npm run package`'})`);
  }
  console.log(`built ${path.relative(root, exe) || exe} and ${path.relative(root, addon)} for ${buildTarget}`);
  return { platform, addon, exe };
}

module.exports = { build, parseArgs, hostTarget };

if (require.main === module) {
  try {
    build(parseArgs(process.argv.slice(2)));
  } catch (e) {
    console.error(e.stderr ? String(e.message).split('\n')[0] : e.message);
    process.exit(1);
  }
}
