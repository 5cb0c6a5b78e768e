#!/usr/bin/env node
// greeter.js - a tiny app that uses its micro-sidecar, Node's built-in http only.
//
// It registers POST /greet with the sidecar's local API, serves it on its own
// port (the sidecar forwards mesh calls for that url here) and exposes
// GET /hello-other, which calls another namespace's /greet through the sidecar.
//
// Environment:
//   MICRO_NAMESPACE  our namespace, reported as "from"  (default greeter-node)
//   MICRO_API_PORT   the sidecar's local HTTP API port  (default 3500)
//   APP_PORT         our HTTP port                      (default 8080)
//   APP_BIND         our listen address                 (default 127.0.0.1)
//   OTHER_NS         namespace GET /hello-other calls   (default greeter-py)
'use strict';

const http = require('http');

const NAMESPACE = process.env.MICRO_NAMESPACE || 'greeter-node';
const API_PORT = Number(process.env.MICRO_API_PORT || 3500);
const APP_PORT = Number(process.env.APP_PORT || 8080);
const APP_BIND = process.env.APP_BIND || '127.0.0.1';
const OTHER_NS = process.env.OTHER_NS || 'greeter-py';

// The sidecar keeps routes in memory: if it restarts, it forgets ours. Posting
// the same route again is harmless (200 "already there"), so we re-post now and
// then instead of assuming the first registration lasts forever.
const REREGISTER_MS = 30000;
const MAX_BODY = 1 << 20;

// Keep-alive to the sidecar: calls reuse one local connection.
const agent = new http.Agent({ keepAlive: true });

const log = (msg) => process.stderr.write(`${NAMESPACE}: ${msg}\n`);

// POSTs JSON to the sidecar; resolves {status, body} for any HTTP answer and
// rejects only when the sidecar cannot be reached.
function sidecarPost(path, payload, headers = {}, timeoutMs = 35000) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(payload));
    const req = http.request({
      host: '127.0.0.1', port: API_PORT, path, method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString();
        let body = null;
        try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
        resolve({ status: res.statusCode, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// Registers POST /greet, retrying with backoff until the sidecar answers (it
// may start after us), then keeps it registered.
let registered = false;
let registerTimer = null;
let stopping = false;
async function registerRoute(delayMs = 200) {
  let next = REREGISTER_MS;
  try {
    const { status, body } = await sidecarPost('/v1/routes', { url: '/greet' }, {}, 5000);
    if (status === 200 || status === 201) {
      if (!registered) log(`registered /greet with the sidecar (${status})`);
      registered = true;
    } else {
      // 409: /greet is registered with another target; retrying will not fix
      // that, so say so and keep checking at the slow pace.
      log(`sidecar refused /greet: ${status} ${JSON.stringify(body)}`);
    }
    delayMs = 200;
  } catch (e) {
    log(`sidecar not reachable on port ${API_PORT} (${e.message}); retrying in ${delayMs} ms`);
    next = delayMs;
    delayMs = Math.min(delayMs * 2, 5000);
  }
  if (!stopping) registerTimer = setTimeout(() => registerRoute(delayMs), next);
}

function reply(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

async function greet(req, res) {
  // The sidecar sends the caller's payload ("data") as the JSON body.
  let data;
  try {
    const raw = await readBody(req);
    data = raw ? JSON.parse(raw) : null;
  } catch (e) {
    return reply(res, 400, { error: `bad body: ${e.message}` });
  }
  if (data === null || typeof data !== 'object' || typeof data.name !== 'string') {
    return reply(res, 400, { error: 'want {"name": "<string>"}' });
  }
  log(`greeting ${data.name} (call from ${req.headers['x-micro-caller'] || '?'}, ` +
      `correlation ${req.headers['x-correlation-id'] || '-'})`);
  reply(res, 200, { greeting: `hello ${data.name}`, from: NAMESPACE });
}

async function helloOther(req, res) {
  // Pass our caller's correlation id on, so one id follows the whole chain.
  const headers = {};
  if (req.headers['x-correlation-id']) headers['X-Correlation-Id'] = req.headers['x-correlation-id'];
  let path = `/v1/call/${encodeURIComponent(OTHER_NS)}/greet`;
  let payload = { name: 'node' };
  if (OTHER_NS.includes('/')) { // the path form cannot carry a '/' in the namespace
    path = '/v1/call';
    payload = { namespace: OTHER_NS, url: '/greet', data: payload };
  }
  let answer;
  try {
    answer = await sidecarPost(path, payload, headers);
  } catch (e) {
    return reply(res, 502, { error: `sidecar not reachable: ${e.message}`, status: 502 });
  }
  const { status, body } = answer;
  if (status === 200) return reply(res, 200, body);
  // Sidecar errors are {"error": ..., "status": ...}; ours is a 502 that says
  // what went wrong further down.
  const isObj = body !== null && typeof body === 'object';
  const err = isObj && body.error !== undefined ? body.error : JSON.stringify(body);
  const st = isObj && body.status !== undefined ? body.status : status;
  reply(res, 502, { error: `call to ${OTHER_NS}/greet failed: ${err}`, status: st });
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  let handler = null;
  if (req.method === 'POST' && path === '/greet') handler = greet;
  else if (req.method === 'GET' && path === '/hello-other') handler = helloOther;
  if (handler === null) {
    req.resume(); // drain the body so the connection can be reused
    return reply(res, 404, { error: `no route ${path}` });
  }
  handler(req, res).catch((e) => {
    log(`${path}: ${e.stack || e}`);
    if (!res.headersSent) reply(res, 500, { error: String(e.message || e) });
  });
});

function stop() {
  stopping = true;
  clearTimeout(registerTimer);
  server.close(() => { log('stopped'); process.exit(0); });
  server.closeIdleConnections();
  agent.destroy();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(APP_PORT, APP_BIND, () => {
  log(`listening on ${APP_BIND}:${APP_PORT}, sidecar API port ${API_PORT}, other namespace ${OTHER_NS}`);
  registerRoute();
});
