// Open-loop steady client for bench/cluster.sh: RATE requests per second, each
// on a new connection (`Connection: close`), to 127.0.0.1:PORT, until SIGINT /
// SIGTERM (or MAX_S). Then it lets the requests in flight finish (each has
// TIMEOUT_MS) and prints one JSON line:
//   {sent, ok, failed, refused, reset, timeout, non200, other, lat_p50_ms,
//    lat_p99_ms, lat_max_ms, failures: [[t_ms, kind, detail], ...first 50]}
// refused = ECONNREFUSED; reset = ECONNRESET/EPIPE or the connection closed
// before a complete response; non200 = a response whose status is not 200.
// usage: node steady.js PORT [RATE=200] [TIMEOUT_MS=5000] [MAX_S=600]
'use strict';
const net = require('net');
const port = Number(process.argv[2]);
const rate = Number(process.argv[3] || 200);
const timeoutMs = Number(process.argv[4] || 5000);
const maxS = Number(process.argv[5] || 600);
const REQ = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
const MAX_INFLIGHT = 2000;

const t0 = process.hrtime.bigint();
const nowMs = () => Number(process.hrtime.bigint() - t0) / 1e6;
const c = { sent: 0, ok: 0, failed: 0, refused: 0, reset: 0, timeout: 0, non200: 0, other: 0 };
const lat = [];
const failures = [];
let inflight = 0;
let stopping = false;

function fail(kind, detail, start) {
  c.failed++;
  c[kind]++;
  if (failures.length < 50) failures.push([Math.round(start), kind, String(detail || '')]);
}

function one() {
  const start = nowMs();
  c.sent++;
  inflight++;
  let done = false;
  let buf = '';
  const sock = net.connect({ port, host: '127.0.0.1' });
  const finish = (kind, detail) => {
    if (done) return;
    done = true;
    inflight--;
    clearTimeout(timer);
    sock.destroy();
    if (kind === 'ok') { c.ok++; lat.push(nowMs() - start); } else fail(kind, detail, start);
    if (stopping && inflight === 0) report();
  };
  const timer = setTimeout(() => finish('timeout', `${timeoutMs} ms`), timeoutMs);
  sock.setNoDelay(true);
  sock.on('connect', () => sock.write(REQ));
  sock.on('data', (d) => { buf += d.toString('latin1'); });
  const judge = () => {
    if (buf.length === 0) return finish('reset', 'closed with no response');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
    const hdrEnd = buf.indexOf('\r\n\r\n');
    if (!m || hdrEnd < 0) return finish('reset', 'incomplete response');
    if (m[1] !== '200') return finish('non200', m[1]);
    finish('ok');
  };
  sock.on('end', judge);
  sock.on('close', judge);
  sock.on('error', (e) => {
    if (e.code === 'ECONNREFUSED') finish('refused', e.code);
    else if (e.code === 'ECONNRESET' || e.code === 'EPIPE') finish(buf.length && /\r\n\r\n/.test(buf) ? 'ok' : 'reset', e.code);
    else finish('other', e.code || e.message);
  });
}

function tick() {
  if (stopping) return;
  const due = Math.floor((nowMs() / 1000) * rate) - c.sent;
  for (let i = 0; i < due && inflight < MAX_INFLIGHT; i++) one();
  if (nowMs() > maxS * 1000) return stop();
  setTimeout(tick, 1);
}

let reported = false;
function report() {
  if (reported) return;
  reported = true;
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2) : null);
  const out = Object.assign({}, c, {
    rate, duration_s: +(nowMs() / 1000).toFixed(2),
    lat_p50_ms: q(0.5), lat_p99_ms: q(0.99), lat_max_ms: lat.length ? +lat[lat.length - 1].toFixed(2) : null,
    failures,
  });
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}
function stop() {
  if (stopping) return;
  stopping = true;
  if (inflight === 0) report();
  setTimeout(report, timeoutMs + 500).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
tick();
