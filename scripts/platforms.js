// The six platforms rpm2 ships prebuilt, and the registry names of the packages, read from the ONE
// place that holds them: package.json's `rpm2.npmName` (the main package's registry name; each
// platform package is `<npmName>-<platform>`, e.g. `@scope/rpm2-linux-x64-gnu`).
'use strict';
const path = require('path');

const root = path.resolve(__dirname, '..');

/** platform name (as in npm/<platform>/ and the loader) -> Rust target and npm's os/cpu/libc. */
const PLATFORMS = {
  'linux-x64-gnu': { target: 'x86_64-unknown-linux-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  'linux-arm64-gnu': { target: 'aarch64-unknown-linux-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc' },
  'linux-x64-musl': { target: 'x86_64-unknown-linux-musl', os: 'linux', cpu: 'x64', libc: 'musl' },
  'linux-arm64-musl': { target: 'aarch64-unknown-linux-musl', os: 'linux', cpu: 'arm64', libc: 'musl' },
  'darwin-x64': { target: 'x86_64-apple-darwin', os: 'darwin', cpu: 'x64' },
  'darwin-arm64': { target: 'aarch64-apple-darwin', os: 'darwin', cpu: 'arm64' },
};

/** The main package.json, its registry name and the oldest glibc the gnu builds must run on. */
function mainPackage() {
  const pkg = require(path.join(root, 'package.json'));
  const cfg = pkg.rpm2 || {};
  return { pkg, npmName: cfg.npmName || pkg.name, glibc: cfg.glibc || '2.17' };
}

/** The platform name for a Rust target triple (a versioned `x86_64-unknown-linux-gnu.2.17` too). */
function platformOfTarget(triple) {
  const plain = triple.replace(/\.\d+(\.\d+)*$/, '');
  return Object.keys(PLATFORMS).find((p) => PLATFORMS[p].target === plain) || null;
}

/** The package.json of npm/<platform>/, derived from the main one (same version, license, engines). */
function platformManifest(platform) {
  const { pkg, npmName } = mainPackage();
  const p = PLATFORMS[platform];
  const m = {
    name: `${npmName}-${platform}`,
    version: pkg.version,
    description: `rpm2's prebuilt native addon and rpm2d executable for ${platform}`,
    main: `rpm2.${platform}.node`,
    files: [`rpm2.${platform}.node`, 'rpm2d'],
    os: [p.os],
    cpu: [p.cpu],
  };
  if (p.libc) m.libc = [p.libc];
  m.engines = pkg.engines;
  m.license = pkg.license;
  if (npmName.startsWith('@')) m.publishConfig = { access: 'public' };
  return m;
}

module.exports = { root, PLATFORMS, mainPackage, platformOfTarget, platformManifest };
