'use strict';
// Helpers for the node:test suites in tests/node/test and tests/integration.
//
//   buildDir()            $MICRO_BUILD_DIR, else <repo>/build
//   registryBin()         $MICRO_REGISTRY_BIN, else <build>/registry/micro-registry
//   sidecarBin()          $MICRO_SIDECAR_BIN, else <build>/sidecar/micro-sidecar
//   freePort()            a port that was free a moment ago on 127.0.0.1
//   spawnProc(cmd, args, {t, env, cwd})
//                         child process with stdout/stderr recorded; killed in
//                         t.after (or at the latest when the test file ends)
//   spawnPeer(args, opts) spawnProc(node, [peer.js, ...args]) and wait for READY
//   test(name, opts, fn)  node:test's test(), but on failure prints the output of
//                         every process the test spawned
//   waitFor(fn, {timeoutMs, intervalMs, message})
//                         poll fn until it returns a truthy value, with a deadline
//   httpJson(method, url, body, headers) -> {status, headers, body}
//   rawPeer(host, port, pathSegments, {query, t}) a raw ws client (see RawPeer)

const path = require('node:path');
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const { spawn } = require('node:child_process');
const nodeTest = require('node:test');
const { WebSocket } = require('ws');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const NODE_DIR = path.resolve(__dirname, '..');
const PEER_JS = path.join(NODE_DIR, 'peer.js');

function buildDir() {
  return process.env.MICRO_BUILD_DIR ? path.resolve(process.env.MICRO_BUILD_DIR) : path.join(REPO_ROOT, 'build');
}

function registryBin() {
  return process.env.MICRO_REGISTRY_BIN || path.join(buildDir(), 'registry', 'micro-registry');
}

function sidecarBin() {
  return process.env.MICRO_SIDECAR_BIN || path.join(buildDir(), 'sidecar', 'micro-sidecar');
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Ports handed out in this process are not handed out twice, so two freePort()
// calls before anything listens cannot collide.
const handedOut = new Set();
async function freePort(host = '127.0.0.1') {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no fresh port found');
}

/** Poll `fn` (sync or async) until it returns something truthy; return it. */
async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, message } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  let lastVal;
  for (;;) {
    try {
      lastVal = await fn();
      if (lastVal) return lastVal;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const what = message || fn.toString().slice(0, 200);
  const err = new Error(
    `waitFor: timed out after ${timeoutMs} ms: ${what}` +
      (lastErr ? ` (last error: ${lastErr.message})` : ` (last value: ${safeJson(lastVal)})`),
  );
  if (lastErr) err.cause = lastErr;
  throw err;
}

function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------
// processes

const allProcs = new Set();
const procsByTest = new WeakMap();

class Proc {
  constructor(cmd, args, opts = {}) {
    this.cmd = cmd;
    this.args = args;
    this.name = opts.name || path.basename(cmd);
    this.stdout = '';
    this.stderr = '';
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    this.child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...(opts.env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid;
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d) => {
      this.stdout += d;
    });
    this.child.stderr.on('data', (d) => {
      this.stderr += d;
    });
    this.exitPromise = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.stderr += `\n[spawn error: ${e.message}]\n`;
        this.exited = true;
        resolve({ code: null, signal: null, error: e });
      });
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
    });
    allProcs.add(this);
    this.exitPromise.then(() => allProcs.delete(this));
  }

  /** Wait for a stdout line matching `re`; returns the match. */
  waitForLine(re, timeoutMs = 10000) {
    return waitFor(
      () => {
        if (this.exited && !re.test(this.stdout)) {
          throw new Error(`${this.name} exited (code ${this.exitCode}, signal ${this.exitSignal}) before printing ${re}`);
        }
        return this.stdout.match(re);
      },
      { timeoutMs, intervalMs: 10, message: `${this.name} prints ${re}` },
    ).catch((e) => {
      // a process that died is not going to print it: fail fast with its output
      throw new Error(`${e.message}\n${this.describe()}`);
    });
  }

  /** Wait for a stdout or stderr line matching `re`. */
  waitForOutput(re, timeoutMs = 10000) {
    return waitFor(() => (this.stdout + this.stderr).match(re), {
      timeoutMs,
      intervalMs: 10,
      message: `${this.name} output matches ${re}`,
    });
  }

  kill(signal = 'SIGTERM') {
    if (!this.exited) {
      try {
        this.child.kill(signal);
      } catch {
        /* gone */
      }
    }
  }

  /** {code, signal} or throws after timeoutMs. */
  async waitExit(timeoutMs = 5000) {
    let timer;
    const r = await Promise.race([
      this.exitPromise,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!r) throw new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms`);
    return r;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 3000) {
    if (this.exited) return this.exitPromise;
    this.kill('SIGTERM');
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.kill('SIGKILL');
      return this.exitPromise;
    }
  }

  describe() {
    return (
      `----- ${this.name} (pid ${this.pid}): ${this.cmd} ${this.args.join(' ')}\n` +
      `exit: ${this.exited ? `code ${this.exitCode} signal ${this.exitSignal}` : 'still running'}\n` +
      `--- stdout ---\n${this.stdout.slice(-20000)}\n--- stderr ---\n${this.stderr.slice(-20000)}\n-----`
    );
  }
}

/**
 * Spawn a process whose output is recorded. With {t} it is stopped in t.after and
 * its output is printed if the test (wrapped by harness.test) fails.
 */
function spawnProc(cmd, args = [], opts = {}) {
  const p = new Proc(cmd, args, opts);
  const t = opts.t;
  if (t) {
    if (!procsByTest.has(t)) procsByTest.set(t, []);
    procsByTest.get(t).push(p);
    t.after(() => p.stop());
  }
  return p;
}

/** Spawn tests/node/peer.js and wait for its READY line; returns {proc, info}. */
async function spawnPeer(args, opts = {}) {
  const proc = spawnProc(process.execPath, [PEER_JS, ...args], { name: opts.name || `peer ${args[0]}`, ...opts });
  const m = await proc.waitForLine(/^READY (.*)$/m, opts.timeoutMs || 10000);
  return { proc, info: JSON.parse(m[1]) };
}

function dumpProcs(t) {
  const procs = procsByTest.get(t) || [];
  for (const p of procs) {
    const text = p.describe();
    for (const line of text.split('\n')) t.diagnostic(line);
  }
}

function wrap(fn) {
  if (typeof fn !== 'function') return fn;
  return async function wrapped(t, ...rest) {
    try {
      return await fn(t, ...rest);
    } catch (e) {
      dumpProcs(t);
      throw e;
    }
  };
}

/** node:test's test(), printing spawned processes' output when it fails. */
function test(name, opts, fn) {
  if (typeof opts === 'function') return nodeTest.test(name, wrap(opts));
  return nodeTest.test(name, opts, wrap(fn));
}

// Safety net: nothing outlives the test file.
process.on('exit', () => {
  for (const p of allProcs) p.kill('SIGKILL');
});
nodeTest.after(async () => {
  await Promise.all([...allProcs].map((p) => p.stop(2000)));
});

// ---------------------------------------------------------------------------
// HTTP

/** One request, no keep-alive. body: object (sent as JSON), string, or undefined. */
function httpJson(method, url, body, headers = {}, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let payload;
    const h = { connection: 'close', ...headers };
    if (body !== undefined) {
      payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request(
      // URL keeps an IPv6 host's brackets ("[::1]"); http.request wants it bare
      { method, hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, path: u.pathname + u.search, headers: h, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = text;
          if (text.length) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// raw WebSocket peer

/**
 * A raw protocol client. Frames it sends are built by hand in the reference's key
 * order; everything it receives is logged in `frames` (parsed JSON, or
 * {raw: string} when not JSON). It answers nothing unless a handler is set
 * with handle(url, fn).
 */
class RawPeer {
  constructor(host, port, pathSegments, opts = {}) {
    const p = typeof pathSegments === 'string' ? pathSegments : '/' + pathSegments.map(String).join('/');
    const q = opts.query ? (typeof opts.query === 'string' ? opts.query : new URLSearchParams(opts.query).toString()) : '';
    this.url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}${p}${q ? `?${q}` : ''}`;
    this.frames = []; // parsed frames received ({raw} when not JSON)
    this.rawFrames = []; // the same, as the text on the wire
    this.sent = [];
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 0;
    this.openedFlag = false;
    this.closeInfo = null;
    const wsOpts = { maxPayload: opts.maxPayload || 0, handshakeTimeout: opts.handshakeTimeoutMs || 5000 };
    if (opts.localAddress) wsOpts.localAddress = opts.localAddress; // e.g. 127.0.0.2: another source address
    this.ws = new WebSocket(this.url, wsOpts);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.openedFlag = true;
        resolve(this);
      });
      this.ws.once('close', () => reject(new Error(`${this.url}: closed before open`)));
      this.ws.once('error', (e) => reject(e));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('unexpected-response', (req, res) => {
        this.unexpectedStatus = res.statusCode;
        res.resume();
      });
      this.ws.on('error', (e) => {
        this.lastError = e;
      });
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), opened: this.openedFlag, unexpectedStatus: this.unexpectedStatus };
        for (const [, p] of this.pending) p.reject(new Error(`connection closed (code ${code})`));
        this.pending.clear();
        resolve(this.closeInfo);
      });
    });
    this.ws.on('message', (raw, isBinary) => this._onMessage(raw, isBinary));
  }

  ready() {
    return this.opened;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  _id() {
    return this.nextId++;
  }

  _onMessage(raw) {
    const text = raw.toString('utf8');
    this.rawFrames.push(text);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.frames.push({ raw: text });
      return;
    }
    this.frames.push(msg);
    if (!msg || typeof msg !== 'object') return;
    if (msg.mode === 1) {
      const p = this.pending.get(msg.id);
      if (p) {
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(msg.data);
      }
    } else if (msg.mode === 0 && msg.data && this.handlers.has(msg.data.url)) {
      Promise.resolve()
        .then(() => this.handlers.get(msg.data.url)(msg.data.data, msg))
        .then(
          (result) => msg.twoway && this.sendRaw(JSON.stringify({ id: msg.id, mode: 1, twoway: false, data: { status: 200, data: result } })),
          (e) => msg.twoway && this.sendRaw(JSON.stringify({ id: msg.id, mode: 1, twoway: false, data: { status: e.status || 500, data: null, message: e.message } })),
        );
    }
  }

  /** Answer requests for `url` with fn(data, frame). */
  handle(url, fn) {
    this.handlers.set(url, fn);
  }

  sendRaw(s) {
    this.sent.push(s);
    this.ws.send(s);
  }

  /**
   * Send a two-way REQUEST; resolves to the RESPONSE's `data` object (e.g.
   * {status:200} or {status:200,data:{...}}). The returned promise has `.id`.
   */
  /** One text message sent as several WebSocket fragments (continuation frames). */
  sendFragments(parts) {
    this.sent.push(parts.join(''));
    parts.forEach((part, i) => this.ws.send(part, { fin: i === parts.length - 1, binary: false }));
  }

  request(url, data, { timeout = 5000 } = {}) {
    const id = this._id();
    let entry;
    const p = new Promise((resolve, reject) => {
      entry = { resolve, reject };
    });
    entry.timer = setTimeout(() => {
      if (this.pending.get(id) === entry) {
        this.pending.delete(id);
        entry.reject(new Error(`request ${id} ${url}: no response within ${timeout} ms`));
      }
    }, timeout);
    this.pending.set(id, entry);
    this.sendRaw(JSON.stringify({ id, twoway: true, data: { url, data }, mode: 0 }));
    p.id = id;
    return p;
  }

  push(url, data) {
    const id = this._id();
    this.sendRaw(JSON.stringify({ id, twoway: false, data: { url, data }, mode: 0 }));
    return id;
  }

  abort(requestId) {
    const id = this._id();
    this.sendRaw(JSON.stringify({ id, twoway: false, data: requestId, mode: 2 }));
    return id;
  }

  /** Close info {code, reason, opened, unexpectedStatus}; rejects after timeoutMs. */
  async waitClosed(timeoutMs = 5000) {
    let timer;
    const r = await Promise.race([
      this.closed,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!r) throw new Error(`${this.url}: still open after ${timeoutMs} ms`);
    return r;
  }

  close(code) {
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else if (code) this.ws.close(code);
    else this.ws.close();
    return this.closed;
  }

  terminate() {
    this.ws.terminate();
    return this.closed;
  }
}

function rawPeer(host, port, pathSegments, opts = {}) {
  const peer = new RawPeer(host, port, pathSegments, opts);
  if (opts.t) opts.t.after(() => peer.terminate());
  return peer;
}

module.exports = {
  REPO_ROOT,
  NODE_DIR,
  PEER_JS,
  buildDir,
  registryBin,
  sidecarBin,
  isExecutable,
  freePort,
  waitFor,
  sleep,
  spawnProc,
  spawnPeer,
  test,
  httpJson,
  rawPeer,
  RawPeer,
};
