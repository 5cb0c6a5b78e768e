'use strict';
// The soak run behind tests/soak/run.sh: see there. Usage: node soak.js SECONDS
// (MICRO_BUILD_DIR says where the binaries are).

const fs = require('node:fs');
const http = require('node:http');
const m = require('../integration/lib/mesh');

const { h, HOST } = m;
const seconds = Number(process.argv[2] || 300);
const endAt = Date.now() + seconds * 1000;

// A stand-in for node:test's t: the helpers register clean-ups with t.after.
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn), diagnostic: () => {} };

const rss = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m)[1]) * 1024;
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const MB = (n) => `${(n / 1048576).toFixed(1)} MB`;
const counts = {};
const count = (k) => (counts[k] = (counts[k] || 0) + 1);

async function worker(fn) {
  while (Date.now() < endAt) {
    try {
      await fn();
    } catch (e) {
      count(`error: ${e.message.slice(0, 60)}`);
    }
  }
}

/** A call whose client hangs up after `ms`. */
function hangUp(sc, url, ms) {
  return new Promise((resolve) => {
    const req = http.request({ method: 'POST', host: HOST, port: sc.apiPort, path: `/v1/call/b${url}`, agent: false,
      headers: { 'content-type': 'application/json', 'x-micro-timeout-ms': '10000' } });
    req.on('error', () => resolve());
    req.end('{"bye":1}');
    setTimeout(() => {
      req.destroy();
      resolve();
    }, ms);
  });
}

async function main() {
  const registry = await m.startRegistry(t);
  const echo = await m.startEcho(t, { name: 'echo-b' });
  const common = { registryPort: registry.port, heartbeatIntervalMs: 500, reconnectIntervalMs: 200 };
  const b = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echo.url, routes: ['*'] });
  const a = await m.startSidecar(t, { ...common, ns: 'a', breakerCooldownMs: 500 });
  let churn = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echo.url, routes: ['*'], name: 'churn b' });
  await m.waitListed(registry, 'b', [b.key, churn.key]);
  const watched = { 'sidecar a (caller)': a.proc.pid, 'sidecar b (provider)': b.proc.pid, registry: registry.proc.pid };
  const samples = Object.fromEntries(Object.keys(watched).map((k) => [k, []]));
  const t0 = Date.now();
  const sampler = setInterval(() => {
    for (const [k, pid] of Object.entries(watched)) {
      try {
        samples[k].push({ at: Date.now() - t0, rss: rss(pid), fds: fds(pid) });
      } catch {
        /* exited: reported below */
      }
    }
  }, 500);

  const body = { pad: 'p'.repeat(2048) };
  const workers = [
    // plain calls and pushes through a
    ...Array.from({ length: 4 }, () => worker(async () => {
      const r = await a.call('b', '/echo', body, { 'X-Micro-Timeout-Ms': '5000' });
      count(`call ${r.status}`);
    })),
    worker(async () => count(`push ${(await a.push('b', '/echo', body)).status}`)),
    // calls that time out: ABORT to the provider
    worker(async () => count(`timeout ${(await a.call('b', '/slow/300', body, { 'X-Micro-Timeout-Ms': '50', 'X-Micro-Retries': '0' })).status}`)),
    // API clients that hang up mid-call
    worker(async () => {
      await hangUp(a, '/slow/2000', 100);
      count('hang-up');
    }),
    // raw peers: REQUEST + ABORT pairs, then a reconnect
    worker(async () => {
      const p = h.rawPeer(HOST, b.meshPort, [HOST, 30000 + (Date.now() % 20000), 'soak-raw']);
      await p.ready();
      for (let i = 0; i < 50; i++) {
        const q = p.request(i % 2 ? '/slow/500' : '/echo', { i }, { timeout: 2000 });
        q.catch(() => {});
        p.abort(q.id);
      }
      await h.sleep(200);
      p.terminate();
      count('raw peer');
    }),
    // churn: one provider of b restarts every few seconds
    worker(async () => {
      await h.sleep(3000);
      await churn.proc.stop();
      churn = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echo.url, routes: ['*'], name: 'churn b' });
      count('restart');
    }),
  ];
  await Promise.all(workers);
  clearInterval(sampler);

  // flat: the end window (last 15 %) against the baseline window (from 15 % to 30 %)
  let ok = true;
  const lines = [];
  for (const [k, ss] of Object.entries(samples)) {
    const dur = seconds * 1000;
    const mean = (xs, f) => xs.reduce((s, x) => s + f(x), 0) / Math.max(1, xs.length);
    const base = ss.filter((x) => x.at >= 0.15 * dur && x.at < 0.3 * dur);
    const end = ss.filter((x) => x.at >= 0.85 * dur);
    const r0 = mean(base, (x) => x.rss), r1 = mean(end, (x) => x.rss);
    const f0 = mean(base, (x) => x.fds), f1 = mean(end, (x) => x.fds);
    const rssOk = base.length > 0 && end.length > 0 && r1 <= r0 * 1.2 + 4 * 1048576;
    const fdOk = base.length > 0 && end.length > 0 && f1 <= f0 + 8;
    ok = ok && rssOk && fdOk;
    lines.push(`soak: ${k}: RSS ${MB(r0)} -> ${MB(r1)} ${rssOk ? 'ok' : 'GREW'}, fds ${f0.toFixed(1)} -> ${f1.toFixed(1)} ${fdOk ? 'ok' : 'GREW'}`);
  }
  const calls = Object.entries(counts).filter(([k]) => k.startsWith('call ')).reduce((s, [, v]) => s + v, 0);
  const callsOk = counts['call 200'] || 0;
  const callRateOk = calls > 0 && callsOk / calls >= 0.95;
  ok = ok && callRateOk;
  for (const l of lines) console.log(l);
  console.log(`soak: ${seconds} s, counts ${JSON.stringify(counts)}`);
  console.log(`soak: calls ${callsOk}/${calls} answered 200 ${callRateOk ? 'ok' : 'TOO FEW'}`);
  console.log(`soak: ${ok ? 'passed' : 'FAILED'}`);
  for (const fn of cleanups.reverse()) await fn();
  process.exit(ok ? 0 : 1);
}

main().catch(async (e) => {
  console.error(`soak: ${e.stack}`);
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  process.exit(1);
});
