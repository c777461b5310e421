// Crash-loop app. Appends to crash-marks.log next to itself:
//   start <pid> <process origin ms> <first line ms>   (as soon as the script runs)
//   exit <pid> <ms>                                     (just before process.exit(1))
// Times are epoch ms with sub-ms precision (performance.timeOrigin + now()).
const { performance } = require('perf_hooks');
const fs = require('fs');
const path = require('path');
const marks = path.join(__dirname, 'crash-marks.log');
const now = () => performance.timeOrigin + performance.now();
fs.appendFileSync(marks, `start ${process.pid} ${performance.timeOrigin.toFixed(3)} ${now().toFixed(3)}\n`);
const LIVE_MS = 100; // how long each instance lives before crashing (the bench may rewrite this)
setTimeout(() => {
  fs.appendFileSync(marks, `exit ${process.pid} ${now().toFixed(3)}\n`);
  process.exit(1);
}, LIVE_MS);
