#!/usr/bin/env node
'use strict';
// The "node" path of the benchmark (docs/BENCHMARKS.md): the same call done the way
// @hile/micro does it, with tests/node/micro.js (a faithful re-implementation of
// @hile/micro 1.0.5), one process per side.
//
//   node bench/node-peer.js provider --registry H:P --namespace NS --app-url URL
//       an Application serving /echo: forwards the payload to the C echo app
//       (POST {app-url}/echo over a keep-alive agent) and returns its JSON answer,
//       which is the work sidecar B does on the mesh path
//   node bench/node-peer.js caller --registry H:P --target NS --http-port P
//       an Application plus a keep-alive HTTP server: every POST body is parsed and
//       sent with app.call(NS, '/echo', body); the result is the answer
//
// Both print "READY {json}" on stdout when connected to the registry; SIGTERM exits 0.

const path = require('node:path');
const http = require('node:http');

const { Application, makeLogger } = require(path.join(__dirname, '..', 'tests', 'node', 'micro.js'));

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) out._.push(a);
    else out[a.slice(2)] = argv[++i];
  }
  return out;
}

function hostPort(s) {
  const i = String(s || '').lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port)) throw new Error(`expected host:port, got ${s}`);
  return { host: s.slice(0, i), port };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** An Application on loopback, registered with --registry as --namespace (or ns). */
function application(args, ns, logName) {
  return new Application({
    namespace: args.namespace || ns,
    registry: hostPort(args.registry),
    advertiseHost: '127.0.0.1',
    bind: '127.0.0.1',
    log: makeLogger(logName, 'warn'),
  });
}

async function provider(args) {
  const app = application(args, 'echo-node', 'bench-provider');
  const target = new URL('/echo', args['app-url']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  app.register('/echo', ({ data }) => new Promise((resolve, reject) => {
    const body = JSON.stringify(data);
    const req = http.request(target, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      readBody(res).then((buf) => {
        if (res.statusCode < 200 || res.statusCode > 299) {
          const e = new Error(`app answered ${res.statusCode}`);
          e.status = res.statusCode;
          return reject(e);
        }
        try {
          resolve(buf.length ? JSON.parse(buf.toString('utf8')) : undefined);
        } catch (e) {
          reject(e);
        }
      }, reject);
    });
    req.on('error', reject);
    req.end(body);
  }));
  const teardown = await app.listen(Number(args.port || 0));
  process.on('SIGTERM', () => teardown().then(() => process.exit(0)));
  process.stdout.write(`READY ${JSON.stringify({ role: 'provider', port: app.port })}\n`);
}

async function caller(args) {
  const app = application(args, 'bench-node-client', 'bench-caller');
  const ns = args.target || 'echo-node';
  const teardown = await app.listen(Number(args.port || 0));
  const server = http.createServer((req, res) => {
    readBody(req).then(async (buf) => {
      let data;
      try {
        data = JSON.parse(buf.toString('utf8'));
      } catch {
        return send(res, 400, '{"error":"bad JSON"}');
      }
      try {
        const result = await app.call(ns, '/echo', data);
        send(res, 200, result === undefined ? 'null' : JSON.stringify(result));
      } catch (e) {
        const status = Number.isInteger(e.status) && e.status >= 400 && e.status <= 599 ? e.status : 502;
        send(res, status, JSON.stringify({ error: String(e.message), status: e.status ?? null }));
      }
    }, () => send(res, 400, '{"error":"bad request"}'));
  });
  server.keepAliveTimeout = 60000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(args['http-port'] || 0), '127.0.0.1', resolve);
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    teardown().then(() => process.exit(0));
  });
  process.stdout.write(`READY ${JSON.stringify({ role: 'caller', port: app.port, httpPort: server.address().port })}\n`);
}

const args = parseArgs(process.argv.slice(2));
const role = args._[0];
(role === 'provider' ? provider : role === 'caller' ? caller : () => {
  process.stderr.write('usage: node-peer.js provider|caller [options]\n');
  process.exit(2);
})(args).catch((e) => {
  process.stderr.write(`node-peer.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
