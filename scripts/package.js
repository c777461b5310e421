#!/usr/bin/env node
// `npm run package`: builds this machine's platform package and packs both npm tarballs.
//
//   node scripts/package.js [--target T] [--from-build] [--platform-only | --main-only] [--dest DIR]
//
// 1. Writes the six npm/<platform>/package.json from the main package.json (name `<npmName>-<platform>`
//    with npmName from package.json's `rpm2.npmName`, the ONE place for the registry name; the same
//    version, license and engines).
// 2. Builds the platform's addon and rpm2d, on Linux with cargo-zigbuild (linux-gnu: against the oldest
//    supported glibc, and fails when a binary needs a newer one) in target/dist/, so the checkout's
//    own build in target/ is not invalidated, and copies them into npm/<platform>/.
//    --from-build packs the checkout's `npm run build` output instead, from a staged copy in
//    target/pack/ (quick; used by the install test; its glibc is only reported). --main-only
//    builds nothing.
// 3. Packs npm/<platform>/ and the main package into --dest (default dist/). The main tarball is
//    packed from a staged copy: its registry name, and `optionalDependencies` naming the six
//    platform packages at its own version; it holds no binary. (The checkout's package.json lists no
//    optionalDependencies, so `npm install` in a checkout never asks the registry for them.)
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { root, PLATFORMS, mainPackage, platformOfTarget, platformManifest } = require('./platforms.js');
const { build, hostTarget } = require('./build.js');
const { maxGlibc } = require('./glibc.js');

function parseArgs(argv) {
  const o = { target: null, fromBuild: false, platformOnly: false, mainOnly: false, dest: path.join(root, 'dist') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--target') o.target = argv[++i];
    else if (a === '--from-build') o.fromBuild = true;
    else if (a === '--platform-only') o.platformOnly = true;
    else if (a === '--main-only') o.mainOnly = true;
    else if (a === '--dest') o.dest = path.resolve(argv[++i]);
    else throw new Error(`package.js: unknown argument ${a} (see the usage at the top of scripts/package.js)`);
  }
  return o;
}

/** Rewrites npm/<platform>/package.json for every platform from the main package.json. */
function syncManifests() {
  for (const p of Object.keys(PLATFORMS)) {
    const dir = path.join(root, 'npm', p);
    fs.mkdirSync(dir, { recursive: true });
    const text = JSON.stringify(platformManifest(p), null, 2) + '\n';
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
  }
}

function copyExe(from, to) {
  fs.copyFileSync(from, to + '.tmp');
  fs.chmodSync(to + '.tmp', 0o755);
  fs.renameSync(to + '.tmp', to);
}

/** Fills npm/<platform>/ with the addon and rpm2d (--from-build: a staged copy in target/pack/);
 * returns the folder to pack. */
function fillPlatform(opts) {
  const target = opts.target || hostTarget();
  const platform = platformOfTarget(target);
  if (!platform) throw new Error(`package.js: ${target} is not one of rpm2's targets (scripts/platforms.js)`);
  let dir = path.join(root, 'npm', platform);
  if (opts.fromBuild) {
    // A staged copy, so a packaged (glibc 2.17) npm/<platform>/ is never replaced by a plain build.
    const stage = path.join(root, 'target', 'pack', platform);
    fs.rmSync(stage, { recursive: true, force: true });
    fs.mkdirSync(stage, { recursive: true });
    fs.copyFileSync(path.join(dir, 'package.json'), path.join(stage, 'package.json'));
    for (const f of ['rpm2d', `rpm2.${platform}.node`]) {
      const src = path.join(root, f);
      if (!fs.existsSync(src)) throw new Error(`package.js: ${f} is not built: run \`npm run build\` first`);
      copyExe(src, path.join(stage, f));
      if (/-linux-gnu$/.test(target)) console.log(`${f} needs GLIBC_${maxGlibc(src)} (a plain build; \`npm run package\` links against ${mainPackage().glibc})`);
    }
    dir = stage;
  } else {
    // zig for Linux (the glibc pin, and cross builds); darwin builds natively on macOS.
    build({ zig: /-linux-/.test(target), target, targetDir: path.join(root, 'target', 'dist'), out: dir });
  }
  return dir;
}

function npmPack(dir, dest) {
  const out = execFileSync('npm', ['pack', dir, '--pack-destination', dest, '--json', '--ignore-scripts'], { encoding: 'utf8' });
  return path.join(dest, JSON.parse(out)[0].filename);
}

/** Stages the main package (registry name, optionalDependencies, no scripts) and packs it. */
function packMain(dest) {
  const { pkg, npmName } = mainPackage();
  const stage = path.join(root, 'target', 'pack', 'main');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const f of pkg.files) {
    const src = path.join(root, f);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(stage, f), { recursive: true });
  }
  const staged = { ...pkg, name: npmName };
  delete staged.scripts;
  delete staged.devDependencies;
  delete staged.napi;
  delete staged.private;
  if (npmName.startsWith('@')) staged.publishConfig = { access: 'public' };
  staged.optionalDependencies = Object.fromEntries(Object.keys(PLATFORMS).map((p) => [`${npmName}-${p}`, pkg.version]));
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(staged, null, 2) + '\n');
  return npmPack(stage, dest);
}

function main(opts) {
  syncManifests();
  fs.mkdirSync(opts.dest, { recursive: true });
  const made = [];
  if (!opts.mainOnly) {
    made.push(npmPack(fillPlatform(opts), opts.dest));
  }
  if (!opts.platformOnly) made.push(packMain(opts.dest));
  for (const f of made) console.log(`packed ${path.relative(process.cwd(), f)}`);
  return made;
}

module.exports = { main, syncManifests };

if (require.main === module) {
  try {
    main(parseArgs(process.argv.slice(2)));
  } catch (e) {
    console.error(e.message.split('\n')[0]);
    process.exit(1);
  }
}
