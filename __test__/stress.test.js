// Stress (issue 17): random start/stop/restart/reload/delete/scale/list commands, half through the CLI
// and half through require('rpm2'), on 20 apps (6 in cluster mode) from 8 parallel clients. Then the
// daemon must be alive, the list must match the processes that really exist (no orphan, no online
// app with a dead pid, no duplicate), and the daemon's RSS and open fds must be back near where they
// started. Bounded: COMMANDS commands (about 2-3 minutes on a 2-core machine); 127.0.0.1 only (the
// apps open no port).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const h = require('./helpers');

/** Commands in total (all clients together). 2,000 takes about 2-3 minutes on 2 cores. */
const COMMANDS = Number(process.env.RPM2_STRESS_COMMANDS || 2000);
/** Parallel clients. */
const CLIENTS = 8;
/** Apps: names s0..s19; the first CLUSTER_APPS run in cluster mode. */
const APPS = 20;
const CLUSTER_APPS = 6;
/** Bounds on the daemon after the run, compared with after the warm-up (both with no app). */
const RSS_SLACK_KB = 16 * 1024;
const FD_SLACK = 8;

const IDLE = h.fixture('cli-idle.js');

function daemonFigures(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number((status.match(/^VmRSS:\s+(\d+)/m) || [])[1] || 0);
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  return { rss, fds };
}

// A small deterministic generator, so a failure can be replayed with the same seed.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function startArgs(i) {
  const name = `s${i}`;
  return i < CLUSTER_APPS ? [IDLE, '--name', name, '-i', '2'] : [IDLE, '--name', name];
}

async function runOne(api, home, rand, counts) {
  const i = Math.floor(rand() * APPS);
  const name = `s${i}`;
  const viaApi = rand() < 0.5;
  const ops = ['start', 'start', 'stop', 'restart', 'reload', 'delete', 'scale', 'list'];
  const op = ops[Math.floor(rand() * ops.length)];
  counts[op] = (counts[op] || 0) + 1;
  if (viaApi) {
    const call = {
      start: () => api.start(i < CLUSTER_APPS
        ? { script: IDLE, name, instances: 2, exec_mode: 'cluster' } : { script: IDLE, name }),
      stop: () => api.stop(name),
      restart: () => api.restart(name),
      reload: () => api.reload(name),
      delete: () => api.delete(name),
      scale: () => api._call('scale', { name, number: String(1 + Math.floor(rand() * 3)) }),
      list: () => api.list(),
    }[op];
    try {
      await call();
    } catch (e) {
      if (/does not answer|closed the connection|lost the connection/.test(e.message)) throw e;
      counts.refused = (counts.refused || 0) + 1;
    }
    return;
  }
  const args = {
    start: () => ['start', ...startArgs(i)],
    stop: () => ['stop', name],
    restart: () => ['restart', name],
    reload: () => ['reload', name],
    delete: () => ['delete', name],
    scale: () => ['scale', name, String(1 + Math.floor(rand() * 3))],
    list: () => ['jlist'],
  }[op]();
  const r = await h.rpm2(['--silent', ...args], { home, timeout: 60000 });
  assert.notEqual(r.code, null, `rpm2 ${args.join(' ')} hung: ${h.show(r)}`);
  if (/does not answer|panicked|closed the connection/.test(r.stderr)) assert.fail(`rpm2 ${args.join(' ')}: ${h.show(r)}`);
  if (r.code !== 0) counts.refused = (counts.refused || 0) + 1;
}

// The list and the machine agree: every online entry has a live pid, no pid or pm_id twice, and every
// process that says it belongs to this home (other than the daemon) is in the list.
async function checkConsistent(home, dpid) {
  let why = '';
  const deadline = Date.now() + 30000;
  for (;;) {
    const list = await h.jlist(home);
    const ids = list.map((p) => p.pm_id);
    assert.equal(new Set(ids).size, ids.length, `duplicate pm_id: ${ids}`);
    const pids = list.filter((p) => p.pid).map((p) => p.pid);
    assert.equal(new Set(pids).size, pids.length, `duplicate pid: ${pids}`);
    const busy = list.filter((p) => ['launching', 'stopping', 'waiting restart'].includes(p.pm2_env.status));
    const dead = list.filter((p) => p.pm2_env.status === 'online' && !h.isAlive(p.pid));
    const known = new Set(pids);
    const strays = h.pidsOfHome(home).filter((pid) => pid !== dpid && !known.has(pid) && h.cmdline(pid).includes(IDLE));
    why = [
      busy.length ? `not settled: ${busy.map((p) => `${p.name}:${p.pm_id}:${p.pm2_env.status}`)}` : '',
      dead.length ? `online with a dead pid: ${dead.map((p) => `${p.name}:${p.pm_id}:${p.pid}`)}` : '',
      strays.length ? `processes not in the list: ${strays.map((pid) => `${pid} ${JSON.stringify(h.procEnv(pid).name)} pm_id=${h.procEnv(pid).pm_id}`)}` : '',
    ].filter(Boolean).join('; ');
    if (!why) return { list, stuck: [] };
    // Entries left in 'stopping' (and nothing else wrong) are returned, so that their own subtest
    // names them: this test once found a delete racing another delete (or a scale-down) that left
    // the processes it had not forgotten yet listed as 'stopping' for ever (daemon::tests has the
    // unit regression test).
    if (Date.now() > deadline && !dead.length && !strays.length && busy.every((p) => p.pm2_env.status === 'stopping')) {
      return { list, stuck: busy.map((p) => `${p.name}:${p.pm_id}:${p.pid}`) };
    }
    if (Date.now() > deadline) assert.fail(`the list does not match the processes: ${why}\n${JSON.stringify(list.map((p) => [p.name, p.pm_id, p.pm2_env.status, p.pid]))}`);
    await h.sleep(250);
  }
}

test(`stress: ${COMMANDS} random commands from ${CLIENTS} clients on ${APPS} apps`, { timeout: 15 * 60 * 1000 }, async (t) => {
  const { home } = h.useHome(t, 'rpm2-stress-');
  const api = new (require('..').custom)({ home });
  t.after(() => api.disconnect());
  // Warm-up: every app once, then none; the figures after it are the baseline.
  for (let i = 0; i < APPS; i++) await h.ok(['--silent', 'start', ...startArgs(i)], { home });
  await h.ok(['--silent', 'delete', 'all'], { home });
  const dpid = h.daemonPid(home);
  assert.ok(dpid > 0);
  const before = daemonFigures(dpid);

  const began = Date.now();
  const counts = {};
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const rand = rng(0x5eed + c * 7919);
    while (next < COMMANDS) {
      next += 1;
      await runOne(api, home, rand, counts);
    }
  }));
  const seconds = ((Date.now() - began) / 1000).toFixed(1);

  assert.ok(h.isAlive(dpid), 'the daemon is alive');
  assert.equal(h.daemonPid(home), dpid, 'the same daemon still runs');
  const { list, stuck } = await checkConsistent(home, dpid);
  await t.test('no process stays in stopping', () => {
    assert.deepEqual(stuck, [], 'processes listed as stopping 30 s after the last command');
  });
  const during = daemonFigures(dpid);

  await h.rpm2(['--silent', 'delete', 'all'], { home, timeout: 60000 });
  await h.waitFor(() => h.pidsOfHome(home).filter((p) => p !== dpid && h.cmdline(p).includes(IDLE)).length === 0,
    { message: 'every app process is gone after delete all' });
  assert.deepEqual((await h.jlist(home)).map((p) => `${p.name}:${p.pm_id}:${p.pm2_env.status}`), [], 'the list is empty after delete all');
  // Let the daemon release what it freed (sampler tick, closed channels).
  await h.sleep(1500);
  const after = daemonFigures(dpid);
  const line = `stress: ${COMMANDS} commands in ${seconds}s (${JSON.stringify(counts)}); ${list.length} processes at the end; `
    + `daemon RSS ${before.rss} kB -> ${during.rss} kB with apps -> ${after.rss} kB, fds ${before.fds} -> ${during.fds} -> ${after.fds}`;
  t.diagnostic(line);
  console.log(line);
  assert.ok(after.fds <= before.fds + FD_SLACK, line);
  assert.ok(after.rss <= before.rss + RSS_SLACK_KB, line);
});
