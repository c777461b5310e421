// Watched app for the watch bench: appends "start <pid> <first line ms>" to $WATCH_MARKS as soon as it
// runs (epoch ms, sub-ms precision), then idles. The marks file lives outside the watched tree.
const { performance } = require('perf_hooks');
const fs = require('fs');
fs.appendFileSync(process.env.WATCH_MARKS, `start ${process.pid} ${(performance.timeOrigin + performance.now()).toFixed(3)}\n`);
setInterval(() => {}, 1000);
