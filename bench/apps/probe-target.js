'use strict';
// bench/probes.sh: the one HTTP server every probed app's liveness probe asks (GET /healthz -> 200).
// PORT from the environment.
require('http').createServer((req, res) => res.end('ok\n')).listen(Number(process.env.PORT), '127.0.0.1');
