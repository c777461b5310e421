'use strict';
// Distribution: the npm packages (npm/<platform>/, the staged main package), a global install from
// the two tarballs without a Rust toolchain, and the loader's one-line error on a platform that has
// no package (RPM2_PLATFORM, which is for tests).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./helpers');

const { PLATFORMS, mainPackage } = require('../scripts/platforms.js');
const { PREBUILT } = require('../loader.js');

const PLATFORM = 'linux-x64-gnu';

/** PATH without any directory that holds cargo or rustc, after `shims` (node and npm linked there). */
function pathWithoutRust(shims) {
  const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
  fs.mkdirSync(shims, { recursive: true });
  fs.symlinkSync(process.execPath, path.join(shims, 'node'));
  fs.symlinkSync(npm, path.join(shims, 'npm'));
  const keep = (process.env.PATH || '').split(':').filter((d) => d && !['cargo', 'rustc', 'rustup'].some((b) => fs.existsSync(path.join(d, b))));
  return [shims, ...keep].join(':');
}

/** Reads package.json out of a tarball. */
function tarManifest(tgz) {
  return JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
}

function tarFiles(tgz) {
  return execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('the six npm/<platform>/package.json match the main package (name, version, os/cpu/libc, files)', () => {
  const { pkg, npmName } = mainPackage();
  assert.deepEqual(Object.keys(PLATFORMS).sort(), [...PREBUILT].sort(), 'loader.js and scripts/platforms.js list the same platforms');
  for (const [p, spec] of Object.entries(PLATFORMS)) {
    const m = h.readJson(path.join(h.ROOT, 'npm', p, 'package.json'));
    assert.equal(m.name, `${npmName}-${p}`, p);
    assert.equal(m.version, pkg.version, `${p} has the main package's version`);
    assert.deepEqual(m.os, [spec.os], p);
    assert.deepEqual(m.cpu, [spec.cpu], p);
    assert.deepEqual(m.libc, spec.libc ? [spec.libc] : undefined, p);
    assert.deepEqual(m.files, [`rpm2.${p}.node`, 'rpm2d'], p);
  }
  assert.equal(pkg.optionalDependencies, undefined, 'the checkout asks the registry for no platform package');
  assert.ok(!pkg.files.some((f) => /rpm2d|\.node$/.test(f)), 'the main package ships no binary');
});

test('bin/rpm2 and bin/rpm2-runtime are the same launcher', () => {
  assert.equal(fs.readFileSync(path.join(h.ROOT, 'bin', 'rpm2'), 'utf8'), fs.readFileSync(path.join(h.ROOT, 'bin', 'rpm2-runtime'), 'utf8'));
});

test('a platform with no package: one line naming it, from the CLI and from require()', () => {
  const env = { ...process.env, RPM2_PLATFORM: 'freebsd-x64' };
  for (const bin of ['rpm2', 'rpm2-runtime']) {
    const r = spawnSync(path.join(h.ROOT, 'bin', bin), ['list'], { env, encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`^\\[${bin}\\]\\[ERROR\\] no native rpm2d for freebsd-x64: rpm2 is prebuilt only for linux-x64-gnu, `));
  }
  const code = "try { require('./index.js'); console.log('loaded') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }";
  const r = spawnSync(process.execPath, ['-e', code], { cwd: h.ROOT, env, encoding: 'utf8' });
  const e = JSON.parse(r.stdout);
  assert.equal(e.code, 'RPM2_NO_NATIVE');
  assert.doesNotMatch(e.message, /\n/);
  assert.match(e.message, /^rpm2: no native addon for freebsd-x64: /);
  // A prebuilt platform whose package is missing: the message names the package to install.
  const arm = spawnSync(path.join(h.ROOT, 'bin', 'rpm2'), ['list'], { env: { ...env, RPM2_PLATFORM: 'linux-arm64-gnu' }, encoding: 'utf8' });
  assert.match(arm.stderr, new RegExp(`install the package ${mainPackage().npmName}-linux-arm64-gnu `), arm.stderr);
});

test('npm install -g of the packed tarballs without a Rust toolchain: rpm2 and require() work', { timeout: 240000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-install-'));
  const home = path.join(tmp, 'home');
  t.after(async () => {
    await h.cleanup(home, { keep: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const dest = path.join(tmp, 'dist');
  const out = execFileSync(process.execPath, [path.join(h.ROOT, 'scripts', 'package.js'), '--from-build', '--dest', dest], { cwd: h.ROOT, encoding: 'utf8' });
  const tarballs = out.split('\n').filter((l) => l.startsWith('packed ')).map((l) => path.resolve(h.ROOT, l.slice(7)));
  assert.equal(tarballs.length, 2, out);
  const [plat, main] = tarballs;
  const { pkg, npmName } = mainPackage();

  // The main tarball: the registry name, the six platform packages at its version, no binary.
  const mm = tarManifest(main);
  assert.equal(mm.name, npmName);
  assert.equal(mm.private, undefined);
  assert.deepEqual(mm.optionalDependencies, Object.fromEntries(Object.keys(PLATFORMS).map((p) => [`${npmName}-${p}`, pkg.version])));
  assert.deepEqual(tarFiles(main).filter((f) => /rpm2d$|\.node$/.test(f)), []);
  assert.deepEqual(tarFiles(plat).sort(), ['package/package.json', 'package/rpm2'.concat('.', PLATFORM, '.node'), 'package/rpm2d'].sort());

  const PATH = pathWithoutRust(path.join(tmp, 'shims'));
  const env = { ...h.homeEnv(home), PATH };
  assert.equal(spawnSync('cargo', ['--version'], { env }).error?.code, 'ENOENT', 'cargo is off PATH');
  const prefix = path.join(tmp, 'prefix');
  const npm = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--offline', '--cache', path.join(tmp, 'npm-cache'),
    '--no-audit', '--no-fund', '--loglevel', 'error', plat, main], { env, encoding: 'utf8', timeout: 180000 });
  assert.equal(npm.status, 0, `npm install failed:\n${npm.stdout}\n${npm.stderr}`);

  const bin = path.join(prefix, 'bin', 'rpm2');
  const run = (args) => spawnSync(bin, args, { env, cwd: tmp, encoding: 'utf8', timeout: 60000 });
  const v = run(['--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout.trim(), pkg.version);

  const start = run(['start', path.join(h.FIXTURES, 'cli-idle.js'), '--name', 'installed']);
  assert.equal(start.status, 0, start.stdout + start.stderr);
  let list;
  await h.waitFor(() => {
    const r = run(['jlist']);
    list = r.status === 0 ? JSON.parse(r.stdout) : [];
    return list.length === 1 && list[0].pm2_env.status === 'online';
  }, { message: 'the app online in the installed rpm2' });
  assert.equal(list[0].name, 'installed');
  // The daemon is the platform package's rpm2d.
  const daemon = h.daemonPid(home);
  assert.match(fs.readlinkSync(`/proc/${daemon}/exe`), new RegExp(`${npmName.split('/').pop()}-${PLATFORM}/rpm2d$`));

  const code = `require(${JSON.stringify(path.join(prefix, 'lib', 'node_modules', npmName))}).list()
    .then((l) => console.log(JSON.stringify(l.map((p) => [p.name, p.pm2_env.status]))), (e) => { console.error(e.message); process.exit(1); })`;
  const api = spawnSync(process.execPath, ['-e', code], { env, cwd: tmp, encoding: 'utf8', timeout: 60000 });
  assert.equal(api.status, 0, api.stderr);
  assert.deepEqual(JSON.parse(api.stdout), [['installed', 'online']]);

  const kill = run(['kill']);
  assert.equal(kill.status, 0, kill.stdout + kill.stderr);
  await h.waitFor(() => !h.isAlive(daemon), { message: 'the daemon gone after rpm2 kill' });
});
