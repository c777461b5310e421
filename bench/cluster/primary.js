// Node's own cluster module as the reference primary: forks N workers of
// hello.js (round-robin, Node's default on Linux) and re-forks a worker that
// dies, as a hand-written primary typically does.
// usage: node primary.js PORT [N] [PIDFILE]   (PIDFILE: worker pids, one a line;
// PIDFILE.primary: this process's pid)
'use strict';
const cluster = require('cluster');
const path = require('path');
const fs = require('fs');
const [port, n = '2', pidfile] = process.argv.slice(2);
if (pidfile) fs.writeFileSync(pidfile + '.primary', String(process.pid));
cluster.schedulingPolicy = cluster.SCHED_RR;
cluster.setupPrimary({ exec: path.join(__dirname, 'hello.js'), args: [port], silent: false });
const writePids = () => {
  if (!pidfile) return;
  const pids = Object.values(cluster.workers).filter((w) => w.listening).map((w) => w.process.pid);
  fs.writeFileSync(pidfile + '.tmp', pids.join('\n') + '\n');
  fs.renameSync(pidfile + '.tmp', pidfile);
};
const fork = () => {
  const w = cluster.fork();
  w.on('listening', () => { w.listening = true; writePids(); });
};
cluster.on('exit', (w) => {
  writePids();
  if (!stopping) fork();
});
let stopping = false;
for (let i = 0; i < Number(n); i++) fork();
const stop = () => {
  stopping = true;
  for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  setTimeout(() => process.exit(0), 200).unref();
  cluster.disconnect(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
