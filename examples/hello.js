// The README's example app: an HTTP server that says hello and logs every request.
const http = require('http');
const port = Number(process.env.PORT) || 8000;
const server = http.createServer((req, res) => {
  console.log(`${new Date().toISOString()} ${req.method} ${req.url}`);
  res.end('Hello, world.\n');
});
server.listen(port, () => {
  console.log(`hello listening on http://127.0.0.1:${port}`);
  if (process.send) process.send('ready');
});
process.on('message', (m) => {
  if (m === 'shutdown') server.close(() => process.exit(0));
});
