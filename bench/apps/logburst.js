// Log burst app. Waits until <this file>.go exists (the bench creates it once
// the app is online and the daemon's CPU has been sampled), then writes LINES
// lines to stdout as fast as the stream accepts them (honouring back-pressure),
// records when it finished in <this file>.done, and idles (no restart).
const fs = require('fs');
const LINES = 200000; // the bench rewrites this number
const go = __filename + '.go';
const pad = 'x'.repeat(40);
function pump(i) {
  while (i < LINES) {
    const ok = process.stdout.write(`LOGSPAM ${i} ${pad}\n`);
    i++;
    if (!ok) { process.stdout.once('drain', () => pump(i)); return; }
  }
  process.stdout.write('', () => fs.writeFileSync(__filename + '.done', `${Date.now()}\n`));
}
const poll = setInterval(() => {
  if (fs.existsSync(go)) { clearInterval(poll); pump(0); }
}, 1);
setInterval(() => {}, 1000);
