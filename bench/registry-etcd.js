#!/usr/bin/env node
'use strict';
// The registry with the memory store vs three replicas on the etcd store
// (docs/BENCHMARKS.md, "Registry replicas on etcd").
//
//   node bench/registry-etcd.js [--build DIR] [--instances 10000] [--duration 5]
//        [--rate 20000] [--samples 200] [--churn 100] [--window 10] [--out FILE]
//
// 1. memory: one registry; a holder registry-bench keeps --instances connected
//    (heartbeats every 10 s), then a finder registry-bench measures closed-loop
//    finds/s and the p99 at --rate finds/s.
// 2. etcd: a three-member etcd cluster on loopback (Debian's etcd-server) and three
//    replicas; --instances spread over them (a holder per replica), then the same
//    finder run against each replica in turn.
// 3. propagation: --samples times, register on replica k and poll /-/find on
//    replica k+1 until it answers (then the same for the close): p50/p99.
// 4. etcd writes/s (etcd's own mvcc put/delete/txn counters) over --window s of
//    steady state (only heartbeats), then with --churn registrations/s (each lives
//    one second: as many closes).
// 5. RSS of every registry.
// Writes a JSON summary to --out (registry-etcd.json); progress on stderr.

const path = require('node:path');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const h = require(path.join(__dirname, '..', 'tests', 'node', 'lib', 'harness'));
const { startEtcdCluster } = require(path.join(__dirname, '..', 'tests', 'integration', 'lib', 'etcd'));
const { WebSocket } = require(path.join(__dirname, '..', 'tests', 'node', 'node_modules', 'ws'));

const args = process.argv.slice(2);
const opt = { out: 'registry-etcd.json', build: path.join(__dirname, '..', 'build'), instances: 10000, duration: 5, rate: 20000, samples: 200, churn: 100, window: 10 };
for (let i = 0; i < args.length; i += 2) opt[args[i].replace(/^--/, '')] = ['--build', '--out'].includes(args[i]) ? args[i + 1] : Number(args[i + 1]);
process.env.MICRO_BUILD_DIR = path.resolve(opt.build);
const BENCH = path.join(opt.build, 'bench', 'registry-bench');
const HOST = '127.0.0.1';
const log = (...a) => console.error('registry-etcd:', ...a);

// A stand-in for node:test's t: the helpers register their clean-ups on it.
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };

function rss(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : null;
}

async function registry(extra) {
  const port = await h.freePort();
  const p = h.spawnProc(h.registryBin(), ['--port', String(port), '--bind', HOST, '--log-level', 'warn', '--max-connections', '20000', '--heartbeat-timeout-ms', '120000', ...extra], { t, name: `registry ${port}` });
  await h.waitFor(async () => (await h.httpJson('GET', `http://${HOST}:${port}/-/ready`, undefined, {}, { timeoutMs: 1000 })).status === 200, { timeoutMs: 15000 });
  return { port, proc: p, http: `http://${HOST}:${port}` };
}

function runBench(benchArgs) {
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH, benchArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => {
      try {
        resolve({ code, json: JSON.parse(out), err });
      } catch (e) {
        reject(new Error(`registry-bench ${benchArgs.join(' ')}: exit ${code}: ${err}`));
      }
    });
  });
}

/** A holder: keeps n instances (from `first`) connected for `seconds`. */
function holder(reg, n, first, id, seconds, expect) {
  const p = spawn(BENCH, ['--port', String(reg.port), '--instances', String(n), '--first', String(first), '--id', String(id),
    '--finders', '1', '--phases', '1@1', '--warmup', '0', '--duration', String(seconds), '--expect', String(expect)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  cleanups.push(() => p.kill('SIGKILL'));
  return { p, log: () => err };
}

async function countOf(reg) {
  return (await h.httpJson('GET', `${reg.http}/-/health`)).body.instances;
}

/** Closed-loop finds/s and the p99 at opt.rate, against one registry. */
async function finds(reg, id, expect) {
  const r = await runBench(['--port', String(reg.port), '--instances', '0', '--id', String(id), '--finders', '8',
    '--phases', `32,32@${opt.rate}`, '--warmup', '1', '--duration', String(opt.duration), '--pid', String(reg.proc.pid), '--expect', String(expect)]);
  const ph = r.json.phases;
  return { ok: r.json.ok, finds_per_s: ph[0].finds_per_s, p99_ms_closed: ph[0].latency_us.p99 / 1000,
    finds_per_s_at_rate: ph[1].finds_per_s, p50_ms_at_rate: ph[1].latency_us.p50 / 1000, p99_ms_at_rate: ph[1].latency_us.p99 / 1000,
    empty: ph[0].empty + ph[1].empty };
}

function wsOpen(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function finder(ws) {
  let id = 1;
  const pending = new Map();
  ws.on('message', (m) => {
    const f = JSON.parse(m.toString());
    const p = pending.get(f.id);
    if (p) {
      pending.delete(f.id);
      p(f.data);
    }
  });
  return (ns) => new Promise((resolve) => {
    const i = id++;
    pending.set(i, resolve);
    ws.send(JSON.stringify({ id: i, twoway: true, data: { url: '/-/find', data: { namespace: ns } }, mode: 0 }));
  });
}

const pct = (a, q) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? Number(s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(2)) : null;
};

async function propagation(reps) {
  const askers = await Promise.all(reps.map((r, i) => wsOpen(`ws://${HOST}:${r.port}/10.254.0.${i + 1}/9100/bench-asker`)));
  const find = askers.map(finder);
  const up = [];
  const down = [];
  for (let k = 0; k < opt.samples; k++) {
    const a = k % reps.length;
    const b = (k + 1) % reps.length;
    const ns = `prop-${k}`;
    const t0 = process.hrtime.bigint();
    const ws = await wsOpen(`ws://${HOST}:${reps[a].port}/10.253.${k >> 8}.${k & 255}/9100/${ns}`);
    for (;;) {
      const d = await find[b](ns);
      if (d && d.data) break;
    }
    up.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const t1 = process.hrtime.bigint();
    ws.close();
    for (;;) {
      const d = await find[b](ns);
      if (!d || !d.data) break;
    }
    down.push(Number(process.hrtime.bigint() - t1) / 1e6);
  }
  askers.forEach((w) => w.close());
  return { samples: opt.samples, register_ms: { p50: pct(up, 0.5), p99: pct(up, 0.99), max: pct(up, 1) }, close_ms: { p50: pct(down, 0.5), p99: pct(down, 0.99), max: pct(down, 1) } };
}

async function etcdCounters(etcd) {
  const r = await h.httpJson('GET', `${etcd.endpoints[0]}/metrics`);
  const get = (name) => {
    const m = r.text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  return { put: get('etcd_mvcc_put_total'), del: get('etcd_mvcc_delete_total'), txn: get('etcd_mvcc_txn_total') };
}

/** etcd's own write counters over `seconds` of `during` (which may run longer to
 * let its last writes land: the rates are per second of `seconds`). */
async function writesOver(etcd, seconds, during) {
  const a = await etcdCounters(etcd);
  const extra = await during(seconds * 1000);
  const b = await etcdCounters(etcd);
  const rate = (k) => Number(((b[k] - a[k]) / seconds).toFixed(1));
  return { seconds, puts: b.put - a.put, deletes: b.del - a.del, txns: b.txn - a.txn, puts_per_s: rate('put'), deletes_per_s: rate('del'), txns_per_s: rate('txn'), ...(extra || {}) };
}

async function churn(reps, ms, perSec) {
  const end = Date.now() + ms;
  let n = 0;
  const open = [];
  while (Date.now() < end) {
    const due = Math.floor(((Date.now() - (end - ms)) / 1000) * perSec);
    while (n < due) {
      const k = n++;
      const r = reps[k % reps.length];
      wsOpen(`ws://${HOST}:${r.port}/10.252.${(k >> 8) & 255}.${k & 255}/9100/churn-${k % 50}`).then((ws) => {
        open.push(ws);
        setTimeout(() => ws.close(), 1000);
      }, () => {});
    }
    await h.sleep(5);
  }
  await h.sleep(1500); // the last closes land
  return { registrations: n };
}

async function main() {
  const out = { instances: opt.instances, duration_s: opt.duration, rate: opt.rate };
  // 1. memory
  log('memory: one registry,', opt.instances, 'instances');
  const mem = await registry([]);
  const hold = holder(mem, opt.instances, 0, 1, opt.duration * 2 + 30, 0);
  await h.waitFor(async () => (await countOf(mem)) >= opt.instances + 1, { timeoutMs: 120000, intervalMs: 200 });
  out.memory = await finds(mem, 2, opt.instances);
  out.memory.rss_kb = rss(mem.proc.pid);
  hold.p.kill('SIGKILL');
  await mem.proc.stop();

  // 2. etcd
  log('etcd: three members, three replicas');
  const etcd = await startEtcdCluster(t, { members: 3 });
  const reps = [];
  for (let i = 0; i < 3; i++) reps.push(await registry(['--store', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', '/bench']));
  const per = Math.ceil(opt.instances / 3);
  const holders = reps.map((r, i) => holder(r, Math.min(per, opt.instances - i * per), i * per, 10 + i, 600, 0));
  const t0 = Date.now();
  for (const r of reps) await h.waitFor(async () => (await countOf(r)) >= opt.instances + 3, { timeoutMs: 180000, intervalMs: 200 });
  out.etcd = { load_all_visible_s: (Date.now() - t0) / 1000, replicas: [] };
  for (let i = 0; i < 3; i++) {
    const f = await finds(reps[i], 20 + i, opt.instances);
    out.etcd.replicas.push(f);
  }
  // 3. propagation
  log('propagation:', opt.samples, 'samples');
  out.etcd.propagation = await propagation(reps);
  // 4. writes
  log('etcd writes: steady for', opt.window, 's');
  await h.sleep(1000); // the propagation run's last close lands first
  out.etcd.writes_steady = await writesOver(etcd, opt.window, (ms) => h.sleep(ms));
  log('etcd writes: churn', opt.churn, 'registrations/s for', opt.window, 's');
  out.etcd.writes_churn = await writesOver(etcd, opt.window, (ms) => churn(reps, ms, opt.churn));
  out.etcd.writes_churn.registrations_per_s = opt.churn;
  // 5. RSS
  out.etcd.rss_kb = reps.map((r) => rss(r.proc.pid));
  out.etcd.etcd_rss_kb = etcd.members.map((m) => rss(m.proc.pid));
  for (const hd of holders) hd.p.kill('SIGKILL');
  // stdout carries node:test's TAP header (the harness uses node:test): the
  // result goes to a file.
  fs.writeFileSync(opt.out, JSON.stringify(out, null, 2) + '\n');
  log('written to', opt.out);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {}
    }
    process.exit();
  });
