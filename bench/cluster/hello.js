// Hello-world HTTP app for bench/cluster.sh: the port is the first argument
// (or $PORT). Used unchanged under rpm2 -i N, pm2 -i N and primary.js.
'use strict';
const http = require('http');
const port = Number(process.argv[2] || process.env.PORT);
http.createServer((req, res) => res.end('ok')).listen(port, '127.0.0.1');
