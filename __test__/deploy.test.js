'use strict';
// End-to-end tests of `rpm2 deploy` (issue 16): two real sshd servers on two 127.0.0.1 ports (keys
// made here, in a temporary folder), a bare git repository as `repo` with a tiny HTTP app, and rpm2
// itself (this checkout's bin/rpm2, one RPM2_HOME per "host") as the process manager that post-deploy
// runs. The tests run in order and build on each other: setup, deploy, update, queries, exec, revert,
// a failing post-deploy, an unreachable host. Skipped (with the reason) only where sshd cannot run.
//   node --test __test__/deploy.test.js

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile, execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const h = require('./helpers');

const PM2 = path.join(h.ROOT, 'node_modules', '.bin', 'pm2');
const SSHD = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'].find((p) => fs.existsSync(p));

/** Why the suite cannot run here (null when it can). */
function missing() {
  if (process.platform !== 'linux') return 'not Linux';
  if (!SSHD) return 'sshd (Debian: apt-get install -y --no-install-recommends openssh-server)';
  for (const bin of ['ssh', 'ssh-keygen', 'git']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} is not installed`;
  }
  // As root sshd wants its privilege separation folder (Debian makes it when the service starts).
  if (process.getuid() === 0 && !fs.existsSync('/run/sshd')) {
    try {
      fs.mkdirSync('/run/sshd', { mode: 0o755 });
    } catch (e) {
      return `sshd's /run/sshd cannot be created (${e.message})`;
    }
  }
  // sshd's own check of a config like the tests' (host key, privilege separation, options).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-deploy-probe-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'hostkey')], { stdio: 'ignore' });
    const r = spawnSync(SSHD, ['-t', '-f', sshdConfig(dir, 'probe', 22)], { encoding: 'utf8' });
    if (r.status !== 0) return `sshd refuses its config (${(r.stderr || '').trim().split('\n')[0] || `exit ${r.status}`})`;
  } catch (e) {
    return `cannot prepare sshd (${e.message})`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return null;
}

/** Writes `<dir>/<name>.conf`: sshd on 127.0.0.1:port, keys and pid file in `dir`; returns its path. */
function sshdConfig(dir, name, port) {
  const conf = path.join(dir, `${name}.conf`);
  fs.writeFileSync(conf, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${path.join(dir, 'hostkey')}`,
    `PidFile ${path.join(dir, `${name}.pid`)}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    '',
  ].join('\n'));
  return conf;
}

const SKIP = missing();

function git(cwd, ...args) {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@t',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@t',
    },
  }).trim();
}

/** GET http://127.0.0.1:port/ (body, or null when nothing answers). */
function get(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
  });
}

/** Waits until the app on `port` answers `body`. */
async function serves(port, body, what) {
  let last = null;
  await h.waitFor(async () => (last = await get(port)) === body, {
    timeout: 20000,
    message: `${what}: port ${port} should answer ${JSON.stringify(body)} (last: ${JSON.stringify(last)})`,
  });
}

/** Starts sshd on `port` with the config in `dir`; resolves its ChildProcess once it listens. */
async function startSshd(dir, name, port) {
  const conf = sshdConfig(dir, name, port);
  const log = fs.openSync(path.join(dir, `${name}.log`), 'a');
  const child = spawn(SSHD, ['-D', '-e', '-f', conf], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  await h.waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  }), { timeout: 10000, message: `sshd ${name} listening on ${port} (log: ${path.join(dir, `${name}.log`)})` });
  return child;
}

/** The app, its pre-flight check and the ecosystem file, as committed in the repository. */
function writeApp(work, version, { failOn = '' } = {}) {
  fs.writeFileSync(path.join(work, 'VERSION'), `${version}\n`);
  fs.writeFileSync(path.join(work, 'app.js'), [
    "const fs = require('fs');",
    "const v = fs.readFileSync(__dirname + '/VERSION', 'utf8').trim();",
    "require('http').createServer((q, s) => s.end(v + ' ' + process.env.HOST_TAG)).listen(+process.env.APP_PORT, '127.0.0.1');",
    '',
  ].join('\n'));
  // post-deploy runs it first: a release can be broken on one host only (its HOST_TAG).
  fs.writeFileSync(path.join(work, 'check.js'),
    `if (process.env.HOST_TAG === ${JSON.stringify(failOn)}) { console.error('check failed on ' + process.env.HOST_TAG); process.exit(3); }\n`);
}

describe('rpm2 deploy over ssh and git', { skip: SKIP ? `cannot start sshd here: ${SKIP}` : false }, () => {
  const s = {}; // shared state: dirs, ports, processes

  before(async () => {
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-deploy-'));
    const d = s.dir;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'hostkey')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'client')]);
    fs.copyFileSync(path.join(d, 'client.pub'), path.join(d, 'authorized_keys'));
    s.portA = await h.freePort();
    s.portB = await h.freePort();
    s.deadPort = await h.freePort(); // nothing listens there
    s.appA = await h.freePort();
    s.appB = await h.freePort();
    s.sshd = [await startSshd(d, 'a', s.portA), await startSshd(d, 'b', s.portB)];
    s.appP = await h.freePort();
    s.homes = { a: path.join(d, 'home-a'), b: path.join(d, 'home-b'), p: path.join(d, 'home-p') };
    s.paths = { a: path.join(d, 'host-a', 'app'), b: path.join(d, 'host-b', 'app'), p: path.join(d, 'host-p', 'app') };
    // The repository: a bare one (`repo`) and the developer's clone (where `rpm2 deploy` runs).
    s.repo = path.join(d, 'repo.git');
    s.work = path.join(d, 'work');
    git(d, 'init', '-q', '--bare', '-b', 'main', s.repo);
    git(d, 'clone', '-q', s.repo, s.work);
    git(s.work, 'checkout', '-q', '-b', 'main');
    const ssh = ['StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'LogLevel=ERROR'];
    const binDir = path.dirname(h.BIN);
    const host = (tag, port) => ({
      host: '127.0.0.1',
      port,
      path: s.paths[tag],
      env: {
        RPM2_HOME: s.homes[tag],
        APP_PORT: String({ a: s.appA, b: s.appB, p: s.appP }[tag]),
        HOST_TAG: tag,
        PATH: `${binDir}:${path.dirname(process.execPath)}:${process.env.PATH}`,
        NO_COLOR: '1',
      },
    });
    const section = (hosts) => ({
      host: hosts,
      ref: 'origin/main',
      repo: s.repo,
      key: path.join(d, 'client'),
      ssh_options: ssh,
      'pre-setup': 'pre-setup.sh hello',
      'post-setup': 'ls VERSION',
      'pre-deploy-local': 'echo "local check in $(basename "$PWD")"',
      'pre-deploy': 'test -d "$SHARED/logs"',
      'post-deploy': 'node check.js && rpm2 startOrReload ecosystem.config.js --env production',
    });
    const eco = {
      apps: [{ name: 'web', script: 'app.js', env_production: { NODE_ENV: 'production' } }],
      deploy: {
        production: section([host('a', s.portA), host('b', s.portB)]),
        partial: section([host('a', s.portA), { host: '127.0.0.1', port: s.deadPort, path: path.join(d, 'host-dead') }]),
        broken: { host: '127.0.0.1', repo: s.repo, path: '/x' },
        // One host as PM2's deploy script reads it too (string values only: it matches them as text).
        both: {
          ...section('127.0.0.1'),
          port: String(s.portA),
          ssh_options: ssh.map((o) => o),
          path: s.paths.p,
          env: host('p', s.portA).env,
        },
      },
    };
    // pre-setup names a file here (not committed): its content runs on the host with `bash -s`.
    fs.writeFileSync(path.join(s.work, 'pre-setup.sh'), 'echo "pre-setup script says $1 from $(pwd)"\n');
    fs.writeFileSync(path.join(s.work, '.gitignore'), 'pre-setup.sh\n');
    fs.writeFileSync(path.join(s.work, 'ecosystem.config.js'), `module.exports = ${JSON.stringify(eco, null, 2)};\n`);
    s.commit = (version, opts) => {
      writeApp(s.work, version, opts);
      git(s.work, 'add', '-A');
      git(s.work, 'commit', '-q', '-m', version);
      git(s.work, 'push', '-q', 'origin', 'main');
      return git(s.work, 'rev-parse', 'HEAD');
    };
    s.c1 = s.commit('v1');
  });

  after(async () => {
    for (const home of Object.values(s.homes || {})) {
      if (fs.existsSync(path.join(home, 'rpc.sock'))) {
        spawnSync(path.join(h.ROOT, 'rpm2d'), ['kill'], { env: { ...process.env, RPM2_HOME: home }, timeout: 20000 });
      }
      await h.cleanup(home, { keep: true });
    }
    for (const p of s.sshd || []) {
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (s.dir) fs.rmSync(s.dir, { recursive: true, force: true });
  });

  const deploy = (args, opts = {}) => h.rpm2(['deploy', ...args], { cwd: s.work, timeout: 120000, ...opts });
  const deploys = (tag) => fs.readFileSync(path.join(s.paths[tag], '.deploys'), 'utf8').trim().split('\n');

  test('setup clones the ref on every host into PM2\'s layout', async () => {
    const r = await deploy(['ecosystem.config.js', 'production', 'setup']);
    assert.equal(r.code, 0, h.show(r));
    for (const tag of ['a', 'b']) {
      const p = s.paths[tag];
      assert.ok(fs.existsSync(path.join(p, 'source', '.git')), `${tag}: source/ is a clone`);
      assert.equal(fs.readlinkSync(path.join(p, 'current')), path.join(p, 'source'), `${tag}: current -> source`);
      assert.ok(fs.statSync(path.join(p, 'shared', 'logs')).isDirectory(), `${tag}: shared/logs`);
      assert.ok(fs.statSync(path.join(p, 'shared', 'pids')).isDirectory(), `${tag}: shared/pids`);
    }
    assert.match(r.stdout, new RegExp(`\\[127\\.0\\.0\\.1:${s.portA}\\] pre-setup script says hello from `));
    // Each line says which host it comes from; post-setup ran in current/.
    assert.match(r.stdout, new RegExp(`\\[127\\.0\\.0\\.1:${s.portA}\\] VERSION`));
    assert.match(r.stdout, new RegExp(`\\[127\\.0\\.0\\.1:${s.portB}\\] ○ setup complete`));
    const t = h.parseTable(r.stdout);
    assert.deepEqual(t.headers, ['host', 'ref', 'result', 'seconds']);
    assert.deepEqual(t.rows.map((x) => [x.host, x.result]), [[`127.0.0.1:${s.portA}`, 'ok'], [`127.0.0.1:${s.portB}`, 'ok']]);
    assert.match(r.stdout, /--> Success/);
    // A second setup is refused with what to run instead.
    const again = await deploy(['ecosystem.config.js', 'production', 'setup']);
    assert.notEqual(again.code, 0, h.show(again));
    assert.match(again.stderr, new RegExp(`^\\[127\\.0\\.0\\.1:${s.portA}\\] ✖ already set up: .*host-a/app/source is a clone \\(deploy with \`rpm2 deploy production\`\\)$`, 'm'));
  });

  test('deploy (the default ecosystem file) runs post-deploy with rpm2: the app answers on every host', async () => {
    const r = await deploy(['production']);
    assert.equal(r.code, 0, h.show(r));
    // pre-deploy-local ran here, once.
    assert.equal(r.stdout.split('[local] local check in work\n').length, 2, h.show(r));
    await serves(s.appA, 'v1 a', 'host a');
    await serves(s.appB, 'v1 b', 'host b');
    assert.deepEqual(deploys('a'), [s.c1]);
    assert.deepEqual(deploys('b'), [s.c1]);
    const t = h.parseTable(r.stdout);
    assert.equal(t.rows[0].ref, `origin/main ${s.c1.slice(0, 7)}`);
    // The app runs under the host's own RPM2_HOME.
    const list = await h.jlist(s.homes.a);
    assert.deepEqual(list.map((p) => [p.name, p.pm2_env.status]), [['web', 'online']]);
  });

  test('update: a new commit is served after `deploy <env> update`', async () => {
    s.c2 = s.commit('v2');
    const r = await deploy(['ecosystem.config.js', 'production', 'update']);
    assert.equal(r.code, 0, h.show(r));
    await serves(s.appA, 'v2 a', 'host a');
    await serves(s.appB, 'v2 b', 'host b');
    assert.deepEqual(deploys('a'), [s.c1, s.c2]);
  });

  test('curr, prev and list read each host', async () => {
    const pa = `[127.0.0.1:${s.portA}]`;
    const pb = `[127.0.0.1:${s.portB}]`;
    const curr = await deploy(['production', 'curr']);
    assert.equal(curr.code, 0, h.show(curr));
    assert.ok(curr.stdout.includes(`${pa} ${s.c2.slice(0, 7)}\n`), h.show(curr));
    assert.ok(curr.stdout.includes(`${pb} ${s.c2.slice(0, 7)}\n`), h.show(curr));
    const prev = await deploy(['production', 'prev']);
    assert.equal(prev.code, 0, h.show(prev));
    assert.ok(prev.stdout.includes(`${pa} ${s.c1}\n`), h.show(prev));
    const list = await deploy(['production', 'list']);
    assert.equal(list.code, 0, h.show(list));
    assert.ok(list.stdout.includes(`${pb} 0\t${s.c2}\n${pb} 1\t${s.c1}\n`) || list.stdout.includes(`${pb} 0\t${s.c2}`), h.show(list));
    assert.ok(list.stdout.includes(`${pb} 1\t${s.c1}`), h.show(list));
  });

  test('exec runs a command in current/ with the deploy env', async () => {
    const r = await deploy(['production', 'exec', 'cat VERSION && rpm2 jlist | node -e "process.stdin.on(\'data\',d=>console.log(JSON.parse(d)[0].name))"']);
    assert.equal(r.code, 0, h.show(r));
    assert.ok(r.stdout.includes(`[127.0.0.1:${s.portA}] v2\n`), h.show(r));
    assert.ok(r.stdout.includes(`[127.0.0.1:${s.portB}] web\n`), h.show(r));
    const bad = await deploy(['production', 'exec', 'exit 7']);
    assert.notEqual(bad.code, 0, h.show(bad));
    assert.match(bad.stderr, /exec failed \(exit 7\)/);
  });

  test("require('rpm2').deploy runs the same deploy (PM2's rawArgs form, an array, a callback)", async () => {
    // In a child Node, so its progress lines stay out of this test's output.
    const script = `
      const rpm2 = require(${JSON.stringify(h.ROOT)});
      const api = new rpm2.custom({ cwd: ${JSON.stringify(s.work)} });
      (async () => {
        const out = {};
        out.curr = await api.deploy('ecosystem.config.js', { rawArgs: ['node', 'pm2', 'deploy', 'ecosystem.config.js', 'production', 'curr'] });
        out.failed = await api.deploy('ecosystem.config.js', ['production', 'exec', 'test "$HOST_TAG" = a'])
          .then(() => null, (e) => ({ code: e.code, message: e.message, detail: e.detail }));
        out.missing = await new Promise((resolve) => api.deploy('ecosystem.config.js', ['nope'], (e) => resolve(e && e.message)));
        console.log('RESULT ' + JSON.stringify(out));
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000, env: { ...process.env, NO_COLOR: '1' } });
    const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(line, `no result\n${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(line.slice(7));
    assert.equal(out.curr.env, 'production');
    assert.deepEqual(out.curr.hosts.map((x) => [x.host, x.ok, x.error]), [[`127.0.0.1:${s.portA}`, true, null], [`127.0.0.1:${s.portB}`, true, null]]);
    assert.ok(r.stdout.includes(`[127.0.0.1:${s.portA}] ${s.c2.slice(0, 7)}`), r.stdout);
    assert.equal(out.failed.code, 'deploy_failed');
    assert.equal(out.failed.message, `Deploy failed on 1 of 2 host(s): 127.0.0.1:${s.portB}`);
    assert.deepEqual(out.failed.detail.hosts.map((x) => x.ok), [true, false]);
    assert.match(out.missing, /^nope environment is not defined in ecosystem.config.js/);
  });

  test('revert 1 goes back to the previous deploy, then update comes forward again', async () => {
    const r = await deploy(['production', 'revert', '1']);
    assert.equal(r.code, 0, h.show(r));
    await serves(s.appA, 'v1 a', 'host a after revert');
    await serves(s.appB, 'v1 b', 'host b after revert');
    assert.deepEqual(deploys('a'), [s.c1, s.c2, s.c1]);
    const curr = await deploy(['production', 'current']);
    assert.ok(curr.stdout.includes(`${s.c1.slice(0, 7)}\n`), h.show(curr));
    const up = await deploy(['production']);
    assert.equal(up.code, 0, h.show(up));
    await serves(s.appA, 'v2 a', 'host a after update');
    await serves(s.appB, 'v2 b', 'host b after update');
    // More reverts than deploys: a clear error, nothing changed.
    const far = await deploy(['production', 'revert', '9']);
    assert.notEqual(far.code, 0, h.show(far));
    assert.match(far.stderr, /4 deploy\(s\) recorded in .*\.deploys, so there is no deploy 9 before the current one/);
    await serves(s.appA, 'v2 a', 'host a after a refused revert');
  });

  test('a failing post-deploy keeps the previous release on that host; the other is deployed', async () => {
    s.c3 = s.commit('v3', { failOn: 'b' });
    const r = await deploy(['production']);
    assert.equal(r.code, 1, h.show(r));
    await serves(s.appA, 'v3 a', 'host a');
    await serves(s.appB, 'v2 b', 'host b keeps v2');
    // b's checkout is back on v2 and the failed deploy is not in its log.
    assert.equal(fs.readFileSync(path.join(s.paths.b, 'current', 'VERSION'), 'utf8').trim(), 'v2');
    assert.equal(deploys('b').at(-1), s.c2);
    assert.equal(deploys('a').at(-1), s.c3);
    const pb = `[127.0.0.1:${s.portB}]`;
    assert.ok(r.stdout.includes(`${pb} check failed on b`) || r.stderr.includes(`${pb} check failed on b`), h.show(r));
    assert.match(r.stderr, new RegExp(`^\\[127\\.0\\.0\\.1:${s.portB}\\] ✖ post-deploy failed \\(exit 3\\): check failed on b; ${s.c2.slice(0, 7)} is still the current release$`, 'm'));
    assert.match(r.stderr, new RegExp(`Deploy failed on 1 of 2 host\\(s\\): 127\\.0\\.0\\.1:${s.portB}$`, 'm'));
    const t = h.parseTable(r.stdout);
    assert.equal(t.rows[0].result, 'ok');
    assert.match(t.rows[1].result, /^failed: post-deploy failed/);
    assert.equal(t.rows[1].ref, `origin/main ${s.c2.slice(0, 7)}`);
    assert.ok(Number(t.rows[1].seconds) >= 0);
  });

  test('an unreachable host fails with one line naming it; the others are still deployed', async () => {
    s.c4 = s.commit('v4');
    const r = await deploy(['partial']);
    assert.equal(r.code, 1, h.show(r));
    await serves(s.appA, 'v4 a', 'host a');
    const dead = `127.0.0.1:${s.deadPort}`;
    const lines = h.lines(r.stderr).filter((l) => l.includes('✖'));
    assert.equal(lines.length, 1, h.show(r));
    assert.match(lines[0], new RegExp(`^\\[${dead}\\] ✖ cannot reach 127\\.0\\.0\\.1 over ssh: ssh: connect to host 127\\.0\\.0\\.1 port ${s.deadPort}: Connection refused$`));
    const t = h.parseTable(r.stdout);
    assert.deepEqual(t.rows.map((x) => x.host), [`127.0.0.1:${s.portA}`, dead]);
    assert.equal(t.rows[0].result, 'ok');
    assert.match(t.rows[1].result, /^failed: cannot reach 127\.0\.0\.1 over ssh/);
  });

  test('a host deployed by PM2 is updated by rpm2, and back', { skip: fs.existsSync(PM2) ? false : 'pm2 is not installed' }, async () => {
    const pm2Home = fs.mkdtempSync(path.join(os.tmpdir(), 'rpm2-deploy-pm2-'));
    const pm2 = (args) => new Promise((resolve) => {
      // USER names the log PM2's deploy script appends to (/tmp/pm2-deploy-$USER.log): one of ours.
      execFile(PM2, args, { cwd: s.work, env: { ...process.env, PM2_HOME: pm2Home, NO_COLOR: '1', USER: path.basename(pm2Home) }, timeout: 120000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
    try {
      const setup = await pm2(['deploy', 'ecosystem.config.js', 'both', 'setup']);
      assert.equal(setup.code, 0, h.show(setup));
      const first = await pm2(['deploy', 'ecosystem.config.js', 'both']);
      assert.equal(first.code, 0, h.show(first));
      await serves(s.appP, 'v4 p', 'deployed by PM2');
      s.c5 = s.commit('v5');
      const up = await deploy(['both']);
      assert.equal(up.code, 0, h.show(up));
      await serves(s.appP, 'v5 p', 'updated by rpm2');
      assert.deepEqual(deploys('p'), [s.c4, s.c5]);
      const back = await pm2(['deploy', 'ecosystem.config.js', 'both', 'revert', '1']);
      assert.equal(back.code, 0, h.show(back));
      await serves(s.appP, 'v4 p', 'reverted by PM2');
      const curr = await deploy(['both', 'curr']);
      assert.ok(curr.stdout.includes(`${s.c4.slice(0, 7)}\n`), h.show(curr));
    } finally {
      spawnSync(PM2, ['kill'], { env: { ...process.env, PM2_HOME: pm2Home }, timeout: 30000 });
      fs.rmSync(pm2Home, { recursive: true, force: true });
      fs.rmSync(`/tmp/pm2-deploy-${path.basename(pm2Home)}.log`, { force: true });
    }
  });

  test('errors before any host is contacted are one line, as PM2\'s (exit 1)', async () => {
    const missingEnv = await deploy(['staging']);
    assert.equal(missingEnv.code, 1, h.show(missingEnv));
    assert.deepEqual(h.lines(missingEnv.stderr), [
      '[rpm2][ERROR] staging environment is not defined in ecosystem.config.js (it defines production, partial, broken, both)',
    ]);
    const broken = await deploy(['ecosystem.config.js', 'broken', 'setup']);
    assert.equal(broken.code, 1, h.show(broken));
    assert.deepEqual(h.lines(broken.stderr), [
      '[rpm2][ERROR] ecosystem.config.js: deploy.broken.ref: missing (the ref to deploy, e.g. "origin/main")',
    ]);
    const nofile = await deploy(['production'], { cwd: s.dir });
    assert.equal(nofile.code, 1, h.show(nofile));
    assert.match(nofile.stderr, /^\[rpm2\]\[ERROR\] no deploy file here: rpm2 looks for ecosystem.json, .*package.json in /);
    const help = await deploy([]);
    assert.equal(help.code, 0, h.show(help));
    assert.match(help.stdout, /revert \[n\]/);
    // Local changes that are not committed stop a deploy (PM2's check), --force skips it.
    fs.writeFileSync(path.join(s.work, 'VERSION'), 'dirty\n');
    const dirty = await deploy(['production']);
    assert.equal(dirty.code, 1, h.show(dirty));
    assert.match(dirty.stderr, /commit or stash your changes before deploying/);
    git(s.work, 'checkout', '--', 'VERSION');
  });
});
