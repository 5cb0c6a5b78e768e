'use strict';
// micro-sidecar and DNS that never answers (issue 10, item 8). Host names are
// resolved off the loop thread with a deadline (--dns-timeout-ms), so a peer
// registered under a name whose resolver hangs, or a --registry name that hangs,
// must not stall anything else.
//
// The sidecar under test runs in a private mount namespace (`unshare -m`) with
// /etc/resolv.conf bind-mounted to a file naming a nameserver on a fresh
// 127.x.y.z:53, where a node `dgram` socket reads queries and never answers, and
// /etc/hosts bind-mounted to a file that maps registry.dns-test.internal and
// app.dns-test.internal to 127.0.0.1 (names that resolve without DNS). Needs root (mount namespaces,
// port 53); skipped otherwise, with the reason.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/dns.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST, withEnv } = m;
const { test, waitFor, httpJson } = h;

const REGISTRY_NAME = 'registry.dns-test.internal';
const APP_NAME = 'app.dns-test.internal';
// glibc's own limits for a server that never answers: 5 s x 2 attempts = the 10 s stall
const RESOLV_OPTIONS = 'options timeout:5 attempts:2';

function rootSkipReason() {
  const base = m.skipReason();
  if (base) return base;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (mount namespace, port 53)';
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts && true'], { encoding: 'utf8' });
  if (r.status !== 0) return `unshare -m / mount --bind not available: ${(r.stderr || r.error || '').toString().trim()}`;
  return false;
}

/**
 * A nameserver that never answers on a fresh loopback address, resolv.conf and
 * hosts files naming it, and a wrapper that runs the sidecar binary with them.
 * Returns {wrapper, queries(), close()}.
 */
async function hangingDns(t) {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', () => {
    queries++;
  });
  let addr;
  for (let i = 0; ; i++) {
    addr = `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    try {
      await new Promise((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(53, addr, () => {
          sock.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (e) {
      if (i >= 5) throw e;
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'micro-dns-'));
  const resolv = path.join(dir, 'resolv.conf');
  const hosts = path.join(dir, 'hosts');
  fs.writeFileSync(resolv, `nameserver ${addr}\n${RESOLV_OPTIONS}\n`);
  fs.writeFileSync(hosts, `127.0.0.1 localhost\n127.0.0.1 ${REGISTRY_NAME}\n127.0.0.1 ${APP_NAME}\n`);
  const wrapper = path.join(dir, 'micro-sidecar');
  fs.writeFileSync(
    wrapper,
    '#!/bin/sh\n' +
      `exec unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"' ` +
      `sh ${resolv} ${hosts} ${h.sidecarBin()} "$@"\n`,
    { mode: 0o755 },
  );
  t.after(() => {
    sock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { wrapper, addr, queries: () => queries };
}

/** A sidecar started through the DNS wrapper, with extra environment. */
function startInNamespace(t, dns, env, opts) {
  return withEnv({ MICRO_SIDECAR_BIN: dns.wrapper, ...env }, () => m.startSidecar(t, opts));
}

/** One timed request; {status, body, ms}, or {error, ms} when it did not answer in timeoutMs. */
async function timed(fn) {
  const t0 = Date.now();
  try {
    const r = await fn();
    return { status: r.status, body: r.body, ms: Date.now() - t0 };
  } catch (e) {
    return { error: e.message, ms: Date.now() - t0 };
  }
}

/**
 * Until `until()` is true (at most maxMs), keep calling `good` on sc and GET
 * /-/health, one after the other; every one must answer 200 within limitMs.
 * Returns how many of each were made.
 */
async function keepsServing(sc, until, { limitMs = 1000, maxMs = 8000, call = true } = {}) {
  const end = Date.now() + maxMs;
  let calls = 0;
  let probes = 0;
  let maxCallMs = 0;
  let maxProbeMs = 0;
  while (!until() && Date.now() < end) {
    const p = await timed(() => httpJson('GET', `${sc.api}/-/health`, undefined, {}, { timeoutMs: limitMs * 3 }));
    assert.equal(p.status, 200, `GET /-/health answered promptly while a DNS lookup hangs: ${JSON.stringify(p)}`);
    assert.ok(p.ms < limitMs, `GET /-/health took ${p.ms} ms (limit ${limitMs} ms) while a DNS lookup hangs`);
    probes++;
    maxProbeMs = Math.max(maxProbeMs, p.ms);
    if (call) {
      const c = await timed(() => sc.call('good', '/echo', { n: calls }, {}, { timeoutMs: limitMs * 3 }));
      assert.equal(c.status, 200, `a call to another namespace succeeded while a DNS lookup hangs: ${JSON.stringify(c)}`);
      assert.ok(c.ms < limitMs, `a call to another namespace took ${c.ms} ms (limit ${limitMs} ms) while a DNS lookup hangs`);
      calls++;
      maxCallMs = Math.max(maxCallMs, c.ms);
    }
    await h.sleep(20);
  }
  return { calls, probes, maxCallMs, maxProbeMs };
}

/**
 * SIGTERM while lookups may still hang: the sidecar exits 0 at once (a thread
 * stuck in getaddrinfo is left behind, not waited for) and, in the sanitizer
 * build, with no report.
 */
async function stopsCleanly(sc) {
  const t0 = Date.now();
  const r = await sc.proc.stop(5000);
  assert.equal(r.code, 0, `${sc.name} exited 0 (${JSON.stringify(r)})`);
  assert.ok(Date.now() - t0 < 4000, `${sc.name} exited within 4 s of SIGTERM (${Date.now() - t0} ms)`);
  assert.doesNotMatch(sc.log, /Sanitizer|runtime error/, 'no sanitizer report');
}

describe('micro-sidecar: DNS that never answers', { skip: rootSkipReason() }, () => {
  test('a peer registered under a name that never resolves stalls nothing; its call fails at the lookup deadline', async (t) => {
    const dns = await hangingDns(t);
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'good' });
    await m.startSidecar(t, { ns: 'good', registryPort: registry.port, routes: ['*'], appUrl: echo.url });
    const sc = await startInNamespace(t, dns, { MICRO_DNS_TIMEOUT_MS: '1500' }, { ns: 'caller', registryPort: registry.port });
    // warm the good path: the peer connection exists before the hang starts
    assert.equal((await sc.call('good', '/echo', { warm: 1 })).status, 200);

    // a raw peer registers under a host name whose resolver never answers
    const hang = h.rawPeer(HOST, registry.port, ['hang.dns-test.invalid', 9100, 'hangns'], { t });
    await hang.ready();
    await waitFor(async () => (await m.namespaces(registry)).hangns, { message: 'hangns is listed' });

    let hangDone = null;
    const t0 = Date.now();
    const hangCall = sc.call('hangns', '/x', { a: 1 }, {}, { timeoutMs: 20000 }).then(
      (r) => (hangDone = { status: r.status, body: r.body, ms: Date.now() - t0 }),
      (e) => (hangDone = { error: e.message, ms: Date.now() - t0 }),
    );
    // the lookup really is out there, unanswered
    await waitFor(() => dns.queries() > 0, { timeoutMs: 3000, message: 'the sidecar asked the nameserver' });
    const served = await keepsServing(sc, () => hangDone, { maxMs: 8000 });
    await hangCall;
    t.diagnostic(`while the lookup hung: ${served.calls} calls (slowest ${served.maxCallMs} ms), ${served.probes} probes (slowest ${served.maxProbeMs} ms); the hanging call failed after ${hangDone.ms} ms`);
    assert.ok(served.calls >= 3, `calls kept going while the lookup hung (${served.calls})`);
    assert.equal(hangDone.status, 502, `the call to the unresolvable peer failed with 502: ${JSON.stringify(hangDone)}`);
    assert.match(String(hangDone.body && hangDone.body.error), /DNS|resolve/i, `a clear message: ${JSON.stringify(hangDone.body)}`);
    assert.ok(hangDone.ms >= 1300 && hangDone.ms < 4000, `it failed at the 1.5 s lookup deadline, not glibc's 10 s (took ${hangDone.ms} ms)`);
    const metrics = await sc.metrics();
    assert.ok(m.metricValue(metrics, 'micro_sidecar_dns_timeouts_total') >= 1, 'the timeout is counted');
    assert.equal(m.metricValue(metrics, 'micro_sidecar_dns_in_flight'), 0, 'no lookup is left waiting');
    // and afterwards, at once, everything still works
    assert.equal((await sc.call('good', '/echo', { after: 1 })).status, 200);
    assert.match(sc.log, /hang\.dns-test\.invalid/, 'the log names the host that did not resolve');
    await stopsCleanly(sc);
  });

  test('--registry given as a name that never resolves does not stall /-/health', async (t) => {
    const dns = await hangingDns(t);
    const sc = await startInNamespace(t, dns, { MICRO_DNS_TIMEOUT_MS: '1000' }, {
      ns: 'lonely',
      registry: 'hang-registry.dns-test.invalid:9000',
      waitReady: false,
    });
    // the API comes up at once although the registry's name hangs
    await waitFor(async () => (await httpJson('GET', `${sc.api}/-/health`, undefined, {}, { timeoutMs: 500 }).catch(() => ({}))).status === 200, {
      timeoutMs: 3000,
      message: 'GET /-/health answers within 3 s of start',
    });
    await waitFor(() => dns.queries() > 0, { timeoutMs: 3000, message: 'the sidecar asked the nameserver' });
    // several lookup deadlines and retries pass; /-/health answers promptly all along
    const t0 = Date.now();
    const served = await keepsServing(sc, () => Date.now() - t0 > 3500, { limitMs: 500, call: false });
    t.diagnostic(`${served.probes} probes while the registry's name hung (slowest ${served.maxProbeMs} ms)`);
    assert.ok(served.probes >= 20, `probes answered throughout (${served.probes})`);
    const ready = await sc.get('/-/ready');
    assert.equal(ready.status, 503, 'not ready: never registered');
    await sc.proc.waitForOutput(/registry unreachable.*DNS lookup timed out/, 3000);
    await stopsCleanly(sc); // with the registry's lookup still hanging
  });

  test('a flood of hanging peer names does not starve the registry dial (reserved lane)', async (t) => {
    const dns = await hangingDns(t);
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'good' });
    await m.startSidecar(t, { ns: 'good', registryPort: registry.port, routes: ['*'], appUrl: echo.url });
    // the registry by name (from /etc/hosts, no DNS), and no cache: every
    // re-dial of the registry is a fresh lookup
    const sc = await startInNamespace(t, dns, { MICRO_DNS_TIMEOUT_MS: '6000', MICRO_DNS_CACHE_MS: '0' }, {
      ns: 'caller',
      registry: `${REGISTRY_NAME}:${registry.port}`,
    });
    assert.equal((await sc.call('good', '/echo', { warm: 1 })).status, 200);
    const N = 12;
    for (let i = 0; i < N; i++) {
      const p = h.rawPeer(HOST, registry.port, [`hang${i}.dns-test.invalid`, 9100, `hang${i}`], { t });
      await p.ready();
    }
    await waitFor(async () => Object.keys(await m.namespaces(registry)).filter((k) => /^hang/.test(k)).length === N, {
      message: `${N} hanging namespaces listed`,
    });
    let finished = 0;
    const hangCalls = Array.from({ length: N }, (_, i) =>
      sc.call(`hang${i}`, '/x', {}, {}, { timeoutMs: 20000 }).then(
        (r) => {
          finished++;
          return r;
        },
        (e) => {
          finished++;
          return { error: e.message };
        },
      ),
    );
    await waitFor(() => dns.queries() >= 4, { timeoutMs: 3000, message: 'every peer resolver thread is stuck' });
    // drop the registry connection: the sidecar must re-register (a fresh lookup
    // of the registry's name) while every peer resolver thread hangs
    const t0 = Date.now();
    await sc.metric('micro_sidecar_registry_connects_total').then((v) => assert.ok(v >= 1));
    await registry.proc.stop();
    const reg2 = await m.startRegistry(t, { port: registry.port });
    await waitFor(async () => ((await m.namespaces(reg2)).caller || []).length === 1, {
      timeoutMs: 2500,
      message: 'the sidecar registered with the restarted registry',
    });
    const took = Date.now() - t0;
    t.diagnostic(`re-registered ${took} ms after the registry restart began, with ${N} peer lookups hanging`);
    assert.equal(finished, 0, `re-registered (${took} ms) while the hanging lookups were still out`);
    // calls to a namespace we already had keep working (the provider re-registers too)
    const c = await timed(() => sc.call('good', '/echo', { after: 1 }, {}, { timeoutMs: 3000 }));
    assert.equal(c.status, 200, JSON.stringify(c));
    assert.ok(c.ms < 1000, `call took ${c.ms} ms`);
    const results = await Promise.all(hangCalls);
    for (const r of results) assert.ok(r.status === 502 || r.status === 503, `each hanging call failed cleanly: ${JSON.stringify(r)}`);
    await stopsCleanly(sc);
  });

  test('an app url whose host never resolves fails inbound calls at the deadline; the sidecar keeps serving', async (t) => {
    const dns = await hangingDns(t);
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'named' });
    // two routes: one to the app by a name from /etc/hosts, one to a name that hangs
    const prov = await startInNamespace(t, dns, { MICRO_DNS_TIMEOUT_MS: '1500' }, {
      ns: 'prov',
      registryPort: registry.port,
      appUrl: `http://${APP_NAME}:${echo.port}`,
      routes: ['/echo'],
    });
    const add = await httpJson('POST', `${prov.api}/v1/routes`, { url: '/hang', target: 'http://hang-app.dns-test.invalid:8080/hang' });
    assert.ok(add.status === 201 || add.status === 200, `route added: ${add.status} ${add.text}`);
    const caller = await m.startSidecar(t, { ns: 'caller', registryPort: registry.port });
    // the app by name: resolved off the loop, the call goes through
    const ok = await caller.call('prov', '/echo', { v: 1 });
    assert.equal(ok.status, 200, `call to the app by host name: ${ok.status} ${ok.text}`);
    let hangDone = null;
    const t0 = Date.now();
    const hangCall = caller.call('prov', '/hang', { v: 2 }, { 'x-micro-retries': '0' }, { timeoutMs: 20000 }).then(
      (r) => (hangDone = { status: r.status, body: r.body, ms: Date.now() - t0 }),
      (e) => (hangDone = { error: e.message, ms: Date.now() - t0 }),
    );
    await waitFor(() => dns.queries() > 0, { timeoutMs: 3000, message: 'the provider asked the nameserver' });
    // meanwhile the provider answers its probes and its other route at once
    const end = Date.now() + 8000;
    let n = 0;
    while (!hangDone && Date.now() < end) {
      const p = await timed(() => httpJson('GET', `${prov.api}/-/health`, undefined, {}, { timeoutMs: 3000 }));
      assert.ok(p.status === 200 && p.ms < 1000, `provider /-/health while the app lookup hangs: ${JSON.stringify(p)}`);
      const c = await timed(() => caller.call('prov', '/echo', { n }, {}, { timeoutMs: 3000 }));
      assert.ok(c.status === 200 && c.ms < 1000, `another route of the provider while the app lookup hangs: ${JSON.stringify(c)}`);
      n++;
      await h.sleep(20);
    }
    await hangCall;
    assert.ok(n >= 3, `calls kept going (${n})`);
    assert.equal(hangDone.status, 502, JSON.stringify(hangDone));
    assert.match(String(hangDone.body && hangDone.body.error), /resolve/i, JSON.stringify(hangDone.body));
    assert.ok(hangDone.ms >= 1300 && hangDone.ms < 4000, `failed at the 1.5 s deadline (took ${hangDone.ms} ms)`);
    await stopsCleanly(prov);
  });
});
