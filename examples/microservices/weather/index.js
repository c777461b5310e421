// microservices/weather/index.js (the seed's Listing 4-6): GET /api/weather/<postal_code> answers a
// random temperature. Node's own http server stands in for express and morgan (an access line per
// request, as morgan's "combined" format), so the example runs without `npm install`. HOST (optional)
// narrows the listening address; by default it listens on every interface, as the seed's app.listen.
'use strict';
const http = require('http');

if (!process.env.PORT) {
  throw new Error('The `PORT` environment variable must be set.');
}

const random = function (min, max) {
  return Math.floor(Math.random() * (max - min + 1) + min);
};

http
  .createServer(function (req, res) {
    const m = /^\/api\/weather\/([^/]+)$/.exec(req.url);
    let status = 404;
    let body = 'Not Found';
    if (req.method === 'GET' && m) {
      const fahr = random(70, 110);
      status = 200;
      body = JSON.stringify({ temperature: { fahrenheit: fahr, celsius: (fahr - 32) * (5 / 9) } });
      res.setHeader('content-type', 'application/json');
    }
    res.statusCode = status;
    res.end(body);
    console.log(
      `${req.socket.remoteAddress} - - [${new Date().toUTCString()}] "${req.method} ${req.url} ` +
        `HTTP/${req.httpVersion}" ${status} ${Buffer.byteLength(body)}`
    );
  })
  .listen(Number(process.env.PORT), process.env.HOST);
