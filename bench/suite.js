#!/usr/bin/env node
'use strict';
// The benchmark suite (docs/BENCHMARKS.md). Run it through bench/run.sh.
//
//   node bench/suite.js [--smoke] [--build DIR] [--rounds N] [--duration S]
//        [--warmup S] [--paths direct,mesh,nginx,node] [--profile] [--out DIR]
//
// Starts, on loopback and on free ports: one C echo app (micro-echo), our registry,
// sidecars A (caller) and B (provider, --route /echo), two chained nginx, and the
// Node caller/provider (bench/node-peer.js). Checks that every path echoes the
// payload, then runs wrk (bench/post.lua) against each path, alternating paths, for
// several rounds at concurrency 1 and 64, and reports medians. Then: sidecar memory
// (idle, under load, holding 1,000 peer connections), sidecar start-to-ready time,
// and the registry benchmark (bench/registry-bench.c).
//
// Writes <out>/<timestamp>.json and <timestamp>.md (out = bench/results) and prints
// the markdown. Exit status: 0 when every path worked (requests > 0, no errors, no
// non-2xx, every check passed), 1 otherwise. Numbers are reported, never asserted.

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const http = require('node:http');
const { spawn, execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');

// ---------------------------------------------------------------------------
// options

function parseArgs(argv) {
  const o = {
    smoke: false, build: path.join(ROOT, 'build'), rounds: null, duration: null, warmup: null,
    paths: ['direct', 'mesh', 'nginx', 'node'], profile: false, out: path.join(__dirname, 'results'),
    peers: 1000, startupTrials: null, registryInstances: null, threads: 1, skip: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--smoke') o.smoke = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--build') o.build = path.resolve(val());
    else if (a === '--rounds') o.rounds = posInt(a, val());
    else if (a === '--duration') o.duration = posInt(a, val());
    else if (a === '--warmup') o.warmup = posInt(a, val());
    else if (a === '--paths') o.paths = val().split(',');
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--peers') o.peers = posInt(a, val());
    else if (a === '--startup-trials') o.startupTrials = posInt(a, val());
    else if (a === '--registry-instances') o.registryInstances = posInt(a, val());
    else if (a === '--wrk-threads') o.threads = posInt(a, val());
    else if (a === '--skip') o.skip = val().split(',');
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  for (const p of o.paths) if (!['direct', 'mesh', 'nginx', 'node'].includes(p)) usage(`unknown path ${p}`);
  o.rounds ??= o.smoke ? 1 : 3;
  o.duration ??= o.smoke ? 2 : 10;
  o.warmup ??= o.smoke ? 1 : 2;
  o.startupTrials ??= o.smoke ? 2 : 7;
  o.registryInstances ??= o.smoke ? 500 : 10000;
  return o;
}

function posInt(name, s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) usage(`${name}: expected a positive integer, got ${s}`);
  return n;
}

function usage(err) {
  const text = `usage: bench/run.sh [--smoke] [--build DIR] [--rounds N] [--duration S] [--warmup S]
                    [--paths direct,mesh,nginx,node] [--profile] [--out DIR] [--peers N]
                    [--startup-trials N] [--registry-instances N] [--wrk-threads N]
                    [--skip peers,startup,registry]
  --smoke     every path for ~2 s, 500 registry instances; checks that everything works
  --profile   also perf-record the sidecars (mesh, c=1 and c=64) and the registry
`;
  if (err) {
    process.stderr.write(`bench: ${err}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

const opt = parseArgs(process.argv.slice(2));
const BIN = {
  echo: path.join(opt.build, 'examples', 'echo', 'micro-echo'),
  registry: path.join(opt.build, 'registry', 'micro-registry'),
  sidecar: path.join(opt.build, 'sidecar', 'micro-sidecar'),
  registryBench: path.join(opt.build, 'bench', 'registry-bench'),
  libFloor: path.join(opt.build, 'bench', 'lib-floor'),
};
const PAYLOAD_FILE = path.join(__dirname, 'payload.json');
const PAYLOAD = fs.readFileSync(PAYLOAD_FILE);
const PAYLOAD_ID = JSON.parse(PAYLOAD).order.id;
const STARTED = new Date();
const RESULT_BASE = path.join(opt.out, STARTED.toISOString().replace(/[:]/g, '-').replace(/\..*/, 'Z') + (opt.smoke ? '-smoke' : ''));
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

// ---------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const failures = [];
function fail(msg) {
  failures.push(msg);
  log(`FAILED: ${msg}`);
}
function log(msg) {
  process.stderr.write(`bench: ${msg}\n`);
}

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function readFileSafe(f) {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return null;
  }
}

/** utime + stime of a process (all its threads), in seconds; null when gone. */
function cpuSeconds(pid) {
  const s = readFileSafe(`/proc/${pid}/stat`);
  if (!s) return null;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function memKb(pid) {
  const s = readFileSafe(`/proc/${pid}/status`);
  if (!s) return null;
  const get = (k) => {
    const m = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : null;
  };
  return { rss: get('VmRSS'), hwm: get('VmHWM'), anon: get('RssAnon'), file: get('RssFile') };
}

function childPids(pid) {
  const s = readFileSafe(`/proc/${pid}/task/${pid}/children`);
  return s ? s.trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

/** Machine-wide busy and idle CPU seconds (all cores) from /proc/stat. */
function machineCpu() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line;
  return { busy: (user + nice + system + irq + softirq + steal) / CLK_TCK, idle: (idle + iowait) / CLK_TCK };
}

function httpRequest(method, port, urlPath, body, { agent, timeoutMs = 5000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: urlPath, method, agent: agent || false,
      headers: body ? { 'content-type': 'application/json', 'content-length': body.length, ...headers } : headers,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------
// processes we start (and only those are ever stopped)

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'micro-bench-'));
fs.chmodSync(tmp, 0o755);
const procs = [];
let stopping = false;

function start(name, cmd, args, { env, quiet } = {}) {
  const logFile = path.join(tmp, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { name, child, pid: child.pid, logFile, text: '', exited: null, expectExit: false, listeners: [] };
  const onData = (d) => {
    fs.writeSync(out, d);
    if (p.text.length < 1 << 20) p.text += d.toString('utf8');
    for (const l of p.listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.on('error', (e) => {
    p.exited = { error: e.message };
    for (const l of p.listeners) l();
  });
  child.on('exit', (code, signal) => {
    p.exited = { code, signal };
    fs.closeSync(out);
    if (!p.expectExit && !stopping && !quiet) fail(`${name} exited unexpectedly (code ${code}, signal ${signal}); log: ${logFile}`);
    for (const l of p.listeners) l();
  });
  procs.push(p);
  return p;
}

function waitOutput(p, re, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = p.text.match(re);
      if (m) return done(null, m);
      if (p.exited) return done(new Error(`${p.name} exited before ${what}: ${tail(p.text)}`));
      return undefined;
    };
    const timer = setTimeout(() => done(new Error(`${p.name}: no ${what} within ${timeoutMs} ms: ${tail(p.text)}`)), timeoutMs);
    function done(err, m) {
      clearTimeout(timer);
      p.listeners = p.listeners.filter((l) => l !== check);
      if (err) reject(err);
      else resolve(m);
    }
    p.listeners.push(check);
    check();
  });
}

function tail(text, n = 15) {
  return `\n    ${String(text || '').trim().split('\n').slice(-n).join('\n    ')}`;
}

async function waitHttp(port, urlPath, want, timeoutMs, p) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await httpRequest('GET', port, urlPath, null, { timeoutMs: 1000 });
      if (r.status === want) return r;
    } catch { /* not up yet */ }
    if (p && p.exited) throw new Error(`${p.name} exited: ${tail(p.text)}`);
    if (Date.now() > end) throw new Error(`GET 127.0.0.1:${port}${urlPath} did not answer ${want} in ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function stop(p, timeoutMs = 5000) {
  if (!p || p.exited) return p && p.exited;
  p.expectExit = true;
  const exited = new Promise((resolve) => {
    const l = () => {
      if (p.exited) resolve(p.exited);
    };
    p.listeners.push(l);
  });
  p.child.kill('SIGTERM');
  const r = await Promise.race([exited, sleep(timeoutMs).then(() => null)]);
  if (!r) {
    p.child.kill('SIGKILL');
    await exited;
  }
  return p.exited;
}

async function stopAll() {
  stopping = true;
  await Promise.all(procs.filter((p) => !p.exited).map((p) => stop(p)));
}

process.on('SIGINT', () => stopAll().then(() => process.exit(130)));
process.on('SIGTERM', () => stopAll().then(() => process.exit(143)));

// ---------------------------------------------------------------------------
// the stacks

const S = {}; // everything started: ports and processes

async function startEcho() {
  const p = start('echo', BIN.echo, ['--port', '0', '--name', 'bench']);
  const m = await waitOutput(p, /listening on 127\.0\.0\.1:(\d+)/, 5000, 'its listening line');
  S.echo = { p, port: Number(m[1]) };
}

async function startRegistry(name, extra = []) {
  const port = await freePort();
  const p = start(name, BIN.registry, ['--bind', '127.0.0.1', '--port', String(port), '--log-level', 'warn', ...extra]);
  await waitHttp(port, '/-/health', 200, 5000, p);
  return { p, port };
}

async function sidecarArgs(ns, extra = []) {
  const mesh = await freePort();
  const api = await freePort();
  return {
    mesh, api,
    args: ['--namespace', ns, '--registry', `127.0.0.1:${S.registry.port}`, '--advertise-host', '127.0.0.1',
      '--mesh-bind', '127.0.0.1', '--mesh-port', String(mesh), '--api-port', String(api),
      '--app-url', `http://127.0.0.1:${S.echo.port}`, '--shutdown-grace-ms', '200', ...extra],
  };
}

async function startSidecar(name, ns, extra) {
  const a = await sidecarArgs(ns, extra);
  const p = start(name, BIN.sidecar, a.args);
  await waitHttp(a.api, '/-/ready', 200, 10000, p);
  return { p, mesh: a.mesh, api: a.api };
}

async function startNginx() {
  const n1 = await freePort();
  const n2 = await freePort();
  const conf = (name, listen, upstreamPort) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const file = path.join(dir, 'nginx.conf');
    fs.writeFileSync(file, `# generated by bench/suite.js
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # keep-alive everywhere: nginx would otherwise close a client connection after
  # 1,000 requests (and an upstream one too), which no other path does
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream next {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listen};
    location / {
      proxy_pass http://next;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`);
    return { dir, file };
  };
  const c2 = conf('nginx2', n2, S.echo.port);
  const c1 = conf('nginx1', n1, n2);
  const startOne = async (name, c, port) => {
    const p = start(name, 'nginx', ['-p', c.dir, '-c', c.file, '-e', path.join(c.dir, 'startup.log'), '-g', 'daemon off;']);
    const end = Date.now() + 5000;
    for (;;) {
      try {
        const r = await httpRequest('POST', port, '/echo', Buffer.from('{}'), { timeoutMs: 1000 });
        if (r.status === 200) break;
      } catch { /* not up */ }
      if (p.exited || Date.now() > end) {
        throw new Error(`${name} did not come up: ${tail(p.text)}${tail(readFileSafe(path.join(c.dir, 'error.log')))}`);
      }
      await sleep(20);
    }
    return { p, port };
  };
  S.nginx2 = await startOne('nginx2', c2, n2);
  S.nginx1 = await startOne('nginx1', c1, n1);
}

async function startNode() {
  const script = path.join(__dirname, 'node-peer.js');
  const reg = `127.0.0.1:${S.registry.port}`;
  const prov = start('node-provider', process.execPath, [script, 'provider', '--registry', reg,
    '--namespace', 'echo-node', '--app-url', `http://127.0.0.1:${S.echo.port}`]);
  await waitOutput(prov, /^READY /m, 10000, 'READY');
  const httpPort = await freePort();
  const caller = start('node-caller', process.execPath, [script, 'caller', '--registry', reg,
    '--target', 'echo-node', '--http-port', String(httpPort)]);
  const m = await waitOutput(caller, /^READY (.*)$/m, 10000, 'READY');
  S.nodeProvider = { p: prov };
  S.nodeCaller = { p: caller, port: JSON.parse(m[1]).httpPort };
}

/** name -> { port, urlPath, procs(): {label: [pid...]} }, for the paths that were started */
function pathDefs() {
  const d = {};
  d.direct = { port: S.echo.port, urlPath: '/echo', procs: () => ({ echo: [S.echo.p.pid] }) };
  if (S.sidecarA) {
    d.mesh = {
      port: S.sidecarA.api, urlPath: '/v1/call/echo/echo',
      procs: () => ({
        'sidecar-a': [S.sidecarA.p.pid], 'sidecar-b': [S.sidecarB.p.pid], echo: [S.echo.p.pid],
        registry: [S.registry.p.pid],
      }),
    };
  }
  if (S.nginx1) {
    d.nginx = {
      port: S.nginx1.port, urlPath: '/echo',
      procs: () => ({
        nginx1: [S.nginx1.p.pid, ...childPids(S.nginx1.p.pid)],
        nginx2: [S.nginx2.p.pid, ...childPids(S.nginx2.p.pid)], echo: [S.echo.p.pid],
      }),
    };
  }
  if (S.nodeCaller) {
    d.node = {
      port: S.nodeCaller.port, urlPath: '/',
      procs: () => ({
        'node-caller': [S.nodeCaller.p.pid], 'node-provider': [S.nodeProvider.p.pid], echo: [S.echo.p.pid],
        registry: [S.registry.p.pid],
      }),
    };
  }
  return d;
}

/** One request per path: 200, and the answer is the payload (plus _correlationId). */
async function checkPath(name, def) {
  try {
    const r = await httpRequest('POST', def.port, def.urlPath, PAYLOAD, { timeoutMs: 5000 });
    let body;
    try {
      body = JSON.parse(r.body);
    } catch {
      body = null;
    }
    if (r.status !== 200 || !body || !body.order || body.order.id !== PAYLOAD_ID) {
      fail(`path ${name}: the answer is not the payload: ${r.status} ${r.body.slice(0, 200)}`);
      return false;
    }
    return true;
  } catch (e) {
    fail(`path ${name}: ${e.message}`);
    return false;
  }
}

// ---------------------------------------------------------------------------
// wrk

function runWrk(url, conns, seconds, { onTick } = {}) {
  return new Promise((resolve) => {
    const args = [`-t${Math.min(opt.threads, conns)}`, `-c${conns}`, `-d${seconds}s`, '--timeout', '5s', '--latency', '-s', path.join(__dirname, 'post.lua'), url];
    // bash's `times` prints the CPU time of the children it waited for: wrk's own cost
    const child = spawn('bash', ['-c', 'wrk "$@"; rc=$?; times; exit $rc', 'wrk', ...args], {
      env: { ...process.env, BENCH_PAYLOAD: PAYLOAD_FILE }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const tick = onTick ? setInterval(onTick, 250) : null;
    child.on('exit', (code) => {
      if (tick) clearInterval(tick);
      const m = out.match(/^BENCH_JSON (.*)$/m);
      let r = null;
      try {
        r = m ? JSON.parse(m[1]) : null;
      } catch { /* below */ }
      const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/);
      const times = out.trim().split('\n').slice(-1)[0].match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/);
      const wrkCpu = times ? Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]) : null;
      resolve({ code, result: r, non2xx: non2xx ? Number(non2xx[1]) : 0, wrkCpu, raw: out + err });
    });
  });
}

/** One measured run of one path at one concurrency. */
async function measure(name, def, conns, seconds, extra = {}) {
  const pids = def.procs();
  const before = {};
  for (const [label, list] of Object.entries(pids)) before[label] = list.map(cpuSeconds);
  const mc0 = machineCpu();
  const t0 = process.hrtime.bigint();
  const rssPeak = {};
  const onTick = extra.sampleRss
    ? () => {
      for (const [label, pid] of Object.entries(extra.sampleRss)) {
        const m = memKb(pid);
        if (m && m.rss > (rssPeak[label] || 0)) rssPeak[label] = m.rss;
      }
    }
    : null;
  const w = await runWrk(`http://127.0.0.1:${def.port}${def.urlPath}`, conns, seconds, { onTick });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const mc1 = machineCpu();
  const r = w.result;
  const run = { path: name, conns, seconds, ok: true };
  if (!r) {
    fail(`${name} c=${conns}: wrk printed no result (exit ${w.code}): ${tail(w.raw)}`);
    run.ok = false;
    return run;
  }
  const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
  run.requests = r.requests;
  run.rps = r.requests / (r.duration_us / 1e6);
  run.latency_us = r.latency_us;
  run.errors = r.errors;
  run.non2xx = w.non2xx;
  if (r.requests === 0 || errors > 0 || w.non2xx > 0 || w.code !== 0) {
    fail(`${name} c=${conns}: ${r.requests} requests, errors ${JSON.stringify(r.errors)}, non-2xx ${w.non2xx}, wrk exit ${w.code}`);
    run.ok = false;
  }
  const per10k = (s) => (r.requests ? (s / r.requests) * 10000 : null);
  run.cpu_s_per_10k = {};
  let ours = 0;
  for (const [label, list] of Object.entries(pids)) {
    let d = 0;
    list.forEach((pid, i) => {
      const a = before[label][i];
      const b = cpuSeconds(pid);
      if (a != null && b != null) d += b - a;
    });
    ours += d;
    run.cpu_s_per_10k[label] = per10k(d);
  }
  run.cpu_s_per_10k.total = per10k(ours);
  run.cpu_s_per_10k.wrk = w.wrkCpu != null ? per10k(w.wrkCpu) : null;
  ours += w.wrkCpu || 0;
  // what else ran on the machine meanwhile (other users, the kernel's softirq
  // threads): the busy time of all cores minus our processes and wrk
  run.machine = {
    wall_s: wall,
    busy_cores: (mc1.busy - mc0.busy) / wall,
    other_cores: Math.max(0, (mc1.busy - mc0.busy - ours) / wall),
  };
  if (extra.sampleRss) run.rss_peak_kb = rssPeak;
  log(`${name.padEnd(6)} c=${String(conns).padEnd(2)} ${Math.round(run.rps).toString().padStart(7)} req/s  p50 ${r.latency_us.p50} µs  p99 ${r.latency_us.p99} µs  p99.9 ${r.latency_us.p99_9} µs  cpu/10k ${run.cpu_s_per_10k.total.toFixed(3)} s  other load ${run.machine.other_cores.toFixed(2)} cores`);
  return run;
}

// ---------------------------------------------------------------------------
// extra measurements

/** RSS of a fresh sidecar before and while it holds `n` raw peer connections. */
async function peersTest(n) {
  const { WebSocket } = require(path.join(ROOT, 'tests', 'node', 'node_modules', 'ws'));
  const sc = await startSidecar('sidecar-peers', 'bench-peers');
  await sleep(200);
  const idle = memKb(sc.p.pid);
  const t0 = Date.now();
  const sockets = [];
  let opened = 0;
  let failed = 0;
  // at most 100 handshakes at a time
  let next = 0;
  await new Promise((resolve) => {
    const launch = () => {
      while (next < n && next - opened - failed < 100) {
        const i = next++;
        const ws = new WebSocket(`ws://127.0.0.1:${sc.mesh}/127.0.0.1/${20000 + i}/bench`, { perMessageDeflate: false });
        sockets.push(ws);
        ws.once('open', () => {
          opened++;
          launch();
        });
        ws.once('error', () => {
          failed++;
          launch();
        });
        ws.on('close', () => { /* counted below */ });
      }
      if (opened + failed === n) resolve();
    };
    launch();
  });
  const openMs = Date.now() - t0;
  await sleep(500);
  const still = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
  const held = memKb(sc.p.pid);
  let metrics = null;
  try {
    metrics = (await httpRequest('GET', sc.api, '/metrics', null)).body;
  } catch { /* optional */ }
  for (const s of sockets) s.terminate();
  await sleep(300);
  const after = memKb(sc.p.pid);
  await stop(sc.p);
  const r = { peers: n, opened, failed, still_open_after_500ms: still, open_ms: openMs,
    rss_kb: { idle: idle && idle.rss, holding: held && held.rss, after_close: after && after.rss, hwm: after && after.hwm },
    anon_kb: { idle: idle && idle.anon, holding: held && held.anon } };
  if (metrics) {
    const m = metrics.match(/^micro_sidecar_(?:peer_)?connections\S*\s+(\d+)/m);
    if (m) r.metrics_connections_line = m[0];
  }
  if (opened !== n || still !== n) fail(`peer connections: ${opened}/${n} opened, ${still} still open after 500 ms (${failed} failed)`);
  log(`${n} peer connections: RSS ${r.rss_kb.idle} kB idle -> ${r.rss_kb.holding} kB holding them (opened in ${openMs} ms)`);
  return r;
}

/** Spawn -> first 200 from /-/ready, polled as fast as a connect allows. */
async function startupTrial(i) {
  const a = await sidecarArgs(`bench-start-${i}`);
  const agent = new http.Agent({ keepAlive: false });
  const t0 = process.hrtime.bigint();
  const p = start(`sidecar-start-${i}`, BIN.sidecar, a.args);
  let firstAnswerMs = null;
  let readyMs = null;
  const end = Date.now() + 10000;
  while (Date.now() < end && !p.exited) {
    try {
      const r = await httpRequest('GET', a.api, '/-/ready', null, { agent, timeoutMs: 1000 });
      const t = Number(process.hrtime.bigint() - t0) / 1e6;
      if (firstAnswerMs == null) firstAnswerMs = t;
      if (r.status === 200) {
        readyMs = t;
        break;
      }
    } catch { /* refused: not listening yet */ }
    await new Promise((r) => setImmediate(r));
  }
  let logMs = null;
  try {
    const m = await waitOutput(p, /registered with the registry .*ms_since_start=(\d+)/, 2000, 'the registered line');
    logMs = Number(m[1]);
  } catch { /* reported below */ }
  await stop(p);
  if (readyMs == null) fail(`start-to-ready trial ${i}: /-/ready never answered 200`);
  return { ready_ms: readyMs, first_answer_ms: firstAnswerMs, log_ms_since_start: logMs };
}

/** RSS of a process that only loads the sidecar's shared libraries (bench/lib-floor.c). */
async function libFloor() {
  if (!fs.existsSync(BIN.libFloor)) return null;
  const p = start('lib-floor', BIN.libFloor, [], { quiet: true });
  await sleep(200);
  const m = memKb(p.pid);
  await stop(p);
  return m ? { rss_kb: m.rss, anon_kb: m.anon, file_kb: m.file } : null;
}

async function registryBench() {
  const reg = await startRegistry('registry-bench-target', ['--max-connections', '20000', '--heartbeat-timeout-ms', '60000',
    '--max-connections-per-address', '0']); // 10,000 instances from 8 source addresses
  const args = ['--port', String(reg.port), '--pid', String(reg.p.pid), '--instances', String(opt.registryInstances),
    '--namespaces', String(Math.max(1, Math.round(opt.registryInstances / 10))), '--finders', '8',
    '--phases', opt.smoke ? '32,32@5000' : '32,32@50000,1', '--duration', String(opt.smoke ? 2 : 10), '--warmup', '1'];
  let prof = null;
  if (opt.profile) prof = startPerf('registry', [reg.p.pid], opt.smoke ? 3 : 10, 6);
  const p = start('registry-bench', BIN.registryBench, args, { quiet: true });
  await new Promise((resolve) => {
    const l = () => {
      if (p.exited) resolve();
    };
    p.listeners.push(l);
    l();
  });
  if (prof) await prof;
  await stop(reg.p);
  const line = p.text.split('\n').find((l) => l.startsWith('{'));
  let r = null;
  try {
    r = JSON.parse(line);
  } catch { /* below */ }
  if (!r || !r.ok || p.exited.code !== 0) fail(`registry benchmark failed (exit ${p.exited.code}): ${tail(p.text)}`);
  else {
    for (const ph of r.phases) {
      log(`registry: ${r.instances} instances, ${ph.offered_per_s ? `${ph.offered_per_s}/s offered, ` : 'closed loop, '}${ph.finders} conns × ≤ ${ph.depth}: ${ph.finds_per_s} finds/s, p50 ${ph.latency_us.p50} µs, p99 ${ph.latency_us.p99} µs; RSS ${r.rss_kb.hwm} kB`);
    }
  }
  return r;
}

// ---------------------------------------------------------------------------
// profiling (--profile)

let perfOk = null;
function perfAvailable() {
  if (perfOk !== null) return perfOk;
  try {
    execFileSync('perf', ['record', '-e', 'cpu-clock', '-o', path.join(tmp, 'perf-probe.data'), '--', 'true'], { stdio: 'ignore' });
    perfOk = true;
  } catch {
    perfOk = false;
    log('perf does not work here: no profiles (try valgrind --tool=callgrind by hand)');
  }
  return perfOk;
}

// Where a process's samples go, by shared object and symbol. The patterns are for
// our binaries (built from libmicro/ and sidecar/), libwebsockets, libmicrohttpd
// and glibc; everything in the kernel is "kernel" (syscalls, TCP over loopback,
// wake-ups), split further by the syscall it was reached from (the -g chains).
const CATEGORIES = [
  ['kernel', (dso) => dso === '[kernel.kallsyms]'],
  ['libwebsockets', (dso) => /libwebsockets/.test(dso)],
  ['libmicrohttpd', (dso) => /libmicrohttpd/.test(dso)],
  ['malloc/free', (dso, sym) => /libc\.so/.test(dso) && /malloc|free|calloc|realloc|_int_|unlink_chunk|tcache|consolidate|arena|sysmalloc|brk/.test(sym)],
  ['libc mem*/str*', (dso, sym) => /libc\.so/.test(dso) && /^__(mem|str|wmem|stp)|^(mem|str)/.test(sym)],
  ['libc other (syscall wrappers, stdio, ...)', (dso) => /libc\.so/.test(dso)],
  ['our JSON scanning (jscan.c)', (dso, sym) => /^(skip_value|scan_value|scan_string|scan_number|scan_lit|skip_ws|digits|utf8_seq|hexval|ws|jscan_|jobj_|jarr_|jstr_|jnum_|put_utf8|hex4)/.test(sym)],
  ['our JSON writing (sbuf_*)', (dso, sym) => /^sbuf_/.test(sym)],
  ['our code, other', (dso) => /micro-(sidecar|registry)$/.test(dso)],
  ['other', () => true],
];

function procName(pid, comm) {
  const p = procs.find((x) => String(x.pid) === String(pid));
  return p ? `${p.name} (pid ${pid})` : `${comm} (pid ${pid})`;
}

function categorize(bySymbolText, childrenText) {
  const perPid = {};
  for (const line of bySymbolText.split('\n')) {
    const m = line.match(/^\s+([\d.]+)%\s+(\d+):(\S+)\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*$/);
    if (!m) continue;
    const [, pct, pid, comm, dso, sym] = m;
    const key = procName(pid, comm);
    const e = (perPid[key] ??= { total: 0, categories: {}, top: [], syscalls: {} });
    const v = Number(pct);
    e.total += v;
    const cat = CATEGORIES.find(([, f]) => f(dso, sym))[0];
    e.categories[cat] = (e.categories[cat] || 0) + v;
    if (e.top.length < 25) e.top.push([sym, dso, v]);
  }
  for (const line of (childrenText || '').split('\n')) {
    const m = line.match(/^\s+([\d.]+)%\s+([\d.]+)%\s+(\d+):(\S+)\s+\[k\]\s+(__x64_sys_\w+|__do_sys_\w+|__sys_\w+)\s*$/);
    if (!m) continue;
    const key = procName(m[3], m[4]);
    if (!perPid[key]) continue;
    const name = m[5].replace(/^__x64_sys_|^__do_sys_|^__sys_/, '');
    perPid[key].syscalls[name] = Math.max(perPid[key].syscalls[name] || 0, Number(m[1]));
  }
  // as a share of each process's own samples
  for (const e of Object.values(perPid)) {
    const t = e.total || 1;
    for (const k of Object.keys(e.categories)) e.categories[k] = +(100 * e.categories[k] / t).toFixed(1);
    for (const k of Object.keys(e.syscalls)) e.syscalls[k] = +(100 * e.syscalls[k] / t).toFixed(1);
    e.top = e.top.map(([sym, dso, v]) => [sym, dso.replace(/.*\//, ''), +(100 * v / t).toFixed(1)]);
    e.share_of_all_samples = +e.total.toFixed(1);
    delete e.total;
  }
  return perPid;
}

function profileText(label, p) {
  const L = [`# profile ${label}: perf record -e cpu-clock -g (${p.seconds} s), % of each process's samples`, ''];
  for (const [proc, e] of Object.entries(p.summary)) {
    L.push(`## ${proc}: ${e.share_of_all_samples}% of all samples`);
    for (const [k, v] of Object.entries(e.categories).sort((x, y) => y[1] - x[1])) L.push(`  ${String(v).padStart(5)}%  ${k}`);
    const sc = Object.entries(e.syscalls).sort((x, y) => y[1] - x[1]).slice(0, 10);
    if (sc.length) L.push(`  syscalls (incl. the kernel work under them): ${sc.map(([k, v]) => `${k} ${v}%`).join(', ')}`);
    L.push('  top symbols (self):');
    for (const [sym, dso, v] of e.top.slice(0, 20)) L.push(`    ${String(v).padStart(5)}%  ${sym}  (${dso})`);
    L.push('');
  }
  for (const [k, v] of Object.entries(p.reports)) L.push(`==== perf report: ${k}`, v);
  return L.join('\n');
}

/** perf record -g on pids for `seconds`, after `delay` seconds; keeps the data and
 * reports next to the results. */
function startPerf(label, pids, seconds, delay = 0) {
  if (!perfAvailable()) return Promise.resolve(null);
  fs.mkdirSync(opt.out, { recursive: true });
  const data = `${RESULT_BASE}-perf-${label}.data`;
  return sleep(delay * 1000).then(() => new Promise((resolve) => {
    const child = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '4999', '-g', '-p', pids.join(','), '-o', data, '--', 'sleep', String(seconds)],
      { stdio: 'ignore' });
    child.on('exit', () => {
      const reports = {};
      const rep = (key, args) => {
        try {
          reports[key] = execFileSync('perf', ['report', '-i', data, '--stdio', ...args],
            { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 << 20 }).toString();
        } catch (e) {
          reports[key] = `perf report failed: ${e.message}`;
        }
      };
      rep('by_dso', ['--no-children', '--sort', 'pid,dso', '-g', 'none']);
      rep('by_symbol', ['--no-children', '--sort', 'pid,dso,sym', '-g', 'none', '--percent-limit', '0.05']);
      rep('children', ['--children', '--sort', 'pid,sym', '-g', 'none', '--percent-limit', '0.5']);
      const summary = categorize(reports.by_symbol, reports.children);
      profiles[label] = { data: path.relative(ROOT, data), seconds, summary, reports };
      resolve(summary);
    });
  }));
}
const profiles = {};

// ---------------------------------------------------------------------------
// report

function machineInfo() {
  const cpu = readFileSafe('/proc/cpuinfo') || '';
  const model = (cpu.match(/^model name\s*:\s*(.*)$/m) || [])[1] || 'unknown';
  const ver = (cmd, args, re) => {
    try {
      const o = execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      return o.toString().trim().split('\n')[0];
    } catch (e) {
      const s = e.stderr ? e.stderr.toString() : '';
      const m = re ? s.match(re) : null;
      return m ? m[0] : null;
    }
  };
  let commit = null;
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    // --no-optional-locks: read only, never refresh the index
    const dirty = execFileSync('git', ['--no-optional-locks', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    if (dirty) commit += '-dirty';
  } catch { /* not a checkout */ }
  const { spawnSync } = require('node:child_process');
  const firstLine = (r, stream) => (r && r[stream] ? r[stream].toString().trim().split('\n')[0] : '') || null;
  // nginx -v writes to stderr; wrk -v prints "wrk <version> [epoll] Copyright ..."
  const nginxV = firstLine(spawnSync('nginx', ['-v']), 'stderr');
  const wrkLine = firstLine(spawnSync('wrk', ['-v']), 'stdout');
  const wrkV = wrkLine ? wrkLine.split(' ').slice(0, 2).join(' ') : null;
  return {
    nproc: os.cpus().length, cpu_model: model, kernel: os.release(), load_avg_at_start: os.loadavg().map((x) => +x.toFixed(2)),
    node: process.version, nginx: nginxV, wrk: wrkV, commit, sidecar_version: ver(BIN.sidecar, ['--version']),
  };
}

const fmt = (x, d = 0) => (x == null || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const fmtInt = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const mb = (kb) => (kb == null ? 'n/a' : `${(kb / 1024).toFixed(1)} MB`);

function summarize(runs) {
  const out = {};
  for (const name of opt.paths) {
    for (const c of [1, 64]) {
      const rs = runs.filter((r) => r.path === name && r.conns === c && r.ok);
      if (!rs.length) continue;
      const labels = Object.keys(rs[0].cpu_s_per_10k);
      const cpu = {};
      for (const l of labels) cpu[l] = median(rs.map((r) => r.cpu_s_per_10k[l]));
      out[`${name}@${c}`] = {
        path: name, conns: c, rounds: rs.length,
        rps: median(rs.map((r) => r.rps)), rps_min: Math.min(...rs.map((r) => r.rps)), rps_max: Math.max(...rs.map((r) => r.rps)),
        p50_us: median(rs.map((r) => r.latency_us.p50)), p99_us: median(rs.map((r) => r.latency_us.p99)),
        p99_9_us: median(rs.map((r) => r.latency_us.p99_9)), cpu_s_per_10k: cpu,
        other_cores: median(rs.map((r) => r.machine.other_cores)),
      };
    }
  }
  return out;
}

/** Median over rounds of (mesh − direct) for one latency percentile at c=1. */
function addedLatency(runs, key, over = 'mesh') {
  const d = [];
  for (let round = 1; round <= opt.rounds; round++) {
    const m = runs.find((r) => r.round === round && r.path === over && r.conns === 1 && r.ok);
    const x = runs.find((r) => r.round === round && r.path === 'direct' && r.conns === 1 && r.ok);
    if (m && x) d.push(m.latency_us[key] - x.latency_us[key]);
  }
  return median(d);
}

function targets(res) {
  const s = res.summary;
  const t = [];
  const add = (name, value, unit, limit, cmp, note) => {
    let met = null;
    if (value != null && Number.isFinite(value)) met = cmp === '<=' ? value <= limit : value >= limit;
    if (opt.smoke) met = null; // smoke numbers are not measurements
    t.push({ name, value, unit, target: `${cmp} ${limit}${unit ? ` ${unit}` : ''}`, met, note });
  };
  add('mesh added latency over direct, c=1, p50', res.added_latency_us.p50, 'µs', 60, '<=');
  add('mesh added latency over direct, c=1, p99', res.added_latency_us.p99, 'µs', 250, '<=');
  const mesh = s['mesh@64'];
  const ng = s['nginx@64'];
  const nd = s['node@64'];
  add('mesh throughput c=64 / nginx chain', mesh && ng ? mesh.rps / ng.rps : null, '×', 0.8, '>=');
  add('mesh throughput c=64 / node', mesh && nd ? mesh.rps / nd.rps : null, '×', 1.5, '>=');
  const mem = res.memory;
  add('sidecar RSS idle (max of A, B after start)', mem ? Math.max(mem.idle_kb.a, mem.idle_kb.b) / 1024 : null, 'MB', 3, '<=');
  add('sidecar RSS under load (VmHWM, max of A, B)', mem ? Math.max(mem.hwm_kb.a, mem.hwm_kb.b) / 1024 : null, 'MB', 6, '<=');
  add(`sidecar RSS holding ${res.peers ? res.peers.peers : opt.peers} peer connections`, res.peers ? res.peers.rss_kb.holding / 1024 : null, 'MB', 20, '<=');
  add('sidecar start-to-ready (median, external, spawn → first 200 from /-/ready)', res.startup ? res.startup.ready_ms_median : null, 'ms', 50, '<=');
  const rb = res.registry;
  const closed = rb && rb.phases ? rb.phases.find((p) => p.depth === 32 && !p.offered_per_s) : null;
  const open = rb && rb.phases ? rb.phases.find((p) => p.offered_per_s > 0) : null;
  const reg = `registry, ${rb ? rb.instances : opt.registryInstances} instances`;
  add(`${reg}: finds/s (capacity: 8 conns × 32 in flight, closed loop)`, closed ? closed.finds_per_s : null, '/s', 50000, '>=');
  add(`${reg}: find p99 at ${open ? fmtInt(open.offered_per_s) : 'n/a'} finds/s offered (open loop, ≤ 32 in flight per conn)`,
    open ? open.latency_us.p99 / 1000 : null, 'ms', 2, '<=', open && open.finds_per_s < 0.97 * open.offered_per_s ? `achieved only ${fmtInt(open.finds_per_s)}/s` : undefined);
  add(`${reg}: RSS (VmHWM)`, rb && rb.rss_kb ? rb.rss_kb.hwm / 1024 : null, 'MB', 30, '<=');
  return t;
}

function markdown(res) {
  const L = [];
  const m = res.machine;
  L.push(`## micro-sidecar benchmark — ${res.started_at}${opt.smoke ? ' (smoke run: numbers are not measurements)' : ''}`);
  L.push('');
  L.push(`Machine: ${m.nproc} CPUs (${m.cpu_model}), Linux ${m.kernel}; load average at start ${m.load_avg_at_start.join(' ')}. `
    + `Everything (wrk, the processes under test) shares these CPUs. ${m.wrk || 'wrk'}, ${m.nginx || 'nginx'}, Node ${m.node}. Commit ${m.commit || 'n/a'}.`);
  L.push('');
  L.push(`Command: \`bench/run.sh${opt.smoke ? ' --smoke' : ''}\` — ${opt.rounds} round(s) × ${opt.duration} s per path and concurrency after a ${opt.warmup} s warm-up at c=64, paths alternating; `
    + `wrk -t${opt.threads}, ${PAYLOAD.length}-byte JSON payload, keep-alive everywhere. Medians over rounds; req/s range in brackets.`);
  L.push('');
  L.push('| path | conc | req/s | p50 µs | p99 µs | p99.9 µs | CPU-s / 10k calls (path) | wrk CPU-s / 10k | other load (cores) |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of [1, 64]) {
    for (const name of opt.paths) {
      const x = res.summary[`${name}@${c}`];
      if (!x) {
        L.push(`| ${name} | ${c} | failed | | | | | | |`);
        continue;
      }
      L.push(`| ${name} | ${c} | ${fmtInt(x.rps)} [${fmtInt(x.rps_min)}–${fmtInt(x.rps_max)}] | ${fmt(x.p50_us)} | ${fmt(x.p99_us)} | ${fmt(x.p99_9_us)} | `
        + `${fmt(x.cpu_s_per_10k.total, 3)} | ${fmt(x.cpu_s_per_10k.wrk, 3)} | ${fmt(x.other_cores, 2)} |`);
    }
  }
  L.push('');
  L.push('CPU-seconds per 10,000 calls, per process (medians):');
  L.push('');
  L.push('| path | conc | breakdown |');
  L.push('|---|---:|---|');
  for (const c of [1, 64]) {
    for (const name of opt.paths) {
      const x = res.summary[`${name}@${c}`];
      if (!x) continue;
      const parts = Object.entries(x.cpu_s_per_10k).filter(([k]) => k !== 'total' && k !== 'wrk').map(([k, v]) => `${k} ${fmt(v, 3)}`);
      L.push(`| ${name} | ${c} | ${parts.join(', ')} |`);
    }
  }
  L.push('');
  if (res.added_latency_us) {
    const o = res.added_latency_others_us || {};
    const ref = ['nginx', 'node'].filter((k) => o[k] && o[k].p50 != null).map((k) => `${k === 'nginx' ? 'nginx chain' : 'node'} p50 ${fmt(o[k].p50)} µs, p99 ${fmt(o[k].p99)} µs`).join('; ');
    L.push(`Added latency over direct at c=1 (median of per-round differences): mesh p50 ${fmt(res.added_latency_us.p50)} µs, p99 ${fmt(res.added_latency_us.p99)} µs${ref ? `; for comparison ${ref}` : ''}.`);
    L.push('');
  }
  if (res.memory) {
    const mm = res.memory;
    L.push('| sidecar memory | A (caller) | B (provider) |');
    L.push('|---|---:|---:|');
    L.push(`| RSS idle, after start-up | ${mb(mm.idle_kb.a)} | ${mb(mm.idle_kb.b)} |`);
    L.push(`| … of which anonymous (heap, stacks) / file-backed (binary, shared libraries) | ${mb(mm.idle_anon_kb.a)} / ${mb(mm.idle_file_kb.a)} | ${mb(mm.idle_anon_kb.b)} / ${mb(mm.idle_file_kb.b)} |`);
    L.push(`| RSS peak sampled during mesh runs | ${mb(mm.load_rss_peak_kb.a)} | ${mb(mm.load_rss_peak_kb.b)} |`);
    L.push(`| VmHWM after all runs | ${mb(mm.hwm_kb.a)} | ${mb(mm.hwm_kb.b)} |`);
    L.push(`| RSS idle, after all runs (anonymous) | ${mb(mm.after_kb.a)} (${mb(mm.after_anon_kb.a)}) | ${mb(mm.after_kb.b)} (${mb(mm.after_anon_kb.b)}) |`);
    if (mm.floor) L.push(`| floor: a process that only loads the same shared libraries (\`bench/lib-floor.c\`), anonymous / file-backed | ${mb(mm.floor.rss_kb)} (${mb(mm.floor.anon_kb)} / ${mb(mm.floor.file_kb)}) | same |`);
    if (res.peers) {
      const p = res.peers;
      L.push('');
      L.push(`A fresh sidecar holding ${p.opened} raw WebSocket peer connections: RSS ${mb(p.rss_kb.idle)} before, ${mb(p.rss_kb.holding)} holding them (anonymous ${mb(p.anon_kb.idle)} → ${mb(p.anon_kb.holding)}, ${fmt((p.anon_kb.holding - p.anon_kb.idle) / p.opened, 1)} kB per connection), ${mb(p.rss_kb.after_close)} after they closed (opened in ${p.open_ms} ms).`);
    }
    L.push('');
  }
  if (res.startup) {
    const st = res.startup;
    L.push(`Start-to-ready with a running registry, ${st.trials.length} trials: spawn → first 200 from /-/ready median ${fmt(st.ready_ms_median, 1)} ms (max ${fmt(st.ready_ms_max, 1)}); `
      + `the sidecar's own \`ms_since_start\` median ${fmt(st.log_ms_median)} ms; spawn → first answer of any kind median ${fmt(st.first_answer_ms_median, 1)} ms.`);
    L.push('');
  }
  if (res.registry && res.registry.phases) {
    const rb = res.registry;
    L.push(`Registry: ${fmtInt(rb.instances)} instance connections in ${fmtInt(rb.namespaces)} namespaces (opened in ${fmt(rb.connect_s, 1)} s), RSS ${mb(rb.rss_kb.loaded)} loaded, VmHWM ${mb(rb.rss_kb.hwm)}.`);
    L.push('');
    L.push('| /-/find load | finds/s | p50 µs | p99 µs | p99.9 µs | registry CPU-s | finds per CPU-s | other load (cores) |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const ph of rb.phases) {
      const load = ph.offered_per_s ? `${fmtInt(ph.offered_per_s)}/s offered over ${ph.finders} conns (≤ ${ph.depth} in flight each)` : `closed loop, ${ph.finders} conns × ${ph.depth} in flight`;
      L.push(`| ${load} | ${fmtInt(ph.finds_per_s)} | ${ph.latency_us.p50} | ${ph.latency_us.p99} | ${ph.latency_us.p99_9} | ${fmt(ph.registry_cpu_s, 2)} | ${fmtInt(ph.finds_per_cpu_s)} | ${fmt(ph.other_cores, 2)} |`);
    }
    L.push('');
  }
  L.push('| target | value | target | met |');
  L.push('|---|---:|---:|---|');
  for (const t of res.targets) {
    const v = t.value == null ? 'n/a' : `${fmt(t.value, t.unit === '×' ? 2 : t.unit === 'MB' || t.unit === 'ms' ? 1 : 0)}${t.unit && t.unit !== '×' ? ` ${t.unit}` : '×'}`;
    L.push(`| ${t.name} | ${v}${t.note ? ` (${t.note})` : ''} | ${t.target} | ${t.met == null ? '—' : t.met ? 'met' : '**not met**'} |`);
  }
  L.push('');
  for (const [label, p] of Object.entries(res.profiles || {})) {
    L.push(`Profile ${label} (perf, cpu-clock; share of each process's samples; full report: ${p.report}):`);
    L.push('');
    for (const [proc, e] of Object.entries(p.summary)) {
      const cats = Object.entries(e.categories).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${v}%`).join(', ');
      const sc = Object.entries(e.syscalls).sort((x, y) => y[1] - x[1]).slice(0, 5).map(([k, v]) => `${k} ${v}%`).join(', ');
      L.push(`- ${proc}: ${cats}${sc ? `; under syscalls: ${sc}` : ''}`);
    }
    L.push('');
  }
  if (failures.length) {
    L.push('Failures:');
    for (const f of failures) L.push(`- ${f.split('\n')[0]}`);
    L.push('');
  }
  return L.join('\n');
}

// ---------------------------------------------------------------------------
// main

async function main() {
  const started = STARTED;
  const res = { started_at: started.toISOString(), mode: opt.smoke ? 'smoke' : 'full', options: { ...opt, build: undefined, out: undefined } };
  res.machine = machineInfo();
  log(`temp dir ${tmp}; ${opt.smoke ? 'smoke run' : `${opt.rounds} rounds × ${opt.duration} s`}`);

  await startEcho();
  S.registry = await startRegistry('registry');
  const want = new Set(opt.paths);
  if (want.has('mesh')) {
    S.sidecarB = await startSidecar('sidecar-b', 'echo', ['--route', '/echo']);
    S.sidecarA = await startSidecar('sidecar-a', 'bench-client');
    await sleep(200);
    const a = memKb(S.sidecarA.p.pid);
    const b = memKb(S.sidecarB.p.pid);
    res.memory = { idle_kb: { a: a.rss, b: b.rss }, idle_anon_kb: { a: a.anon, b: b.anon }, idle_file_kb: { a: a.file, b: b.file } };
    res.memory.floor = await libFloor();
  }
  if (want.has('nginx')) await startNginx();
  if (want.has('node')) await startNode();

  const defs = pathDefs();
  const working = [];
  for (const name of opt.paths) if (await checkPath(name, defs[name])) working.push(name);

  const runs = [];
  const rssPeak = { a: 0, b: 0 };
  for (let round = 1; round <= opt.rounds; round++) {
    // rotate the order every round so that no path always follows the same one
    const order = working.map((_, i) => working[(i + round - 1) % working.length]);
    log(`round ${round}/${opt.rounds}: ${order.join(', ')}`);
    for (const name of order) {
      const def = defs[name];
      await runWrk(`http://127.0.0.1:${def.port}${def.urlPath}`, 64, opt.warmup); // warm-up
      for (const c of [1, 64]) {
        const extra = name === 'mesh' ? { sampleRss: { a: S.sidecarA.p.pid, b: S.sidecarB.p.pid } } : {};
        const r = await measure(name, def, c, opt.duration, extra);
        r.round = round;
        if (r.rss_peak_kb) {
          rssPeak.a = Math.max(rssPeak.a, r.rss_peak_kb.a || 0);
          rssPeak.b = Math.max(rssPeak.b, r.rss_peak_kb.b || 0);
        }
        runs.push(r);
      }
    }
  }
  res.runs = runs;
  res.summary = summarize(runs);
  res.added_latency_us = { p50: addedLatency(runs, 'p50'), p99: addedLatency(runs, 'p99'), p99_9: addedLatency(runs, 'p99_9') };
  res.added_latency_others_us = {};
  for (const other of ['nginx', 'node']) {
    res.added_latency_others_us[other] = { p50: addedLatency(runs, 'p50', other), p99: addedLatency(runs, 'p99', other) };
  }

  if (opt.profile && working.includes('mesh')) {
    for (const c of [1, 64]) {
      log(`profiling sidecars A and B under mesh c=${c}`);
      const secs = Math.max(3, opt.duration);
      const prof = startPerf(`sidecars-c${c}`, [S.sidecarA.p.pid, S.sidecarB.p.pid], secs - 1, 0.5);
      await runWrk(`http://127.0.0.1:${defs.mesh.port}${defs.mesh.urlPath}`, c, secs);
      await prof;
    }
  }

  if (res.memory) {
    const a = memKb(S.sidecarA.p.pid);
    const b = memKb(S.sidecarB.p.pid);
    res.memory.load_rss_peak_kb = rssPeak;
    res.memory.hwm_kb = { a: a.hwm, b: b.hwm };
    res.memory.after_kb = { a: a.rss, b: b.rss };
    res.memory.after_anon_kb = { a: a.anon, b: b.anon };
    res.memory.others_hwm_kb = {};
    for (const [k, v] of Object.entries({ echo: S.echo, registry: S.registry, 'node-caller': S.nodeCaller, 'node-provider': S.nodeProvider })) {
      if (v && v.p) res.memory.others_hwm_kb[k] = (memKb(v.p.pid) || {}).hwm;
    }
  }

  // the long-lived stacks are no longer needed: stop them before the rest
  for (const k of ['nodeCaller', 'nodeProvider', 'nginx1', 'nginx2', 'sidecarA', 'sidecarB']) if (S[k]) await stop(S[k].p);

  if (!opt.skip.includes('peers')) try {
    res.peers = await peersTest(opt.peers);
  } catch (e) {
    fail(`peer connections: ${e.message}`);
  }
  const trials = [];
  for (let i = 0; i < (opt.skip.includes('startup') ? 0 : opt.startupTrials); i++) {
    try {
      trials.push(await startupTrial(i));
    } catch (e) {
      fail(`start-to-ready trial ${i}: ${e.message}`);
    }
  }
  if (trials.length) {
    const ok = trials.filter((t) => t.ready_ms != null);
    res.startup = {
      trials, ready_ms_median: median(ok.map((t) => t.ready_ms)), ready_ms_max: ok.length ? Math.max(...ok.map((t) => t.ready_ms)) : null,
      log_ms_median: median(trials.map((t) => t.log_ms_since_start)), first_answer_ms_median: median(trials.map((t) => t.first_answer_ms)),
    };
    log(`start-to-ready: median ${fmt(res.startup.ready_ms_median, 1)} ms external, ${fmt(res.startup.log_ms_median)} ms in the sidecar's log`);
  }
  await stop(S.echo.p);
  await stop(S.registry.p);

  if (!opt.skip.includes('registry')) try {
    res.registry = await registryBench();
  } catch (e) {
    fail(`registry benchmark: ${e.message}`);
  }

  res.targets = targets(res);
  res.failures = failures;
  res.finished_at = new Date().toISOString();
  await stopAll();

  fs.mkdirSync(opt.out, { recursive: true });
  const base = RESULT_BASE;
  for (const [label, p] of Object.entries(profiles)) {
    const f = `${base}-profile-${label}.txt`;
    fs.writeFileSync(f, profileText(label, p));
    res.profiles = { ...res.profiles, [label]: { report: path.relative(ROOT, f), data: p.data, summary: p.summary } };
  }
  const md = markdown(res);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(res, null, 2)}\n`);
  fs.writeFileSync(`${base}.md`, `${md}\n`);
  process.stdout.write(`${md}\n`);
  log(`results: ${path.relative(process.cwd(), base)}.json and .md`);
  if (failures.length) {
    log(`${failures.length} failure(s); logs kept in ${tmp}`);
    return 1;
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  return 0;
}

main().then((code) => process.exit(code), async (e) => {
  log(`error: ${e && e.stack ? e.stack : e}`);
  await stopAll();
  log(`logs kept in ${tmp}`);
  process.exit(1);
});
