'use strict';
// Helpers for the sidecar integration tests (tests/integration/sidecar*.test.js and
// interop-sidecar*.test.js): start the C registry, micro-echo apps and micro-sidecars
// on fresh loopback ports, wait for them by polling, and talk to them.
//
//   startRegistry(t, opts)      the C micro-registry (lib/registries.js)
//   startEcho(t, {name, port})  examples/echo micro-echo; {url, port, stats(), proc}
//   startSidecar(t, opts)       a micro-sidecar, waits for /-/ready (unless waitReady:false)
//   startMesh(t, opts)          registry + N providers (echo + sidecar) + consumers
//   namespaces(reg)             GET /v1/namespaces of the C registry
//   parseMetrics(text), metricValue(text, name)
//   skipReason()                why these tests are skipped (binaries not built), or false
//
// Every process is started with {t}, so it is stopped when the test ends and its
// output is printed when the test fails (harness.test).

const path = require('node:path');
const http = require('node:http');
const reg = require('./registries');

const h = reg.h;
const HOST = '127.0.0.1';

function echoBin() {
  return process.env.MICRO_ECHO_BIN || path.join(h.buildDir(), 'examples', 'echo', 'micro-echo');
}

function logLevel() {
  return process.env.MICRO_TEST_LOG_LEVEL || 'info';
}

/** false when the binaries are there (or MICRO_REQUIRE_BINARIES=1), else why not. */
function skipReason() {
  if (process.env.MICRO_REQUIRE_BINARIES === '1') return false;
  for (const b of [h.registryBin(), h.sidecarBin(), echoBin()]) {
    if (!h.isExecutable(b)) return `${b} not built (set MICRO_BUILD_DIR)`;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Prometheus text

/** Prometheus text -> [{name, labels, value}] (comments skipped). */
function parseMetrics(text) {
  const out = [];
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** The value of metric `name` (summed over its label sets); undefined when absent. */
function metricValue(text, name) {
  const rows = parseMetrics(text).filter((r) => r.name === name);
  if (!rows.length) return undefined;
  return rows.reduce((a, r) => a + r.value, 0);
}

// ---------------------------------------------------------------------------
// processes

// A port from freePort() was free a moment ago, but another test file running in
// parallel (or an outbound connection's ephemeral port) may take it before our
// process binds it. When we picked the ports ourselves and the process exits
// before it is up, start it again on fresh ports.
const START_ATTEMPTS = 4;

/** The C registry on a fresh (or the given) port; see lib/registries.js. */
async function startRegistry(t, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await reg.startCRegistry(t, opts);
    } catch (e) {
      if (opts.port || attempt >= START_ATTEMPTS || !/exited early/.test(e.message)) throw e;
    }
  }
}

async function namespaces(registry) {
  const r = await h.httpJson('GET', `${registry.http}/v1/namespaces`);
  if (r.status !== 200) throw new Error(`GET /v1/namespaces: ${r.status} ${r.text}`);
  return r.body;
}

/** micro-echo on a fresh (or the given) port; waits for its "listening" line. */
async function startEcho(t, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEchoOnce(t, opts);
    } catch (e) {
      if (opts.port || attempt >= START_ATTEMPTS || !e.exitedEarly) throw e;
    }
  }
}

async function startEchoOnce(t, opts) {
  const port = opts.port || (await h.freePort());
  const name = opts.name || `echo-${port}`;
  const proc = h.spawnProc(echoBin(), ['--port', String(port), '--bind', HOST, '--name', name, '--threads', String(opts.threads || 2)], {
    t,
    name: `micro-echo ${name}`,
  });
  const seen = await h
    .waitFor(() => (proc.exited ? 'exited' : /listening on/.test(proc.stdout + proc.stderr)), {
      timeoutMs: 10000,
      intervalMs: 10,
      message: `micro-echo ${name} prints "listening on"`,
    })
    .catch((e) => {
      throw new Error(`${e.message}\n${proc.describe()}`);
    });
  if (seen === 'exited' && !/listening on/.test(proc.stdout + proc.stderr)) {
    throw Object.assign(new Error(`micro-echo ${name} exited before listening\n${proc.describe()}`), { exitedEarly: true });
  }
  const url = `http://${HOST}:${port}`;
  return {
    name,
    port,
    url,
    proc,
    async stats() {
      const r = await h.httpJson('GET', `${url}/stats`);
      if (r.status !== 200) throw new Error(`echo /stats: ${r.status} ${r.text}`);
      return r.body;
    },
  };
}

/**
 * A micro-sidecar. opts:
 *   ns (required), registryPort (or registry "host:port"), appUrl, routes: ['*', ...],
 *   meshPort, apiPort (fresh when absent), heartbeatIntervalMs (200), reconnectIntervalMs (200),
 *   breakerCooldownMs, requestTimeoutMs, shutdownGraceMs, args: [...], waitReady (true), name
 */
async function startSidecar(t, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSidecarOnce(t, opts);
    } catch (e) {
      const ours = !opts.meshPort && !opts.apiPort;
      if (!ours || attempt >= START_ATTEMPTS || !e.exitedEarly || !/cannot listen/.test(e.message)) throw e;
    }
  }
}

async function startSidecarOnce(t, opts) {
  if (!opts.ns) throw new Error('startSidecar: ns is required');
  const meshPort = opts.meshPort || (await h.freePort());
  const apiPort = opts.apiPort || (await h.freePort());
  const registry = opts.registry || `${HOST}:${opts.registryPort}`;
  const args = [
    '--namespace', opts.ns,
    '--registry', registry,
    '--advertise-host', HOST,
    '--mesh-port', String(meshPort),
    '--mesh-bind', HOST,
    '--api-port', String(apiPort),
    '--api-bind', HOST,
    '--app-url', opts.appUrl || `http://${HOST}:1`,
    '--heartbeat-interval-ms', String(opts.heartbeatIntervalMs ?? 200),
    '--reconnect-interval-ms', String(opts.reconnectIntervalMs ?? 200),
    '--handshake-timeout-ms', String(opts.handshakeTimeoutMs ?? 2000),
    '--log-level', logLevel(),
  ];
  for (const r of opts.routes || []) args.push('--route', r);
  if (opts.breakerCooldownMs !== undefined) args.push('--breaker-cooldown-ms', String(opts.breakerCooldownMs));
  if (opts.requestTimeoutMs !== undefined) args.push('--request-timeout-ms', String(opts.requestTimeoutMs));
  if (opts.shutdownGraceMs !== undefined) args.push('--shutdown-grace-ms', String(opts.shutdownGraceMs));
  if (opts.lookupTimeoutMs !== undefined) args.push('--registry-lookup-timeout-ms', String(opts.lookupTimeoutMs));
  if (opts.args) args.push(...opts.args);
  const name = opts.name || `sidecar ${opts.ns}:${meshPort}`;
  const proc = h.spawnProc(h.sidecarBin(), args, { t, name });
  const sc = new Sidecar({ ns: opts.ns, meshPort, apiPort, proc, name });
  if (opts.waitReady !== false) await sc.waitReady();
  return sc;
}

class Sidecar {
  constructor({ ns, meshPort, apiPort, proc, name }) {
    this.ns = ns;
    this.meshPort = meshPort;
    this.apiPort = apiPort;
    this.proc = proc;
    this.name = name;
    this.key = `${HOST}:${meshPort}`;
    this.api = `http://${HOST}:${apiPort}`;
    this.mesh = `http://${HOST}:${meshPort}`;
  }

  get log() {
    return this.proc.stdout + this.proc.stderr;
  }

  /** Poll GET /-/ready on the API port until 200. */
  async waitReady(timeoutMs = 10000) {
    let last;
    const r = await h
      .waitFor(
        async () => {
          if (this.proc.exited) return 'exited'; // fail fast, do not poll a dead process
          last = await h.httpJson('GET', `${this.api}/-/ready`, undefined, {}, { timeoutMs: 1000 });
          return last.status === 200;
        },
        { timeoutMs, intervalMs: 25, message: `${this.name}: GET /-/ready is 200` },
      )
      .catch((e) => {
        throw new Error(`${e.message}; last answer: ${last ? `${last.status} ${last.text}` : 'none'}\n${this.proc.describe()}`);
      });
    if (r === 'exited') {
      const e = new Error(`${this.name} exited (code ${this.proc.exitCode}, signal ${this.proc.exitSignal}) before it was ready\n${this.proc.describe()}`);
      e.exitedEarly = true;
      throw e;
    }
    return this;
  }

  get(p, headers) {
    return h.httpJson('GET', `${this.api}${p}`, undefined, headers);
  }

  /** POST /v1/call/{ns}{url} with `body` (object -> JSON; string sent as is; undefined = empty). */
  call(ns, url, body, headers = {}, opts) {
    return h.httpJson('POST', `${this.api}/v1/call/${ns}${url}`, body, headers, opts);
  }

  push(ns, url, body, headers = {}) {
    return h.httpJson('POST', `${this.api}/v1/push/${ns}${url}`, body, headers);
  }

  async metrics(port = 'api') {
    const base = port === 'mesh' ? this.mesh : this.api;
    const r = await h.httpJson('GET', `${base}/metrics`);
    if (r.status !== 200) throw new Error(`${this.name} GET /metrics: ${r.status} ${r.text}`);
    return r.text;
  }

  async metric(name) {
    return metricValue(await this.metrics(), name);
  }
}

/**
 * registry + providers + consumers. opts:
 *   registry: options for startRegistry
 *   providers: [{ns, echoName, routes, ...sidecar opts}]  (each gets its own micro-echo,
 *              routes default ['*'])
 *   consumers: [{ns, ...sidecar opts}]  (app-url points to a dead port unless given)
 *   sidecar: options applied to every sidecar
 * Returns {registry, providers: [{echo, sidecar}], consumers: [sidecar]}.
 */
async function startMesh(t, opts = {}) {
  const registry = await startRegistry(t, opts.registry || {});
  const common = { registryPort: registry.port, ...(opts.sidecar || {}) };
  const providers = await Promise.all(
    (opts.providers || []).map(async (p) => {
      const echo = await startEcho(t, { name: p.echoName });
      const sidecar = await startSidecar(t, { ...common, routes: ['*'], appUrl: echo.url, ...p });
      return { echo, sidecar };
    }),
  );
  const consumers = await Promise.all((opts.consumers || []).map((c) => startSidecar(t, { ...common, ...c })));
  return { registry, providers, consumers };
}

/** Poll until the registry lists exactly `keys` (sorted) for `ns` ([] = not listed). */
async function waitListed(registry, ns, keys, { timeoutMs = 5000 } = {}) {
  const want = JSON.stringify([...keys].sort());
  let last;
  await h
    .waitFor(
      async () => {
        last = await namespaces(registry);
        return JSON.stringify([...(last[ns] || [])].sort()) === want;
      },
      { timeoutMs, intervalMs: 25, message: `registry lists ${ns} = ${want}` },
    )
    .catch((e) => {
      throw new Error(`${e.message}; last /v1/namespaces: ${JSON.stringify(last)}`);
    });
}

/** Many concurrent HTTP requests on one agent (maxSockets = n). */
function agentFor(n) {
  return new http.Agent({ keepAlive: true, maxSockets: n, maxFreeSockets: n });
}

function postWithAgent(agent, url, body, headers = {}, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const hdrs = { ...headers };
    if (payload !== undefined) {
      hdrs['content-type'] = 'application/json';
      hdrs['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request({ method: 'POST', hostname: u.hostname, port: u.port, path: u.pathname, headers: hdrs, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The lines of a process's output matching re (for failure messages). */
function logLines(proc, re) {
  return (proc.stdout + proc.stderr)
    .split('\n')
    .filter((l) => re.test(l))
    .join('\n');
}

/**
 * Run fn with extra environment variables, which the processes it spawns inherit
 * (processes here start with the test process's environment). Tests in a file run
 * one after the other, so nothing else spawns meanwhile.
 */
async function withEnv(env, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

/** Start `n` calls through sidecar sc at once; resolve to [{status, body, ms}] in start order. */
function concurrentCalls(sc, ns, url, n, headers = {}) {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const t0 = Date.now();
      const r = await sc.call(ns, url, { i }, headers);
      r.ms = Date.now() - t0;
      return r;
    }),
  );
}

module.exports = {
  HOST,
  h,
  echoBin,
  skipReason,
  parseMetrics,
  metricValue,
  startRegistry,
  startNodeRegistry: reg.startNodeRegistry,
  namespaces,
  startEcho,
  startSidecar,
  Sidecar,
  startMesh,
  waitListed,
  agentFor,
  postWithAgent,
  UUID_RE,
  logLines,
  withEnv,
  concurrentCalls,
};
