#!/usr/bin/env node
'use strict';
// Runs one reference-compatible peer (micro.js) as its own process, for the
// integration tests:
//
//   node peer.js registry --port 9000 [--bind ADDR] [--advertise-host H]
//        [--heartbeat-timeout-ms N] [--sweep-interval-ms N] [--max-frame-bytes N]
//        [--close-removes-key]   (1.0.5: a closing connection removes its key, see micro.js)
//   node peer.js app --namespace echo --port 9300 --registry 127.0.0.1:9000
//        [--advertise-host 127.0.0.1] [--serve-echo] [--control-port P]
//        [--heartbeat-interval-ms N] [--reconnect-interval-ms N]
//        [--request-timeout-ms N] [--lookup-timeout-ms N]
//        [--breaker-cooldown-ms N] [--handshake-timeout-ms N] [--wait-for-registry]
//
// Port 0 picks a free port; the one in use is in the READY line. When listening
// (and, for an app, connected to the registry) it prints one line to stdout:
//   READY {"role":"app","namespace":"echo","port":9300,"controlPort":9301,...}
//
// --serve-echo registers
//   /echo   returns its data
//   /fail   throws an error with status 500, message "boom"
//   /slow   waits data.ms (default 1000) then returns {slept: ms}; counts aborts
//   /whoami returns {namespace, host, port}
// and POST /mode {"failEcho":true} on the control port makes /echo fail too.
//
// --control-port P: a small HTTP server on 127.0.0.1:P
//   POST /call {"namespace","url","data","timeout","retries"}
//        -> 200 {"ok":true,"data":..} | 200 {"ok":false,"status":..,"message":..}
//   POST /push {"namespace","url","data"}  -> 200 {"ok":true} | {"ok":false,..}
//   POST /get  {"namespace","exclude"}     -> 200 {"ok":true,"key":"host:port"} (discovery
//                                             only: fills the cache, like Application.get)
//   POST /mode {"failEcho":bool}            -> 200 {"ok":true}
//   GET  /stats  -> {"served":{url:n},"abortsReceived":n,"slowAborted":n,
//                    "registryConnected":bool,"socketErrors":["host:port: msg"],...}
//   GET  /health -> what /-/health answers
// SIGTERM/SIGINT: tear down and exit 0.

const http = require('node:http');
const { Registry, Application, makeLogger } = require('./micro');

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      out._.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    let key;
    let val;
    if (eq >= 0) {
      key = a.slice(2, eq);
      val = a.slice(eq + 1);
    } else {
      key = a.slice(2);
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        val = next;
        i++;
      } else {
        val = true;
      }
    }
    out[key] = val;
  }
  return out;
}

function die(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(2);
}

function int(args, key, dflt) {
  if (args[key] === undefined) return dflt;
  const n = Number(args[key]);
  if (!Number.isInteger(n) || n < 0) die(`--${key}: not a non-negative integer: ${args[key]}`);
  return n;
}

function hostPort(s, key) {
  const i = String(s).lastIndexOf(':');
  if (i <= 0) die(`--${key}: expected host:port, got ${s}`);
  let host = s.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) die(`--${key}: bad port in ${s}`);
  return { host, port };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function errorJson(e) {
  return { ok: false, status: e && e.status !== undefined ? e.status : null, message: e && e.message ? e.message : String(e) };
}

let shutdown = async () => {};
function onSignal() {
  shutdown().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`peer.js: shutdown failed: ${e && e.stack}\n`);
      process.exit(1);
    },
  );
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

async function runRegistry(args) {
  const reg = new Registry({
    advertiseHost: args['advertise-host'] || '127.0.0.1',
    bind: args.bind,
    heartbeatTimeoutMs: int(args, 'heartbeat-timeout-ms', 20000),
    sweepIntervalMs: int(args, 'sweep-interval-ms', 1000),
    closeRemovesKey: !!args['close-removes-key'],
    maxPayload: int(args, 'max-frame-bytes', 0) || undefined,
    log: makeLogger('registry', args['log-level']),
  });
  const teardown = await reg.listen(int(args, 'port', 9000));
  shutdown = teardown;
  process.stdout.write(`READY ${JSON.stringify({ role: 'registry', port: reg.port })}\n`);
}

async function runApp(args) {
  if (!args.namespace || args.namespace === true) die('--namespace is required');
  const registry = hostPort(args.registry || '127.0.0.1:9000', 'registry');
  const app = new Application({
    namespace: String(args.namespace),
    registry,
    advertiseHost: args['advertise-host'] || '127.0.0.1',
    bind: args.bind,
    heartbeatIntervalMs: int(args, 'heartbeat-interval-ms', 10000),
    reconnectIntervalMs: int(args, 'reconnect-interval-ms', 3000),
    requestTimeoutMs: int(args, 'request-timeout-ms', 30000),
    registryLookupTimeoutMs: int(args, 'lookup-timeout-ms', 10000),
    breakerCooldownMs: int(args, 'breaker-cooldown-ms', 30000),
    handshakeTimeoutMs: int(args, 'handshake-timeout-ms', 5000),
    waitForRegistry: !!args['wait-for-registry'],
    log: makeLogger(`app:${args.namespace}`, args['log-level']),
  });

  const counters = { slowAborted: 0, pushesReceived: 0, lastData: {} };
  const mode = { failEcho: false };
  if (args['serve-echo']) {
    app.register('/echo', async ({ data, push }) => {
      if (push) counters.pushesReceived++;
      counters.lastData['/echo'] = data;
      if (mode.failEcho) {
        const e = new Error('boom');
        e.status = 500;
        throw e;
      }
      return data;
    });
    app.register('/fail', async ({ data }) => {
      counters.lastData['/fail'] = data;
      const e = new Error('boom');
      e.status = 500;
      throw e;
    });
    app.register('/slow', ({ data, signal }) => {
      counters.lastData['/slow'] = data;
      const ms = data && Number.isFinite(data.ms) ? data.ms : 1000;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ slept: ms }), ms);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          counters.slowAborted++;
          reject(signal.reason);
        }, { once: true });
      });
    });
    app.register('/whoami', async () => ({ namespace: app.namespace, host: app.advertiseHost, port: app.port }));
  }

  const teardown = await app.listen(int(args, 'port', 0));
  let control;
  if (args['control-port'] !== undefined) {
    control = http.createServer(async (req, res) => {
      try {
        const path = req.url.split('?')[0];
        const raw = await readBody(req);
        let body = {};
        if (raw) {
          try {
            body = JSON.parse(raw);
          } catch {
            return sendJson(res, 400, { ok: false, message: 'bad JSON' });
          }
        }
        if (req.method === 'POST' && path === '/call') {
          try {
            const data = await app.call(body.namespace, body.url, body.data, body.timeout ?? undefined, body.retries ?? 1);
            return sendJson(res, 200, { ok: true, data: data === undefined ? null : data });
          } catch (e) {
            return sendJson(res, 200, errorJson(e));
          }
        }
        if (req.method === 'POST' && path === '/get') {
          try {
            const c = await app.get(body.namespace, body.exclude);
            return sendJson(res, 200, { ok: true, key: c.key });
          } catch (e) {
            return sendJson(res, 200, errorJson(e));
          }
        }
        if (req.method === 'POST' && path === '/push') {
          try {
            await app.push(body.namespace, body.url, body.data);
            return sendJson(res, 200, { ok: true });
          } catch (e) {
            return sendJson(res, 200, errorJson(e));
          }
        }
        if (req.method === 'POST' && path === '/mode') {
          if (typeof body.failEcho === 'boolean') mode.failEcho = body.failEcho;
          return sendJson(res, 200, { ok: true, mode });
        }
        if (req.method === 'GET' && path === '/stats') {
          return sendJson(res, 200, {
            namespace: app.namespace,
            port: app.port,
            served: app.stats.served,
            abortsReceived: app.stats.abortsIn,
            slowAborted: counters.slowAborted,
            pushesReceived: counters.pushesReceived,
            lastData: counters.lastData,
            registryConnected: !!app.registry,
            registryConnects: app.stats.registryConnects,
            heartbeatsSent: app.stats.heartbeatsSent,
            finds: app.stats.finds,
            badFrames: app.stats.badFrames,
            socketErrors: app.stats.socketErrors,
            connections: [...app.clients.keys()],
            breakers: Object.fromEntries([...app.circuitBreakers].map(([ns, m]) => [ns, [...m.keys()]])),
          });
        }
        if (req.method === 'GET' && path === '/health') {
          return sendJson(res, 200, await app.dispatch('/-/health', {}));
        }
        return sendJson(res, 404, { ok: false, message: `no route ${req.method} ${path}` });
      } catch (e) {
        return sendJson(res, 500, errorJson(e));
      }
    });
    await new Promise((resolve, reject) => {
      control.once('error', reject);
      control.listen(int(args, 'control-port', 0), '127.0.0.1', resolve);
    });
  }
  shutdown = async () => {
    if (control) await new Promise((r) => control.close(r));
    await teardown();
  };
  process.stdout.write(
    `READY ${JSON.stringify({
      role: 'app',
      namespace: app.namespace,
      port: app.port,
      controlPort: control ? control.address().port : null,
      registryConnected: !!app.registry,
    })}\n`,
  );
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const role = args._[0];
  if (role === 'registry') return runRegistry(args);
  if (role === 'app') return runApp(args);
  die('usage: peer.js registry|app [options] (see the header of peer.js)');
}

main().catch((e) => {
  process.stderr.write(`peer.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
