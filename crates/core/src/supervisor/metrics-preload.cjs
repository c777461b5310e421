// rpm2's metrics preload. The daemon writes this file into its home and starts Node apps with
// `node --require <this file> ... script` (not with `pmx: false` / `--no-pmx`).
//
// What it does: once a second it sends PM2's built-in code metrics (the names, units, types and value
// types @pm2/io uses) to the daemon over the IPC channel, as `{type: 'axm:monitor', data}`. The
// daemon also takes the arrival of these messages as the sign that the app's event loop answers.
//
// What it does not do: it installs no handler (uncaughtException, unhandledRejection, signals,
// 'message'), patches no module, keeps nothing alive (its timer and the event-loop histogram are
// unref'd: a script that finishes still exits), and does nothing in a process the app starts itself
// (the daemon marks the app's own process with RPM2_METRICS=1, read and deleted here at once, so the
// app and its children never see it). Any failure here is swallowed: the app runs as if without it.
'use strict';

(function rpm2Metrics() {
  const flag = process.env.RPM2_METRICS;
  delete process.env.RPM2_METRICS;
  if (flag !== '1' || typeof process.send !== 'function') return;

  const PERIOD_MS = 1000;
  // The event-loop delay histogram samples every RESOLUTION_MS; a sample is the time between two
  // samples, so an idle loop reads RESOLUTION_MS: the latency reported is what lies beyond it (as
  // PM2's, which is the lateness of a 1 s timer). Every sample wakes the process, and the wake-ups
  // are most of what the preload costs an idle app: 100 ms (10 a second) keeps that cost at a
  // fraction of PM2's agent, where Node's default 10 ms would cost more than the agent.
  const RESOLUTION_MS = 100;
  // The histogram starts afresh every WINDOW reports: the percentiles cover the last 1 to 10 seconds
  // (10 to 100 samples).
  const WINDOW = 10;

  let v8;
  let loop = null;
  try {
    v8 = require('v8');
    loop = require('perf_hooks').monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    loop.enable();
  } catch {
    if (!v8) return;
    loop = null;
  }
  let reports = 0;

  const mib = (bytes) => (bytes / 1048576).toFixed(2);
  const count = (fn) => {
    try {
      return typeof process[fn] === 'function' ? process[fn]().length : undefined;
    } catch {
      return undefined;
    }
  };
  const delay = (percentile) => Math.max(0, loop.percentile(percentile) / 1e6 - RESOLUTION_MS).toFixed(2);
  const metric = (unit, type, value) =>
    unit === undefined ? { historic: true, type, value } : { historic: true, unit, type, value };

  function sample() {
    const data = {};
    const heap = v8.getHeapStatistics();
    data['Heap Size'] = metric('MiB', 'internal/v8/heap/total', mib(heap.total_heap_size));
    const usage = heap.total_heap_size > 0 ? (heap.used_heap_size / heap.total_heap_size) * 100 : 0;
    data['Heap Usage'] = metric('%', 'internal/v8/heap/usage', parseFloat(usage.toFixed(2)));
    data['Used Heap Size'] = metric('MiB', 'internal/v8/heap/used', mib(heap.used_heap_size));
    const requests = count('_getActiveRequests');
    if (requests !== undefined) data['Active requests'] = metric(undefined, 'internal/libuv/requests', requests);
    const handles = count('_getActiveHandles');
    if (handles !== undefined) data['Active handles'] = metric(undefined, 'internal/libuv/handles', handles);
    if (loop !== null && loop.count > 0) {
      data['Event Loop Latency'] = metric('ms', 'internal/libuv/latency/p50', delay(50));
      data['Event Loop Latency p95'] = metric('ms', 'internal/libuv/latency/p95', delay(95));
      if (++reports >= WINDOW) {
        loop.reset();
        reports = 0;
      }
    }
    return data;
  }

  const ignore = () => {};
  // Each report goes out at a whole second of the wall clock, so the reports of every app arrive
  // together and the daemon wakes once a second for all of them instead of once per app.
  // (A timer that fires a little early must not send twice in a row: under 100 ms, the next second.)
  const next = () => {
    const wait = PERIOD_MS - (Date.now() % PERIOD_MS);
    setTimeout(tick, wait < 100 ? wait + PERIOD_MS : wait).unref();
  };
  const tick = () => {
    if (!process.connected) {
      // The channel is gone (the app disconnected it): nothing to report to any more.
      if (loop !== null) loop.disable();
      return;
    }
    try {
      // With a callback, a failed send is handed to it instead of being emitted as 'error'.
      process.send({ type: 'axm:monitor', data: sample() }, undefined, undefined, ignore);
    } catch {
      // never disturb the app
    }
    next();
  };
  next();
})();
