'use strict';
// End-to-end tests of logs (issue 5): line assembly with date prefixes, JSON lines, combined and
// per-instance files, /dev/null, relative paths, `rpm2 logs` (tail, filters, formats, streaming),
// flush and reloadLogs while apps write, built-in rotation (burst, retain, gzip, off switches),
// unwritable paths, and the daemon's own log rotation. Each test has its own RPM2_HOME; no assertion
// depends on elapsed time (state is polled with waitFor).

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const h = require('./helpers');
const { ok } = h;

const fx = h.fixture;
const PAD = 'x'.repeat(40);
const ROTATED = (stem) => new RegExp(`^${stem}__(\\d{4}-\\d\\d-\\d\\d_\\d\\d-\\d\\d-\\d\\d)(?:-(\\d+))?\\.log(\\.gz)?$`);

function read(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function linesOf(file) {
  return read(file).split('\n').filter((l) => l !== '');
}

/** Rotated files of `<dir>/<stem>.log`, oldest first: [{file, gz}] sorted by (date, counter). */
function rotated(dir, stem) {
  const re = ROTATED(stem);
  return fs.readdirSync(dir)
    .map((f) => ({ f, m: f.match(re) }))
    .filter((x) => x.m)
    .map((x) => ({ file: path.join(dir, x.f), date: x.m[1], n: Number(x.m[2] || 0), gz: !!x.m[3] }))
    .sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.n - b.n));
}

function contentOf(r) {
  const buf = fs.readFileSync(r.file);
  return (r.gz ? zlib.gunzipSync(buf) : buf).toString('utf8');
}

/** Every line of the rotated files then the current file, in order. */
function allLines(dir, stem) {
  let text = '';
  for (const r of rotated(dir, stem)) text += contentOf(r);
  text += read(path.join(dir, `${stem}.log`));
  return text.split('\n').filter((l) => l !== '');
}

function writeEco(dir, apps, name = 'eco.json') {
  const f = path.join(dir, name);
  fs.writeFileSync(f, JSON.stringify({ apps }));
  return f;
}

/**
 * Runs `rpm2 logs ...args` in the background and resolves its stdout once `pred(stdout)` holds;
 * the process is SIGKILLed in every case.
 */
async function streamUntil(home, args, pred, message) {
  const child = spawn(h.BIN, ['logs', ...args], { env: h.homeEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  try {
    await h.waitFor(() => pred(out), { timeout: 20000, message: `${message}; stdout so far:\n${out}\nstderr:\n${err}` });
    return out;
  } finally {
    child.kill('SIGKILL');
  }
}

describe('log files', () => {
  test('--time: a partial line is held until its end, so it gets one prefix', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-partial.js'), '--name', 'part', '--time'], { home });
    const out = path.join(home, 'logs', 'part-out.log');
    const err = path.join(home, 'logs', 'part-error.log');
    await h.waitFor(() => read(out).includes('end') && read(err).includes('after partial'), { message: 'both lines' });
    const lines = linesOf(out);
    assert.equal(lines.length, 1, read(out));
    assert.match(lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: part end$/);
    assert.match(linesOf(err)[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: after partial$/);
  });

  test('log_date_format with dayjs tokens prefixes every line', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'dated', script: fx('logs-lines.js'), args: ['3'], log_date_format: 'YYYY-MM-DD HH:mm Z' }]);
    await ok(['start', eco], { home });
    const out = path.join(home, 'logs', 'dated-out.log');
    await h.waitFor(() => linesOf(out).length === 3, { message: '3 lines' });
    linesOf(out).forEach((l, i) => assert.match(l, new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d [+-]\\d\\d:\\d\\d: out ${i}$`)));
  });

  test('log_type json: one object per line with message, timestamp, type, process_id, app_name', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'jsonapp', script: fx('logs-lines.js'), args: ['2', 'bad'], log_type: 'json' }]);
    await ok(['start', eco], { home });
    const out = path.join(home, 'logs', 'jsonapp-out.log');
    const err = path.join(home, 'logs', 'jsonapp-error.log');
    await h.waitFor(() => linesOf(out).length === 2 && linesOf(err).length === 3, { message: 'json lines' });
    const id = (await h.proc(home, 'jsonapp')).pm_id;
    const objs = linesOf(out).map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(objs[0]), ['message', 'timestamp', 'type', 'process_id', 'app_name']);
    assert.equal(objs[0].message, 'out 0\n');
    assert.equal(objs[1].message, 'out 1\n');
    assert.equal(objs[0].type, 'out');
    assert.equal(objs[0].process_id, id);
    assert.equal(objs[0].app_name, 'jsonapp');
    assert.match(objs[0].timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const errs = linesOf(err).map((l) => JSON.parse(l));
    assert.equal(errs[0].type, 'err');
    assert.equal(errs[2].message, 'bad \ufffd\ufffd\n', 'invalid UTF-8 is replaced in JSON');
  });

  test('invalid UTF-8 passes through raw files untouched', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-lines.js'), '--name', 'bytes', '--', '1', 'bad'], { home });
    const err = path.join(home, 'logs', 'bytes-error.log');
    await h.waitFor(() => read(err).includes('bad'), { message: 'the bad line' });
    const raw = fs.readFileSync(err);
    assert.ok(raw.includes(Buffer.from([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0x0a])), raw.toString('hex'));
  });

  test('-l: combined file with stdout and stderr (default name)', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-lines.js'), '--name', 'comb', '-l', '--', '2'], { home });
    const comb = path.join(home, 'logs', 'comb.log');
    await h.waitFor(() => linesOf(comb).length === 4, { message: '4 lines in the combined file' });
    assert.deepEqual(linesOf(comb).sort(), ['err 0', 'err 1', 'out 0', 'out 1']);
    assert.deepEqual(linesOf(path.join(home, 'logs', 'comb-out.log')), ['out 0', 'out 1']);
  });

  test('relative -o/-e/-l resolve against the app cwd and missing folders are created', async (t) => {
    const { home, dir } = h.useHome(t);
    const cwd = path.join(dir, 'app');
    fs.mkdirSync(cwd);
    await ok(['start', fx('logs-lines.js'), '--name', 'rel', '--cwd', cwd, '-o', 'o/deep/out.log', '-e', 'e/err.log',
      '-l', 'c/all.log', '--', '2'], { home });
    await h.waitFor(() => linesOf(path.join(cwd, 'c', 'all.log')).length === 4, { message: 'combined file in cwd' });
    assert.deepEqual(linesOf(path.join(cwd, 'o', 'deep', 'out.log')), ['out 0', 'out 1']);
    assert.deepEqual(linesOf(path.join(cwd, 'e', 'err.log')), ['err 0', 'err 1']);
    const p = await h.proc(home, 'rel');
    assert.equal(p.pm2_env.pm_out_log_path, path.join(cwd, 'o', 'deep', 'out.log'));
  });

  test('-i 2: -<pm_id> is inserted per instance; --merge-logs shares one file', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-lines.js'), '--name', 'multi', '-i', '2', '--', '2'], { home });
    const logs = path.join(home, 'logs');
    for (const id of [0, 1]) {
      await h.waitFor(() => linesOf(path.join(logs, `multi-out-${id}.log`)).length === 2, { message: `multi-out-${id}.log` });
      assert.deepEqual(linesOf(path.join(logs, `multi-error-${id}.log`)), ['err 0', 'err 1']);
    }
    assert.ok(!fs.existsSync(path.join(logs, 'multi-out.log')));
    await ok(['start', fx('logs-lines.js'), '--name', 'merged', '-i', '2', '--merge-logs', '--', '2'], { home });
    await h.waitFor(() => linesOf(path.join(logs, 'merged-out.log')).length === 4, { message: 'both instances in merged-out.log' });
    assert.deepEqual(linesOf(path.join(logs, 'merged-out.log')).sort(), ['out 0', 'out 0', 'out 1', 'out 1']);
    assert.ok(!fs.readdirSync(logs).some((f) => /^merged-out-\d+\.log$/.test(f)), fs.readdirSync(logs).join(' '));
  });

  test('disable_logs: output is read and dropped, no file is created', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'mute', script: fx('logs-lines.js'), args: ['5'], disable_logs: true },
      { name: 'talk', script: fx('logs-lines.js'), args: ['1'] }]);
    await ok(['start', eco], { home });
    await h.waitFor(() => read(path.join(home, 'logs', 'talk-out.log')).includes('out 0'), { message: 'talk-out.log' });
    await h.waitForProc(home, 'mute', (p) => p.pm2_env.status === 'online');
    const files = fs.readdirSync(path.join(home, 'logs'));
    assert.ok(!files.some((f) => f.startsWith('mute')), files.join(' '));
  });

  test('/dev/null and NULL disable a stream: no file is created', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-lines.js'), '--name', 'quiet', '-o', '/dev/null', '-e', 'NULL'], { home });
    await h.waitForProc(home, 'quiet', (p) => p.pm2_env.status === 'online');
    // Another app's lines prove the daemon has written what it received meanwhile.
    await ok(['start', fx('logs-lines.js'), '--name', 'loud', '--', '1'], { home });
    await h.waitFor(() => read(path.join(home, 'logs', 'loud-out.log')).includes('out 0'), { message: 'loud-out.log' });
    const files = fs.readdirSync(path.join(home, 'logs'));
    assert.ok(!files.some((f) => f.startsWith('quiet')), files.join(' '));
    const r = await ok(['logs', 'quiet', '--nostream'], { home });
    assert.ok(!r.stdout.includes('out 0'), r.stdout);
  });
});

describe('rpm2 logs', () => {
  test('--nostream --lines 5: prefixed tails of both files; --raw, --out, --err, --json', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-lines.js'), '--name', 'tail', '--', '20'], { home });
    await h.waitFor(() => read(path.join(home, 'logs', 'tail-error.log')).includes('err 19')
      && read(path.join(home, 'logs', 'tail-out.log')).includes('out 19'), { message: '20 lines each' });

    let r = await ok(['logs', 'tail', '--nostream', '--lines', '5'], { home });
    assert.match(r.stdout, /Tailing last 5 lines for \[tail\]/);
    assert.match(r.stdout, /tail-out\.log last 5 lines:/);
    assert.match(r.stdout, /tail-error\.log last 5 lines:/);
    for (let i = 15; i < 20; i++) {
      assert.match(r.stdout, new RegExp(`^0\\|tail\\s*\\| out ${i}$`, 'm'));
      assert.match(r.stdout, new RegExp(`^0\\|tail\\s*\\| err ${i}$`, 'm'));
    }
    assert.doesNotMatch(r.stdout, /out 14$/m);
    assert.ok(!r.stdout.includes('\x1b['), 'no colour without a TTY');

    r = await ok(['logs', 'tail', '--nostream', '--lines', '5', '--raw'], { home });
    const raw = h.lines(r.stdout);
    assert.deepEqual(raw, ['err 15', 'err 16', 'err 17', 'err 18', 'err 19', 'out 15', 'out 16', 'out 17', 'out 18', 'out 19']);

    r = await ok(['logs', 'tail', '--nostream', '--lines', '3', '--raw', '--out'], { home });
    assert.deepEqual(h.lines(r.stdout), ['out 17', 'out 18', 'out 19']);
    r = await ok(['logs', 'tail', '--nostream', '--lines', '3', '--raw', '--err'], { home });
    assert.deepEqual(h.lines(r.stdout), ['err 17', 'err 18', 'err 19']);

    r = await ok(['logs', 'tail', '--nostream', '--lines', '2', '--json', '--out'], { home });
    const objs = h.lines(r.stdout).map((l) => JSON.parse(l));
    assert.deepEqual(objs.map((o) => o.message), ['out 18', 'out 19']);
    assert.deepEqual(Object.keys(objs[0]), ['message', 'timestamp', 'type', 'process_id', 'app_name']);
    assert.equal(objs[0].type, 'out');
    assert.equal(objs[0].process_id, 0);
    assert.equal(objs[0].app_name, 'tail');

    r = await ok(['logs', 'tail', '--nostream', '--lines', '1', '--format', '--err'], { home });
    assert.deepEqual(h.lines(r.stdout), ['timestamp= app=tail id=0 type=err message=err 19']);

    // All apps: the daemon's log is shown too.
    r = await ok(['logs', '--nostream', '--lines', '2'], { home });
    assert.match(r.stdout, /rpm2\.log last 2 lines:/);
    assert.match(r.stdout, /^0\|tail\s*\| out 19$/m);
  });

  test('streams live lines from the daemon, with prefixes, --json, --err and --timestamp', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-tick.js'), '--name', 'live'], { home });
    let out = await streamUntil(home, ['live', '--lines', '0'],
      (s) => /^0\|live\s*\| tick \d+$/m.test(s) && /^0\|live\s*\| tock \d+$/m.test(s), 'a tick and a tock');
    assert.match(out, /Tailing last 0 lines for \[live\]/);

    out = await streamUntil(home, ['live', '--lines', '0', '--json', '--err'], (s) => h.lines(s).length >= 3, '3 json lines');
    for (const l of h.lines(out)) {
      const o = JSON.parse(l);
      assert.equal(o.type, 'err', l);
      assert.match(o.message, /^tock \d+$/);
      assert.match(o.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(o.process_id, 0);
      assert.equal(o.app_name, 'live');
    }

    out = await streamUntil(home, ['live', '--lines', '0', '--raw', '--out', '--timestamp'], (s) => h.lines(s).length >= 3, 'timestamped');
    for (const l of h.lines(out)) assert.match(l, /^\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d tick \d+$/);
  });

  test('a line written after `rpm2 logs` started is streamed (all apps)', async (t) => {
    const { home, dir } = h.useHome(t);
    await ok(['start', fx('logs-partial.js'), '--name', 'idle', '--', '3600000'], { home });
    const trigger = path.join(dir, 'late.js');
    fs.writeFileSync(trigger, "setTimeout(() => console.log('late line'), 300); setInterval(() => {}, 1000);\n");
    const child = spawn(h.BIN, ['logs', '--lines', '0'], { env: h.homeEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    try {
      await h.waitFor(() => out.includes('Tailing'), { message: 'logs started' });
      await ok(['start', trigger, '--name', 'late'], { home });
      await h.waitFor(() => /^1\|late\s*\| late line$/m.test(out), { message: `the late line; got:\n${out}` });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('flush and reloadLogs', () => {
  test('flush empties the files while the app writes; appends continue at the new end', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-tick.js'), '--name', 'busy', '--', '10'], { home });
    const out = path.join(home, 'logs', 'busy-out.log');
    await h.waitFor(() => read(out).includes('tick 30\n'), { message: 'tick 30' });
    const r = await ok(['flush', 'busy'], { home });
    assert.ok(r.stdout.includes(out), r.stdout);
    assert.match(r.stdout, /Logs flushed/);
    const after = linesOf(out).length ? Number(linesOf(out).at(-1).split(' ')[1]) : 0;
    await h.waitFor(() => linesOf(out).length >= 10, { message: 'new lines after flush' });
    const buf = fs.readFileSync(out);
    assert.ok(!buf.includes(0), 'no hole of NUL bytes: writes are appends');
    const lines = buf.toString().split('\n').filter(Boolean);
    assert.ok(!lines.includes('tick 0'), 'old lines are gone');
    assert.match(lines[0], /^tick \d+$/);
    assert.ok(Number(lines.at(-1).split(' ')[1]) >= after);
  });

  test('reloadLogs reopens files: after a rename a new file is created', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-tick.js'), '--name', 'rel', '--', '50'], { home });
    const out = path.join(home, 'logs', 'rel-out.log');
    await h.waitFor(() => read(out).includes('tick 2\n'), { message: 'tick 2' });
    fs.renameSync(out, `${out}.1`);
    const r = await ok(['reloadLogs'], { home });
    assert.match(r.stdout, /All logs reloaded/);
    await h.waitFor(() => /^tick \d+$/m.test(read(out)), { message: 'lines in the new file' });
    const old = linesOf(`${out}.1`);
    const fresh = linesOf(out);
    const n = (l) => Number(l.split(' ')[1]);
    assert.ok(n(fresh[0]) > n(old[0]), 'the new file starts later');
  });
});

describe('rotation', () => {
  test('a 200k-line burst with max_size 1M: every line once, in order, across the rotated files', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'rot', script: fx('logs-burst.js'), args: ['200000'], max_size: '1M', retain: 100 }]);
    await ok(['start', eco], { home });
    const logs = path.join(home, 'logs');
    await h.waitFor(() => allLines(logs, 'rot-out').length === 200000, { timeout: 60000, interval: 250, message: '200000 lines' });
    const lines = allLines(logs, 'rot-out');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] !== `line ${i} ${PAD}`) assert.fail(`line ${i} is ${JSON.stringify(lines[i])}`);
    }
    const rot = rotated(logs, 'rot-out');
    assert.ok(rot.length >= 9, `about 10 MiB in 1 MiB files: ${rot.length} rotated`);
    for (const r of rot) {
      const size = fs.statSync(r.file).size;
      assert.ok(size >= 1024 * 1024 && size < 1024 * 1024 + 64 * 1024 + 100, `${r.file}: ${size} bytes`);
      assert.ok(contentOf(r).endsWith('\n'), 'rotated at a line end');
    }
  });

  test('the daemon answers `rpm2 list` during a 200k-line burst, and every line arrives', async (t) => {
    const { home } = h.useHome(t);
    await ok(['start', fx('logs-burst.js'), '--name', 'flood'], { home });
    const logs = path.join(home, 'logs');
    let lists = 0;
    await h.waitFor(async () => {
      const r = await h.rpm2(['list'], { home, timeout: 10000 });
      assert.equal(r.code, 0, h.show(r));
      assert.match(r.stdout, /flood/);
      lists++;
      return allLines(logs, 'flood-out').length === 200000;
    }, { timeout: 60000, interval: 50, message: '200000 lines while listing' });
    assert.ok(lists >= 1);
    const lines = allLines(logs, 'flood-out');
    assert.equal(lines[0], `line 0 ${PAD}`);
    assert.equal(lines[199999], `line 199999 ${PAD}`);
    await h.waitFor(() => read(path.join(logs, 'flood-error.log')).includes('done 200000'), { message: 'done' });
  });

  test('retain keeps the newest rotated files, compress gzips them', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'gz', script: fx('logs-burst.js'), args: ['20000'], max_size: '100K', retain: 2, compress: true }]);
    await ok(['start', eco], { home });
    const logs = path.join(home, 'logs');
    // The last line may be in the current file or, when it ended exactly at the limit, in a rotated one.
    await h.waitFor(() => {
      const r = rotated(logs, 'gz-out');
      return r.length === 2 && r.every((x) => x.gz) && !fs.readdirSync(logs).some((f) => f.endsWith('.tmp'))
        && allLines(logs, 'gz-out').at(-1) === `line 19999 ${PAD}`;
    }, { timeout: 30000, message: 'the last line, and two gzipped rotations' });
    const lines = allLines(logs, 'gz-out');
    const first = Number(lines[0].split(' ')[1]);
    lines.forEach((l, i) => assert.equal(l, `line ${first + i} ${PAD}`));
    assert.equal(first + lines.length, 20000);
  });

  test('merge_logs: two instances rotating one shared file lose and repeat no line', async (t) => {
    const { home, dir } = h.useHome(t);
    const eco = writeEco(dir, [{ name: 'shared', script: fx('logs-burst.js'), args: ['20000', 'inst'], instances: 2,
      merge_logs: true, max_size: '200K', retain: 1000 }]);
    await ok(['start', eco], { home });
    const logs = path.join(home, 'logs');
    await h.waitFor(() => allLines(logs, 'shared-out').length === 40000, { timeout: 30000, message: '40000 lines' });
    const lines = allLines(logs, 'shared-out');
    for (const inst of ['i0', 'i1']) {
      const mine = lines.filter((l) => l.startsWith(`${inst} `));
      assert.equal(mine.length, 20000, inst);
      const nums = mine.map((l) => Number(l.split(' ')[2]));
      // A writer follows a file renamed under it within a second, and files are renamed in order, so
      // each instance's lines stay in order across the rotated files.
      nums.forEach((n, i) => { if (n !== i) assert.fail(`${inst}: line ${i} is number ${n}`); });
    }
    assert.ok(rotated(logs, 'shared-out').length >= 5);
  });

  test('max_size 0 disables rotation for an app; RPM2_LOG_ROTATE=off for every app', async (t) => {
    const { home, dir } = h.useHome(t);
    const env = { RPM2_LOG_MAX_SIZE: '100K' };
    const eco = writeEco(dir, [
      { name: 'norot', script: fx('logs-burst.js'), args: ['20000'], max_size: 0 },
      { name: 'dflt', script: fx('logs-burst.js'), args: ['20000'] },
    ]);
    await ok(['start', eco], { home, env });
    const logs = path.join(home, 'logs');
    await h.waitFor(() => allLines(logs, 'norot-out').length === 20000 && allLines(logs, 'dflt-out').length === 20000,
      { timeout: 30000, message: 'both bursts' });
    assert.equal(rotated(logs, 'norot-out').length, 0);
    assert.ok(rotated(logs, 'dflt-out').length >= 5, 'RPM2_LOG_MAX_SIZE=100K applies to apps without max_size');

    const other = h.useHome(t);
    const eco2 = writeEco(other.dir, [{ name: 'off', script: fx('logs-burst.js'), args: ['20000'], max_size: '100K' }]);
    await ok(['start', eco2], { home: other.home, env: { RPM2_LOG_ROTATE: 'off' } });
    const logs2 = path.join(other.home, 'logs');
    await h.waitFor(() => linesOf(path.join(logs2, 'off-out.log')).length === 20000, { timeout: 30000, message: 'burst' });
    assert.equal(rotated(logs2, 'off-out').length, 0);
  });

  test("the daemon's own log is rotated too", async (t) => {
    const { home } = h.useHome(t);
    const env = { RPM2_LOG_MAX_SIZE: '1K' };
    await ok(['start', fx('logs-tick.js'), '--name', 'churn', '--', '1000'], { home, env });
    await h.waitFor(async () => {
      await ok(['restart', 'churn'], { home, env });
      return rotated(home, 'rpm2').length >= 1;
    }, { timeout: 30000, interval: 10, message: 'a rotated rpm2 log' });
    await ok(['restart', 'churn'], { home, env });
    await h.waitFor(() => read(path.join(home, 'rpm2.log')).includes('restarting'), { message: 'new lines in rpm2.log' });
    for (const r of rotated(home, 'rpm2')) assert.ok(contentOf(r).endsWith('\n'));
  });
});

describe('faults', () => {
  test('a full disk: the app keeps running, one error, writing resumes when space returns', async (t) => {
    const { home, dir } = h.useHome(t);
    const mnt = path.join(dir, 'small');
    fs.mkdirSync(mnt);
    // A tiny tmpfs is the only honest full disk; it needs root (CI runs as root).
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      t.skip(`cannot mount a tmpfs here: ${(m.stderr || '').trim()}`);
      return;
    }
    t.after(() => spawnSync('umount', ['-l', mnt]));
    const filler = path.join(mnt, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(200 * 1024));
    const target = path.join(mnt, 'out.log');
    await ok(['start', fx('logs-tick.js'), '--name', 'full', '-o', target, '--', '2'], { home });
    const daemonLog = path.join(home, 'rpm2.log');
    const errFile = path.join(home, 'logs', 'full-error.log');
    await h.waitFor(() => read(daemonLog).includes(`cannot write log file ${target}`), { timeout: 30000, message: 'ENOSPC reported' });
    const tockAt = () => Number((read(errFile).match(/tock (\d+)\n$/) || [0, 0])[1]);
    const t0 = tockAt();
    await h.waitFor(() => tockAt() > t0 + 200, { timeout: 30000, message: 'the app goes on writing' });
    assert.equal(read(daemonLog).split('\n').filter((l) => l.includes(target)).length, 1, 'reported once');
    assert.equal((await h.proc(home, 'full')).pm2_env.status, 'online');
    fs.rmSync(filler);
    const before = fs.statSync(target).size;
    await h.waitFor(() => read(daemonLog).includes('writing resumed') && fs.statSync(target).size > before + 1000,
      { timeout: 30000, message: 'writing resumed' });
    // Lines after the outage are whole lines.
    const tail = read(target).split('\n').slice(-20, -1);
    for (const l of tail) assert.match(l, /^tick \d+$/);
  });


  test('an unwritable log path: app and daemon keep running, one error with the path, writing resumes', async (t) => {
    const { home, dir } = h.useHome(t);
    const blocker = path.join(dir, 'blocker');
    fs.writeFileSync(blocker, 'a file where a folder should be');
    const target = path.join(blocker, 'out.log');
    await ok(['start', fx('logs-tick.js'), '--name', 'blocked', '-o', target, '--', '20'], { home });
    const errFile = path.join(home, 'logs', 'blocked-error.log');
    const daemonLog = path.join(home, 'rpm2.log');
    await h.waitFor(() => read(daemonLog).includes(target), { message: 'the error in rpm2.log' });
    // Many more lines are written (and dropped for the broken file) meanwhile.
    await h.waitFor(() => read(errFile).includes('tock 40\n'), { message: 'tock 40' });
    const count = read(daemonLog).split('\n').filter((l) => l.includes(target)).length;
    assert.equal(count, 1, read(daemonLog));
    const p = await h.proc(home, 'blocked');
    assert.equal(p.pm2_env.status, 'online');
    assert.equal(p.pm2_env.restart_time, 0);
    fs.rmSync(blocker);
    await h.waitFor(() => /^tick \d+$/m.test(read(target)), { message: 'lines after the path was fixed' });
    assert.match(read(daemonLog), /writing resumed/);
  });
});
