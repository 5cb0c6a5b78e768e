'use strict';
// A faithful re-implementation of the @hile/micro 1.0.5 wire protocol
// (docs/PROTOCOL.md) in plain Node.js on top of `ws`. The real package is not
// available to us; these classes exist so that our C registry and sidecar can be
// tested against a peer that behaves the way the reference does, byte for byte
// where the reference defines bytes (frame key order, ids, error shapes).
//
// Layers, as in the reference:
//   Modem       one per WebSocket: ids, frames, pending requests, timeouts, ABORT
//   Server      listens, parses the handshake path, one connection per host:port
//   Registry    namespace -> set of host:port, /-/find, /-/heartbeat, sweep
//   Application registry client, heartbeat, reconnect, discovery cache, call()
//
// Where the reference leaves something open (what a rejected promise looks like
// when a socket closes, ...) the choice is marked "ours" in a comment.

const os = require('node:os');
const { randomUUID } = require('node:crypto');
const { EventEmitter } = require('node:events');
const { WebSocket, WebSocketServer } = require('ws');

const MODE = Object.freeze({ REQUEST: 0, RESPONSE: 1, ABORT: 2 });
// ids wrap to 0 before 2^53-1 (docs/PROTOCOL.md §3.2)
const ID_LIMIT = Number.MAX_SAFE_INTEGER;

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 };
function makeLogger(name, level) {
  const max = LEVELS[level || process.env.MICRO_PEER_LOG || 'warn'] ?? 1;
  const out = (lvl) => (...args) => {
    if (LEVELS[lvl] <= max) {
      process.stderr.write(`[${new Date().toISOString()}] ${lvl} ${name}: ${args.map(String).join(' ')}\n`);
    }
  };
  return { error: out('error'), warn: out('warn'), info: out('info'), debug: out('debug') };
}

class MicroError extends Error {
  constructor(message, status, extra) {
    super(message);
    this.status = status;
    if (extra) Object.assign(this, extra);
  }
}

function abortError() {
  // what the reference's MessageModem rejects with on timeout / abort()
  return new MicroError('Abort', 'ECONNABORTED');
}

function closedError() {
  // ours: the reference rejects pending requests when the socket closes; the exact
  // error is not part of the wire protocol.
  return new MicroError('Connection closed', 'ECONNRESET');
}

// ---------------------------------------------------------------------------
// address keys (docs/PROTOCOL.md §2.3)

function formatKey(host, port) {
  return `${host}:${port}`;
}

/** Split at the last ':'; `[v6]` brackets are removed; port must be 1..65535. */
function parseAddressKey(key) {
  if (typeof key !== 'string') return undefined;
  const i = key.lastIndexOf(':');
  if (i <= 0) return undefined;
  let host = key.slice(0, i);
  const portStr = key.slice(i + 1);
  if (!/^[0-9]{1,5}$/.test(portStr)) return undefined;
  const port = Number(portStr);
  if (port < 1 || port > 65535) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (!host) return undefined;
  return { host, port };
}

/** Uniformly random among the keys that parse; undefined when none does. */
function selectRandomRegistryAddress(keys) {
  const parsed = [];
  for (const k of keys) {
    const a = parseAddressKey(k);
    if (a) parsed.push(a);
  }
  if (parsed.length === 0) return undefined;
  return parsed[Math.floor(Math.random() * parsed.length)];
}

function assertValidSocket(label, host, port) {
  if (typeof host !== 'string' || host.length === 0) {
    throw new Error(`${label}: invalid host ${JSON.stringify(host)}`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${label}: invalid port ${JSON.stringify(port)}`);
  }
}

function wsHost(host) {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function localIPv4() {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list || []) {
      if ((a.family === 'IPv4' || a.family === 4) && !a.internal) return a.address;
    }
  }
  return undefined;
}

/**
 * Handshake path -> [host, port, ...extras] (docs/PROTOCOL.md §2.2): query dropped, one
 * leading and one trailing '/' stripped, split on '/'. undefined = close at once.
 */
function parseHandshakePath(url) {
  let p = String(url || '');
  const q = p.indexOf('?');
  if (q >= 0) p = p.slice(0, q);
  if (p.startsWith('/')) p = p.slice(1);
  if (p.endsWith('/')) p = p.slice(0, -1);
  const parts = p.split('/');
  if (parts.length < 3) return undefined;
  const [host, port, ...extras] = parts;
  if (!host || !port) return undefined;
  return { host, port, extras };
}

// ---------------------------------------------------------------------------
// Modem: one per connection

class Modem extends EventEmitter {
  /**
   * @param {WebSocket} socket an open (or opening) ws socket
   * @param {object} o
   * @param {(url, data, ctx) => Promise<any>} o.dispatch route a REQUEST
   * @param {number} [o.defaultTimeout] request timeout when none is given
   */
  constructor(socket, o = {}) {
    super();
    this.socket = socket;
    this.dispatch = o.dispatch || (async (url) => { throw new MicroError(String(url), 500); });
    this.defaultTimeout = o.defaultTimeout ?? 30000;
    this.log = o.log || makeLogger('modem');
    this.nextIdValue = 0;
    this.pending = new Map(); // id -> { resolve, reject, timer }   (requests we sent)
    this.inflight = new Map(); // id -> AbortController             (requests we serve)
    this.closed = false;
    this.stats = { framesIn: 0, framesOut: 0, badFrames: 0, abortsIn: 0, abortsOut: 0 };
    socket.on('message', (raw, isBinary) => this._onMessage(raw, isBinary));
    socket.on('close', (code, reason) => this._onClose(code, reason));
    socket.on('error', (err) => {
      // e.g. a protocol violation by the other side ("invalid status code 0")
      this.log.debug('socket error', err.message);
      this.emit('socketerror', err);
    });
  }

  nextId() {
    const id = this.nextIdValue;
    this.nextIdValue = id + 1 >= ID_LIMIT ? 0 : id + 1;
    return id;
  }

  get isOpen() {
    return !this.closed && this.socket.readyState === WebSocket.OPEN;
  }

  _write(text) {
    if (!this.isOpen) return false;
    this.stats.framesOut++;
    this.socket.send(text);
    return true;
  }

  /** REQUEST / push / ABORT, keys in the reference's order: id,twoway,data,mode */
  _sendOutbound(id, twoway, data, mode) {
    return this._write(JSON.stringify({ id, twoway, data, mode }));
  }

  /** RESPONSE, keys in the reference's order: id,mode,twoway,data */
  _sendResponse(id, data) {
    return this._write(JSON.stringify({ id, mode: MODE.RESPONSE, twoway: false, data }));
  }

  /**
   * A two-way request. Returns { id, abort(), response() } like the reference's
   * Client.request. On timeout (or abort()) an ABORT frame is sent and response()
   * rejects with status ECONNABORTED, message "Abort".
   */
  request(url, data, timeout) {
    const id = this.nextId();
    const ms = timeout ?? this.defaultTimeout;
    let settle;
    const promise = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    promise.catch(() => {}); // the caller may never ask for response()
    if (!this.isOpen) {
      settle.reject(closedError());
      return { id, abort() {}, response: () => promise };
    }
    const entry = { resolve: settle.resolve, reject: settle.reject, timer: null };
    this.pending.set(id, entry);
    const abort = () => {
      if (this.pending.get(id) !== entry) return;
      this.pending.delete(id);
      clearTimeout(entry.timer);
      this.stats.abortsOut++;
      this._sendOutbound(this.nextId(), false, id, MODE.ABORT);
      entry.reject(abortError());
    };
    if (ms > 0 && Number.isFinite(ms)) entry.timer = setTimeout(abort, ms);
    this._sendOutbound(id, true, { url, data }, MODE.REQUEST);
    return { id, abort, response: () => promise };
  }

  /** A push: REQUEST with twoway false; nothing ever comes back. */
  push(url, data) {
    const id = this.nextId();
    this._sendOutbound(id, false, { url, data }, MODE.REQUEST);
    return id;
  }

  _onMessage(raw, isBinary) {
    this.stats.framesIn++;
    let msg;
    try {
      msg = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw));
    } catch {
      this.stats.badFrames++;
      this.emit('badframe', raw);
      return; // the reference ignores frames that are not JSON
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.stats.badFrames++;
      return;
    }
    switch (msg.mode) {
      case MODE.REQUEST: return this._onRequest(msg);
      case MODE.RESPONSE: return this._onResponse(msg);
      case MODE.ABORT: return this._onAbort(msg);
      default:
        this.stats.badFrames++;
    }
  }

  _onRequest(msg) {
    const id = msg.id;
    const body = msg.data && typeof msg.data === 'object' ? msg.data : {};
    const url = body.url;
    const payload = body.data;
    if (!msg.twoway) {
      // push: run it, never answer
      Promise.resolve()
        .then(() => this.dispatch(url, payload, { signal: new AbortController().signal, push: true }))
        .catch((e) => this.log.debug('push handler failed', url, e && e.message));
      return;
    }
    if (msg.stream === true) {
      // 1.0.5 has no streaming; docs/PROTOCOL.md §3.4 says answer an error rather than silence
      this._sendResponse(id, { status: 500, data: null, message: 'stream not supported' });
      return;
    }
    const ac = new AbortController();
    this.inflight.set(id, ac);
    Promise.resolve()
      .then(() => this.dispatch(url, payload, { signal: ac.signal, push: false }))
      .then(
        (result) => {
          if (this.inflight.get(id) === ac) this.inflight.delete(id);
          if (ac.signal.aborted) return; // aborted: no RESPONSE
          // JSON.stringify leaves `data` out when it is undefined: {"status":200}
          this._sendResponse(id, { status: 200, data: result });
        },
        (err) => {
          if (this.inflight.get(id) === ac) this.inflight.delete(id);
          if (ac.signal.aborted) return;
          const status = err && err.status != null ? err.status : 500;
          const message = err && err.message != null ? String(err.message) : String(err);
          this._sendResponse(id, { status, data: null, message });
        },
      );
  }

  _onResponse(msg) {
    const entry = this.pending.get(msg.id);
    if (!entry) return; // late or unknown: dropped
    this.pending.delete(msg.id);
    clearTimeout(entry.timer);
    const d = msg.data && typeof msg.data === 'object' ? msg.data : {};
    if (d.status === 200) entry.resolve(d.data);
    else entry.reject(new MicroError(d.message != null ? String(d.message) : `status ${d.status}`, d.status, { data: d.data }));
  }

  _onAbort(msg) {
    this.stats.abortsIn++;
    const ac = this.inflight.get(msg.data);
    if (!ac) return;
    this.inflight.delete(msg.data);
    this.emit('abort', msg.data);
    ac.abort(abortError());
  }

  _onClose(code, reason) {
    if (this.closed) return;
    this.closed = true;
    for (const [, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(closedError());
    }
    this.pending.clear();
    // ours: a handler whose connection went away is told so through its signal
    for (const [, ac] of this.inflight) ac.abort(closedError());
    this.inflight.clear();
    this.emit('close', code, reason && reason.toString());
  }

  /** Close without a close code, like the reference (the other side sees 1005). */
  dispose() {
    if (this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
    else if (this.socket.readyState === WebSocket.OPEN) this.socket.close();
  }
}

// ---------------------------------------------------------------------------
// Client: a Modem that knows which peer it talks to

class Client extends Modem {
  constructor(socket, o) {
    super(socket, o);
    this.host = o.host;
    this.port = o.port;
    this.extras = o.extras || [];
    this.inbound = !!o.inbound;
    this.key = formatKey(this.host, this.port);
  }
}

// ---------------------------------------------------------------------------
// Server

class Server extends EventEmitter {
  /**
   * @param {string} namespace
   * @param {object} [props]
   * @param {string} [props.advertiseHost] default: first non-internal IPv4
   * @param {string} [props.bind] listen address (default: all interfaces)
   * @param {number} [props.maxPayload] largest frame accepted (ws closes with 1009)
   * @param {number} [props.handshakeTimeoutMs] outbound connect timeout (5000)
   * @param {number} [props.requestTimeoutMs] default modem request timeout (30000)
   */
  constructor(namespace, props = {}) {
    super();
    this.namespace = namespace;
    const adv = props.advertiseHost || localIPv4();
    if (!adv) throw new Error('advertiseHost is not set and the machine has no non-internal IPv4');
    this.advertiseHost = adv;
    this.bind = props.bind;
    this.maxPayload = props.maxPayload;
    this.handshakeTimeoutMs = props.handshakeTimeoutMs ?? 5000;
    this.modemTimeoutMs = props.requestTimeoutMs ?? 30000;
    this.log = props.log || makeLogger(`${namespace}`);
    this.routes = new Map();
    this.clients = new Map(); // "host:port" -> Client, inbound and outbound alike
    this.sockets = new Set(); // every live Client, also ones replaced in the map
    this.connecting = new Map(); // "host:port" -> Promise<Client> (outbound in progress)
    this.port = 0;
    this.wss = null;
    this.stats = { served: {}, abortsIn: 0, badFrames: 0, connectionsIn: 0, connectionsOut: 0, rejectedHandshakes: 0, socketErrors: [] };
  }

  setPort(port) {
    this.port = port;
    return this;
  }

  register(url, handler) {
    this.routes.set(url, handler);
    return () => {
      if (this.routes.get(url) === handler) this.routes.delete(url);
    };
  }

  async dispatch(url, data, ctx = {}) {
    const handler = this.routes.get(url);
    // the reference answers an unknown url with status 500 and the url as message
    if (!handler) throw new MicroError(String(url), 500);
    this.stats.served[url] = (this.stats.served[url] || 0) + 1;
    return handler({ url, data, ...ctx });
  }

  _makeClient(socket, o) {
    const client = new Client(socket, {
      ...o,
      defaultTimeout: this.modemTimeoutMs,
      log: this.log,
      dispatch: (url, data, ctx) => this.dispatch(url, data, { ...ctx, client }),
    });
    client.on('abort', () => this.stats.abortsIn++);
    client.on('badframe', () => this.stats.badFrames++);
    client.on('socketerror', (e) => {
      if (this.stats.socketErrors.length < 50) this.stats.socketErrors.push(`${client.key}: ${e.message}`);
    });
    return client;
  }

  _adopt(client) {
    this.sockets.add(client);
    this.clients.set(client.key, client);
    client.once('close', () => {
      this.sockets.delete(client);
      // only if the map still points at this very connection
      if (this.clients.get(client.key) === client) this.clients.delete(client.key);
      this.emit('disconnect', client, client.extras);
    });
    this.emit('connect', client, client.extras);
  }

  /** Listen; resolves to an async teardown like the reference's listen(). */
  listen(port = 0) {
    return new Promise((resolve, reject) => {
      const opts = { port, clientTracking: true };
      if (this.bind) opts.host = this.bind;
      if (this.maxPayload) opts.maxPayload = this.maxPayload;
      const wss = new WebSocketServer(opts);
      const onError = (e) => reject(e);
      wss.once('error', onError);
      wss.once('listening', () => {
        wss.off('error', onError);
        wss.on('error', (e) => this.log.error('server error', e.message));
        this.wss = wss;
        this.setPort(wss.address().port);
        resolve(() => this._teardown());
      });
      wss.on('connection', (socket, req) => this._onConnection(socket, req));
    });
  }

  _onConnection(socket, req) {
    const parsed = parseHandshakePath(req.url);
    if (!parsed) {
      this.stats.rejectedHandshakes++;
      this.log.debug('bad handshake path', req.url);
      socket.on('error', () => {});
      socket.close(); // closed at once (no close code, like the reference)
      return;
    }
    this.stats.connectionsIn++;
    const client = this._makeClient(socket, {
      host: parsed.host,
      port: parsed.port,
      extras: parsed.extras,
      inbound: true,
    });
    this._adopt(client);
  }

  /**
   * The connection to host:port, reusing one that exists under that key whichever
   * side opened it; otherwise dial ws://host:port/{advertiseHost}/{port}/{namespace}.
   */
  connect(host, port, timeout = this.handshakeTimeoutMs) {
    const key = formatKey(host, port);
    const existing = this.clients.get(key);
    if (existing && existing.isOpen) return Promise.resolve(existing);
    if (this.connecting.has(key)) return this.connecting.get(key);
    const p = new Promise((resolve, reject) => {
      const url = `ws://${wsHost(host)}:${port}/${this.advertiseHost}/${this.port}/${this.namespace}`;
      const socket = new WebSocket(url, { maxPayload: this.maxPayload || undefined });
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        socket.terminate();
        reject(new Error('Connection timeout'));
      }, timeout);
      socket.once('open', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.stats.connectionsOut++;
        const client = this._makeClient(socket, { host, port, extras: [], inbound: false });
        this._adopt(client);
        resolve(client);
      });
      socket.once('error', (e) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(e);
      });
      socket.once('close', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(new Error('Connection closed during handshake'));
      });
    });
    this.connecting.set(key, p);
    const clear = () => {
      if (this.connecting.get(key) === p) this.connecting.delete(key);
    };
    p.then(clear, clear);
    return p;
  }

  async _teardown() {
    const wss = this.wss;
    this.wss = null;
    for (const c of [...this.sockets]) c.dispose();
    if (!wss) return;
    await new Promise((resolve) => {
      const kill = setTimeout(() => {
        for (const s of wss.clients) s.terminate();
        for (const c of this.sockets) c.socket.terminate();
      }, 1000);
      wss.close(() => {
        clearTimeout(kill);
        resolve();
      });
    });
    for (const c of this.sockets) c.socket.terminate();
  }
}

// ---------------------------------------------------------------------------
// Registry (docs/PROTOCOL.md §4)

class Registry extends Server {
  /**
   * @param {object} [props] Server props plus
   * @param {number} [props.heartbeatTimeoutMs] 20000
   * @param {number} [props.sweepIntervalMs] 1000
   * @param {boolean} [props.closeRemovesKey] false. true = 1.0.5's close handling
   *   (PROTOCOL §4 "on close: remove it"): a closing connection removes its key even
   *   when a newer connection has registered it since, which is how a re-dial that
   *   beats the old connection's close leaves an instance connected but unlisted
   */
  constructor(props = {}) {
    super('registry', props);
    this.heartbeatTimeoutMs = props.heartbeatTimeoutMs ?? 20000;
    this.sweepIntervalMs = props.sweepIntervalMs ?? 1000;
    this.closeRemovesKey = !!props.closeRemovesKey;
    this.namespaces = new Map(); // ns -> Set<key>
    this.members = new Map(); // key -> { client, namespace }
    this.heartbeats = new Map(); // Client -> last heartbeat (ms)
    this.stats.finds = 0;
    this.stats.evictions = 0;

    this.on('connect', (client, extras) => {
      if (!client.inbound) return;
      const ns = extras.join('/');
      const prev = this.members.get(client.key);
      if (prev) this._removeKey(client.key, prev.namespace);
      this.members.set(client.key, { client, namespace: ns });
      if (!this.namespaces.has(ns)) this.namespaces.set(ns, new Set());
      this.namespaces.get(ns).add(client.key);
      this.heartbeats.set(client, Date.now());
    });
    this.on('disconnect', (client) => {
      this.heartbeats.delete(client);
      const m = this.members.get(client.key);
      // a replaced connection closing must not remove its successor (ours; 1.0.5
      // removes the key whoever holds it: closeRemovesKey)
      if (!m || (m.client !== client && !this.closeRemovesKey)) return;
      this.members.delete(client.key);
      this._removeKey(client.key, m.namespace);
    });
    this.register('/-/find', async ({ data }) => {
      this.stats.finds++;
      const keys = this.namespaces.get(data.namespace);
      if (!keys) return undefined;
      let candidates = keys;
      if (Array.isArray(data.exclude) && data.exclude.length) {
        const ex = new Set(data.exclude);
        candidates = [...keys].filter((k) => !ex.has(k));
        if (candidates.length === 0) return undefined;
      }
      return selectRandomRegistryAddress(candidates);
    });
    this.register('/-/heartbeat', async ({ client }) => {
      if (client && this.heartbeats.has(client)) this.heartbeats.set(client, Date.now());
      return undefined;
    });
  }

  _removeKey(key, ns) {
    const set = this.namespaces.get(ns);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.namespaces.delete(ns);
  }

  /** namespace -> [keys], like the C registry's GET /v1/namespaces */
  snapshot() {
    const out = {};
    for (const [ns, set] of this.namespaces) out[ns] = [...set].sort();
    return out;
  }

  async listen(port = 0) {
    const teardown = await super.listen(port);
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [client, last] of this.heartbeats) {
        if (now - last >= this.heartbeatTimeoutMs) {
          this.heartbeats.delete(client);
          this.stats.evictions++;
          this.log.info('evicting', client.key);
          client.dispose();
        }
      }
    }, this.sweepIntervalMs);
    return async () => {
      clearInterval(timer);
      await teardown();
    };
  }
}

// ---------------------------------------------------------------------------
// Application (docs/PROTOCOL.md §5)

const IDLE = 0;
const PENDING = 1;
const READY = 2;

function withTimeout(promise, ms, label) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label} timeout`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

class Application extends Server {
  /**
   * @param {object} props Server props plus
   * @param {string} props.namespace
   * @param {{host: string, port: number}} props.registry
   * @param {number} [props.registryLookupTimeoutMs] 10000
   * @param {number} [props.requestTimeoutMs] 30000
   * @param {number} [props.heartbeatIntervalMs] 10000
   * @param {number} [props.reconnectIntervalMs] 3000
   * @param {number} [props.breakerCooldownMs] 30000
   * @param {boolean} [props.waitForRegistry] false = fail listen() when the
   *   registry cannot be reached, as the reference does; true = keep retrying
   */
  constructor(props) {
    const { namespace, registry, ...rest } = props;
    super(namespace, rest);
    assertValidSocket('registry address', registry.host, registry.port);
    this.registryAddress = registry;
    this.registryLookupTimeoutMs = props.registryLookupTimeoutMs ?? 10000;
    this.requestTimeoutMs = props.requestTimeoutMs ?? 30000;
    this.heartbeatIntervalMs = props.heartbeatIntervalMs ?? 10000;
    this.reconnectIntervalMs = props.reconnectIntervalMs ?? 3000;
    this.breakerCooldownMs = props.breakerCooldownMs ?? 30000;
    this.waitForRegistry = !!props.waitForRegistry;
    this.registry = undefined; // the Client to the registry while connected
    this.namespaces = new Map(); // ns -> { host, port, status, handlers }
    this.circuitBreakers = new Map(); // ns -> Map<key, openedAt>
    this.stopped = false;
    this.reconnectTimer = undefined;
    this.heartbeatTimer = undefined;
    this.registryReconnectPromise = undefined;
    this.stats.finds = 0;
    this.stats.heartbeatsSent = 0;
    this.stats.registryConnects = 0;
    this.register('/-/health', async () => ({
      status: 'ok',
      registry: !!this.registry,
      uptime: process.uptime(),
      namespaces: [...this.namespaces.keys()],
    }));
  }

  async listen(port = 0) {
    this.stopped = false;
    const teardown = await super.listen(port);
    try {
      await this.reconnectToRegistry();
    } catch (err) {
      if (!this.waitForRegistry) {
        // the reference rolls start-up back
        await teardown();
        throw err;
      }
      this.log.warn('registry unreachable at start, retrying:', err.message);
      this.scheduleRegistryRetry();
    }
    this.startHeartbeat();
    return async () => {
      this.stopped = true;
      this.stopHeartbeat();
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      await teardown();
    };
  }

  scheduleRegistryRetry() {
    if (this.stopped || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reconnectToRegistry().catch((e) => {
        this.log.debug('registry reconnect failed:', e.message);
        this.scheduleRegistryRetry();
      });
    }, this.reconnectIntervalMs);
  }

  reconnectToRegistry() {
    if (this.registryReconnectPromise) return this.registryReconnectPromise;
    const { host, port } = this.registryAddress;
    this.registryReconnectPromise = this.connect(host, port)
      .then((client) => {
        if (this.stopped) {
          client.dispose();
          return;
        }
        this.registry = client;
        this.stats.registryConnects++;
        this.emit('registry', true);
        client.once('close', () => {
          if (this.registry === client) this.registry = undefined;
          this.emit('registry', false);
          if (this.stopped) return;
          // reconnect at once; if that fails, every reconnectIntervalMs
          this.reconnectToRegistry().catch(() => this.scheduleRegistryRetry());
        });
      })
      .finally(() => {
        this.registryReconnectPromise = undefined;
      });
    return this.registryReconnectPromise;
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (!this.registry) return;
      this.stats.heartbeatsSent++;
      this.registry.push('/-/heartbeat', {});
    }, this.heartbeatIntervalMs);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  recordSuccess(ns, host, port) {
    const ex = this.circuitBreakers.get(ns);
    if (!ex) return;
    ex.delete(formatKey(host, port));
    if (ex.size === 0) this.circuitBreakers.delete(ns);
  }

  recordFailure(ns, host, port) {
    let ex = this.circuitBreakers.get(ns);
    if (!ex) {
      ex = new Map();
      this.circuitBreakers.set(ns, ex);
    }
    ex.set(formatKey(host, port), Date.now());
  }

  getActiveExcludes(ns) {
    const ex = this.circuitBreakers.get(ns);
    if (!ex) return [];
    const now = Date.now();
    const active = [];
    for (const [key, openedAt] of ex) {
      if (now - openedAt >= this.breakerCooldownMs) ex.delete(key);
      else active.push(key);
    }
    if (ex.size === 0) this.circuitBreakers.delete(ns);
    return active;
  }

  async findFromRegistry(namespace, exclude) {
    if (!this.registry) throw new Error('Registry not found');
    this.stats.finds++;
    // ours: the request itself times out with the lookup timeout (so the ABORT goes
    // out then); the reference wraps a default-timeout request in withTimeout.
    const { response } = this.registry.request('/-/find', { namespace, exclude }, this.registryLookupTimeoutMs);
    return withTimeout(response(), this.registryLookupTimeoutMs, 'Registry /-/find');
  }

  /** Discovery: a Client for some instance of `namespace`, not one of `exclude`. */
  get(namespace, exclude) {
    if (!this.namespaces.has(namespace)) {
      this.namespaces.set(namespace, { host: '', port: 0, status: IDLE, handlers: new Set() });
    }
    const stack = this.namespaces.get(namespace);
    // kept for cache degradation
    const cachedHost = stack.host;
    const cachedPort = stack.port;
    const cachedKey = formatKey(stack.host, stack.port);
    if (
      stack.status === READY &&
      (!this.clients.has(cachedKey) || (exclude && exclude.length && exclude.includes(cachedKey)))
    ) {
      stack.status = IDLE;
      stack.host = '';
      stack.port = 0;
    }
    if (stack.status === READY) return Promise.resolve(this.clients.get(cachedKey));
    return new Promise((resolve, reject) => {
      stack.handlers.add([resolve, reject]);
      if (stack.status !== IDLE) return; // a /-/find is already under way: share it
      stack.status = PENDING;
      this.findFromRegistry(namespace, exclude)
        .then((data) => {
          if (!data) throw new Error('Namespace not found');
          assertValidSocket('peer address from registry', data.host, data.port);
          return this.connect(data.host, data.port).then((client) => {
            stack.host = data.host;
            stack.port = data.port;
            stack.status = READY;
            client.once('close', () => {
              // the peer went away: drop the cache entry (if it is still this one)
              if (this.namespaces.get(namespace) === stack && stack.status === READY &&
                  formatKey(stack.host, stack.port) === client.key) {
                this.namespaces.delete(namespace);
              }
            });
            for (const [res] of stack.handlers) res(client);
          });
        })
        .catch((e) => {
          const key = formatKey(cachedHost, cachedPort);
          const cached = cachedHost ? this.clients.get(key) : undefined;
          if (cached && cached.isOpen) {
            // registry lookup failed but the old peer is still connected: degrade
            stack.host = cachedHost;
            stack.port = cachedPort;
            stack.status = READY;
            for (const [res] of stack.handlers) res(cached);
            return;
          }
          if (this.namespaces.get(namespace) === stack) this.namespaces.delete(namespace);
          for (const [, rej] of stack.handlers) rej(e);
        })
        .finally(() => stack.handlers.clear());
    });
  }

  static withCorrelationId(data) {
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      return { _correlationId: randomUUID(), data };
    }
    if (!data._correlationId) return { ...data, _correlationId: randomUUID() };
    return data;
  }

  /** get + request + breaker + retries + correlation id (docs/PROTOCOL.md §5.3). */
  async call(namespace, url, data, timeout, retries = 1) {
    data = Application.withCorrelationId(data);
    const exclude = this.getActiveExcludes(namespace);
    let client;
    try {
      client = await this.get(namespace, exclude);
    } catch {
      // everything excluded (or lookup failed): reset the breaker, try once more
      this.circuitBreakers.delete(namespace);
      client = await this.get(namespace);
    }
    try {
      const { response } = client.request(url, data, timeout ?? this.requestTimeoutMs);
      const result = await response();
      this.recordSuccess(namespace, client.host, client.port);
      return result;
    } catch (err) {
      this.recordFailure(namespace, client.host, client.port);
      if (retries > 0) return this.call(namespace, url, data, timeout, retries - 1);
      throw err;
    }
  }

  /** Fire and forget; no response, no retry. */
  async push(namespace, url, data) {
    const client = await this.get(namespace);
    client.push(url, data);
  }
}

module.exports = {
  MODE,
  MicroError,
  Modem,
  Client,
  Server,
  Registry,
  Application,
  parseAddressKey,
  selectRandomRegistryAddress,
  parseHandshakePath,
  formatKey,
  localIPv4,
  makeLogger,
};
