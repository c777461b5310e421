// Finds rpm2's native parts for this machine: the napi addon (`rpm2.<platform>.node`) and the rpm2d
// executable. In order:
//   1. a local build next to this file (a checkout after `npm run build`; the published main package
//      ships no binary, so for users this step finds nothing);
//   2. the platform package `<name>-<platform>` (an optionalDependency of the main package; npm
//      installs the one whose os/cpu/libc match), nested under this package or beside it;
//   3. otherwise an Error with a one-line message naming the platform and the package to install.
// `RPM2_PLATFORM` (e.g. `freebsd-x64`) replaces the detected platform name: it is for tests.
'use strict';
const fs = require('fs');
const path = require('path');

/** The platforms with a prebuilt package (scripts/platforms.js holds the build table for each). */
const PREBUILT = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl', 'darwin-x64', 'darwin-arm64'];

function isMusl() {
  try {
    return fs.readdirSync('/lib').some((f) => f.startsWith('ld-musl-'));
  } catch {
    return false;
  }
}

/** This machine's platform name as the packages spell it: `linux-x64-gnu`, `darwin-arm64`, ... */
function detectPlatform() {
  if (process.env.RPM2_PLATFORM) return process.env.RPM2_PLATFORM;
  const base = `${process.platform}-${process.arch}`;
  if (process.platform !== 'linux') return base;
  return `${base}-${isMusl() ? 'musl' : 'gnu'}`;
}

/** The registry name of this package (package.json's `rpm2.npmName`, else its `name`). */
function packageName() {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8'));
    return (pkg.rpm2 && pkg.rpm2.npmName) || pkg.name || 'rpm2';
  } catch {
    return 'rpm2';
  }
}

function platformPackageDir(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [__dirname] }));
  } catch {
    return null;
  }
}

function noNative(platform, pkgName) {
  const how = PREBUILT.includes(platform)
    ? `install the package ${pkgName} (npm install ${pkgName}), or run \`npm run build\` in a checkout`
    : `rpm2 is prebuilt only for ${PREBUILT.join(', ')}; build it from source with \`npm run build\` in a checkout`;
  const err = new Error(`rpm2: no native addon for ${platform}: ${how}`);
  err.code = 'RPM2_NO_NATIVE';
  err.stack = `Error: ${err.message}`;
  return err;
}

/** { platform, addonPath, daemonExe } of the native parts for this machine, or throws (one line). */
function locate() {
  const platform = detectPlatform();
  const file = `rpm2.${platform}.node`;
  const local = path.join(__dirname, file);
  if (fs.existsSync(local)) return { platform, addonPath: local, daemonExe: path.join(__dirname, 'rpm2d') };
  const pkgName = `${packageName()}-${platform}`;
  const dir = platformPackageDir(pkgName);
  if (dir && fs.existsSync(path.join(dir, file))) {
    return { platform, addonPath: path.join(dir, file), daemonExe: path.join(dir, 'rpm2d') };
  }
  throw noNative(platform, pkgName);
}

/** Loads the addon: { native, daemonExe, platform }. Throws an Error with a one-line message. */
function load() {
  const where = locate();
  return { native: require(where.addonPath), daemonExe: where.daemonExe, platform: where.platform };
}

module.exports = { load, locate, detectPlatform, PREBUILT };
