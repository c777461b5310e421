// microservices/main/index.js (the seed's Listing 4-6): every two seconds, ask the weather API for
// the temperature at one postal code and print it. Node's own http client stands in for the
// `request` package, so the example runs without `npm install`.
'use strict';
const http = require('http');

if (!process.env.WEATHER_API_URL) {
  throw new Error('The `WEATHER_API_URL` environment variable must be set.');
}

setInterval(function () {
  http.get(process.env.WEATHER_API_URL + '/api/weather/37204', function (res) {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', function (chunk) {
      body += chunk;
    });
    res.on('end', function () {
      const result = JSON.parse(body);
      console.log('The temperature is: %s', result.temperature.fahrenheit);
    });
  }).on('error', function (err) {
    throw new Error(err);
  });
}, 2000);
