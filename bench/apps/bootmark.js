// Idle fork-mode app that logs, at its first line, how long its process took to get there
// (performance.now() counts from the process's start): `boot <ms>`. Then it idles.
console.log(`boot ${performance.now().toFixed(2)}`);
setInterval(() => {}, 1000);
