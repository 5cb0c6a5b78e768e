'use strict';
// micro-sidecar over time: a provider restarting on the same ports, a registry that
// is not there yet / goes away / comes back, heartbeats and eviction, and the
// SIGTERM drain. Short intervals via flags; every wait is a poll with a deadline.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/sidecar-lifecycle.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST } = m;
const { test, waitFor, httpJson, rawPeer, freePort, sleep } = h;

async function abMesh(t, extra = {}) {
  const mesh = await m.startMesh(t, {
    registry: extra.registry,
    providers: [{ ns: 'b', echoName: 'echo-b', ...(extra.provider || {}) }, ...(extra.moreProviders || [])],
    consumers: [{ ns: 'a', ...(extra.consumer || {}) }],
    sidecar: extra.sidecar,
  });
  return { ...mesh, a: mesh.consumers[0], b: mesh.providers[0].sidecar, echo: mesh.providers[0].echo };
}

async function meshHealth(sc) {
  const r = await httpJson('GET', `${sc.mesh}/-/health`);
  assert.equal(r.status, 200, `${sc.name} mesh /-/health: ${r.text}`);
  return r.body;
}

describe('micro-sidecar: lifecycle', { skip: m.skipReason() }, () => {
  test('provider restarts on the same ports: calls recover', async (t) => {
    const { registry, a, b, echo } = await abMesh(t);
    let r = await a.call('b', '/echo', { n: 1 });
    assert.equal(r.status, 200, r.text);

    b.proc.kill('SIGKILL');
    await b.proc.waitExit(3000);
    await m.waitListed(registry, 'b', []);
    r = await a.call('b', '/echo', { n: 2 });
    assert.notEqual(r.status, 200, `b is gone: ${r.text}`);
    assert.ok([502, 503].includes(r.status), `b is gone: ${r.status} ${r.text}`);

    const b2 = await m.startSidecar(t, {
      ns: 'b',
      registryPort: registry.port,
      appUrl: echo.url,
      routes: ['*'],
      meshPort: b.meshPort,
      apiPort: b.apiPort,
      name: 'sidecar b (restarted)',
    });
    await m.waitListed(registry, 'b', [b2.key]);
    // the first call after b is back succeeds (no waiting for the breaker cooldown)
    r = await a.call('b', '/echo', { n: 3 });
    assert.equal(r.status, 200, `first call after the restart: ${r.text}`);
    assert.equal(r.body.n, 3);
    assert.equal(await b2.metric('micro_sidecar_inbound_total'), 1, 'served by the new b');

    // and a graceful restart too
    await b2.proc.stop();
    assert.equal(b2.proc.exitCode, 0, b2.proc.describe());
    const b3 = await m.startSidecar(t, {
      ns: 'b',
      registryPort: registry.port,
      appUrl: echo.url,
      routes: ['*'],
      meshPort: b.meshPort,
      apiPort: b.apiPort,
      name: 'sidecar b (restarted again)',
    });
    await m.waitListed(registry, 'b', [b3.key]);
    r = await a.call('b', '/echo', { n: 4 });
    assert.equal(r.status, 200, `first call after the second restart: ${r.text}`);
  });

  test('registry unreachable at start: not ready with a reason, then ready once it is up', async (t) => {
    const regPort = await freePort();
    const a = await m.startSidecar(t, { ns: 'a', registryPort: regPort, waitReady: false, reconnectIntervalMs: 200 });
    // the process is up and answers: 503 with a reason
    const notReady = await waitFor(
      async () => {
        const r = await httpJson('GET', `${a.api}/-/ready`, undefined, {}, { timeoutMs: 1000 });
        return r.status === 503 ? r : null;
      },
      { timeoutMs: 5000, message: 'GET /-/ready answers 503' },
    );
    assert.equal(notReady.body.status, 'not-ready', notReady.text);
    assert.equal(typeof notReady.body.reason, 'string', notReady.text);
    assert.ok(notReady.body.reason.length > 0, notReady.text);
    const meshReady = await httpJson('GET', `${a.mesh}/-/ready`);
    assert.equal(meshReady.status, 503, `mesh port /-/ready: ${meshReady.text}`);
    // liveness does not depend on the registry
    const health = await meshHealth(a);
    assert.equal(health.status, 'ok');
    assert.equal(health.registry, false);
    assert.equal(await a.metric('micro_sidecar_ready'), 0);
    // a call has nowhere to go
    const call = await a.call('b', '/echo', {});
    assert.equal(call.status, 503, call.text);
    // and it says so in its logs (warn or error level, naming the registry)
    await waitFor(() => /(WARN|ERROR).*registry/i.test(a.log), { timeoutMs: 3000, message: 'a warning about the registry in the log' });
    // still not ready a while later (it keeps retrying, it does not give up or exit)
    await sleep(500);
    assert.equal(a.proc.exited, false, 'the sidecar keeps running without a registry');
    assert.equal((await httpJson('GET', `${a.api}/-/ready`)).status, 503);

    const registry = await m.startRegistry(t, { port: regPort });
    const t0 = Date.now();
    await waitFor(async () => (await httpJson('GET', `${a.api}/-/ready`)).status === 200, {
      timeoutMs: 2000,
      intervalMs: 20,
      message: '/-/ready turns 200 within the reconnect interval (200 ms) after the registry is up',
    });
    const took = Date.now() - t0;
    assert.ok(took < 1500, `ready ${took} ms after the registry came up`);
    await m.waitListed(registry, 'a', [a.key]);
    assert.equal((await meshHealth(a)).registry, true);
    const apiHealth = await httpJson('GET', `${a.api}/-/health`);
    assert.equal(apiHealth.status, 200);
    assert.equal(apiHealth.body.registry, true, `API /-/health: ${apiHealth.text}`);
  });

  test('heartbeats keep an instance listed; a silent instance is evicted', async (t) => {
    const registry = await m.startRegistry(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, heartbeatIntervalMs: 200 });
    const silentPort = await freePort();
    const silent = rawPeer(HOST, registry.port, [HOST, silentPort, 'silent'], { t });
    await silent.ready();
    await m.waitListed(registry, 'silent', [`${HOST}:${silentPort}`]);
    const hb0 = await a.metric('micro_sidecar_heartbeats_total');

    // for 2 s (> 3 heartbeat timeouts) a stays listed, every time we look
    const until = Date.now() + 2000;
    let looks = 0;
    while (Date.now() < until) {
      const ns = await m.namespaces(registry);
      assert.deepEqual(ns.a, [a.key], `a must stay listed (look ${looks}, ${until - Date.now()} ms left): ${JSON.stringify(ns)}`);
      looks++;
      await sleep(50);
    }
    assert.ok(looks >= 10, `looked ${looks} times`);
    // an eviction followed by an immediate re-registration would be too quick to see above
    assert.equal(await a.metric('micro_sidecar_registry_connects_total'), 1, 'never dropped and re-registered');
    assert.ok((await a.metric('micro_sidecar_heartbeats_total')) - hb0 >= 6, 'a sent heartbeats every 200 ms');

    // the raw peer never sent a heartbeat: it is gone, and its socket was closed
    const ns = await m.namespaces(registry);
    assert.equal(ns.silent, undefined, `the silent instance was evicted: ${JSON.stringify(ns)}`);
    await silent.waitClosed(2000);
    const regMetrics = (await httpJson('GET', `${registry.http}/metrics`)).text;
    assert.equal(m.metricValue(regMetrics, 'micro_registry_evictions_total'), 1, 'only the silent instance was evicted');
  });

  test('cache degradation: with the registry killed, calls to a known namespace still succeed', async (t) => {
    const { registry, a } = await abMesh(t);
    let r = await a.call('b', '/echo', { n: 1 });
    assert.equal(r.status, 200, r.text);
    registry.proc.kill('SIGKILL');
    await registry.proc.waitExit(3000);
    await waitFor(async () => (await meshHealth(a)).registry === false, { timeoutMs: 3000, message: 'a sees the registry gone' });
    for (let i = 2; i < 12; i++) {
      r = await a.call('b', '/echo', { n: i });
      assert.equal(r.status, 200, `call ${i} without a registry: ${r.text}`);
      assert.equal(r.body.n, i);
    }
    // a registry outage after the first registration does not make the pod unready
    assert.equal((await httpJson('GET', `${a.api}/-/ready`)).status, 200);
    assert.equal(await a.metric('micro_sidecar_registry_connected'), 0);
    // an unknown namespace cannot be found meanwhile
    r = await a.call('c', '/echo', {});
    assert.equal(r.status, 503, r.text);
  });

  test('registry restart: both sidecars register again within the reconnect interval', async (t) => {
    const { registry, a, b } = await abMesh(t);
    assert.equal((await a.call('b', '/echo', {})).status, 200);
    registry.proc.kill('SIGKILL');
    await registry.proc.waitExit(3000);
    await waitFor(async () => (await meshHealth(a)).registry === false && (await meshHealth(b)).registry === false, {
      timeoutMs: 3000,
      message: 'both sidecars see the registry gone',
    });
    const reg2 = await m.startRegistry(t, { port: registry.port });
    const t0 = Date.now();
    await m.waitListed(reg2, 'a', [a.key], { timeoutMs: 3000 });
    await m.waitListed(reg2, 'b', [b.key], { timeoutMs: 3000 });
    const took = Date.now() - t0;
    assert.ok(took < 2000, `both listed again ${took} ms after the restart (reconnect interval 200 ms)`);
    assert.equal((await meshHealth(a)).registry, true);
    assert.equal(await a.metric('micro_sidecar_registry_connects_total'), 2);
    // discovery works through the new registry: a new consumer finds b
    const c = await m.startSidecar(t, { ns: 'c', registryPort: reg2.port });
    const r = await c.call('b', '/echo', { via: 'new registry' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.via, 'new registry');
  });

  test('SIGTERM drain: not ready at once, leaves the registry, finishes the in-flight call, exits 0', async (t) => {
    const { registry, a, b, echo, providers } = await abMesh(t, {
      provider: { shutdownGraceMs: 5000 },
      moreProviders: [{ ns: 'c', echoName: 'echo-c' }],
    });
    const echoC = providers[1].echo;
    assert.equal((await httpJson('GET', `${b.api}/-/ready`)).status, 200);
    // b knows c already (once it has left the registry it cannot look up anything new)
    assert.equal((await b.call('c', '/echo', { warm: 1 })).status, 200);
    const inflight = a.call('b', '/slow/1500', { drain: 1 }, { 'X-Micro-Timeout-Ms': '10000', 'X-Micro-Retries': '0' });
    // and an outbound call of b's in flight too
    const outInflight = b.call('c', '/slow/1000', { out: 1 }, { 'X-Micro-Timeout-Ms': '10000', 'X-Micro-Retries': '0' });
    await waitFor(async () => (await echo.stats()).by_url['/slow/1500'] === 1, { timeoutMs: 3000, message: 'the slow call reached the app' });
    await waitFor(async () => (await echoC.stats()).by_url['/slow/1000'] === 1, { timeoutMs: 3000, message: 'b\'s outbound call reached c\'s app' });

    const t0 = Date.now();
    b.proc.kill('SIGTERM');
    // 1. /-/ready turns 503 at once (API and mesh port)
    const notReady = await waitFor(
      async () => {
        const r = await httpJson('GET', `${b.api}/-/ready`, undefined, {}, { timeoutMs: 500 });
        return r.status === 503 ? r : null;
      },
      { timeoutMs: 500, intervalMs: 10, message: 'b /-/ready is 503 right after SIGTERM' },
    );
    assert.equal(notReady.body.status, 'not-ready', notReady.text);
    assert.equal((await httpJson('GET', `${b.mesh}/-/ready`)).status, 503, 'mesh port /-/ready');
    // 2. b leaves the registry, before it exits
    await m.waitListed(registry, 'b', [], { timeoutMs: 1000 });
    assert.equal(b.proc.exited, false, `b left the registry ${Date.now() - t0} ms after SIGTERM and is still draining`);
    // 3. outbound calls from b keep working while it drains (through its cached peer)
    const out = await b.call('c', '/echo', { from: 'draining b' });
    assert.equal(out.status, 200, `outbound call during the drain: ${out.text}`);
    assert.equal(out.body.from, 'draining b');
    assert.equal((await echoC.stats()).by_url['/echo'], 2);
    // the in-flight outbound call completes
    const outR = await outInflight;
    assert.equal(outR.status, 200, `b's in-flight outbound call: ${outR.text}`);
    assert.equal(outR.body.out, 1);
    // the in-flight inbound call completes
    const r = await inflight;
    assert.equal(r.status, 200, `in-flight call: ${r.text}`);
    assert.equal(r.body.drain, 1);
    // 4. b exits 0 (once drained: before the 5 s grace)
    const ex = await b.proc.waitExit(6000);
    assert.deepEqual(ex, { code: 0, signal: null }, b.proc.describe());
    assert.ok(Date.now() - t0 < 4500, `exited ${Date.now() - t0} ms after SIGTERM, with nothing left in flight`);
    assert.equal((await echo.stats()).aborted, 0, 'nothing was aborted');
  });

  test('SIGTERM drain deadline: what is left is aborted (503 inbound, ABORT outbound), exit 0', async (t) => {
    const { a, b, echo, providers } = await abMesh(t, {
      provider: { shutdownGraceMs: 400 },
      moreProviders: [{ ns: 'c', echoName: 'echo-c' }],
    });
    const echoC = providers[1].echo;
    const c = providers[1].sidecar;
    const inflight = a.call('b', '/slow/5000', { late: 1 }, { 'X-Micro-Timeout-Ms': '10000', 'X-Micro-Retries': '0' });
    const outInflight = b
      .call('c', '/slow/5000', { out: 1 }, { 'X-Micro-Timeout-Ms': '10000', 'X-Micro-Retries': '0' })
      .catch((e) => ({ status: `no HTTP answer (${e.code || e.message})`, text: e.message }));
    await waitFor(async () => (await echo.stats()).by_url['/slow/5000'] === 1, { timeoutMs: 3000, message: 'the slow call reached the app' });
    await waitFor(async () => (await echoC.stats()).by_url['/slow/5000'] === 1, { timeoutMs: 3000, message: 'b\'s outbound call reached c\'s app' });
    const t0 = Date.now();
    b.proc.kill('SIGTERM');
    const r = await inflight;
    const took = Date.now() - t0;
    assert.equal(r.status, 503, `in-flight inbound call past the grace: ${r.text}`);
    assert.ok(took >= 300 && took < 2500, `answered ${took} ms after SIGTERM with a 400 ms grace`);
    const ex = await b.proc.waitExit(3000);
    assert.deepEqual(ex, { code: 0, signal: null }, b.proc.describe());
    await waitFor(async () => (await echo.stats()).aborted >= 1, { timeoutMs: 2000, message: 'the app saw its request cancelled' });
    // b's own outbound call: c got an ABORT and cancelled its app request
    await waitFor(async () => (await echoC.stats()).aborted >= 1, { timeoutMs: 2000, message: 'c\'s app saw b\'s call cancelled' });
    assert.equal(await c.metric('micro_sidecar_inbound_aborted_total'), 1);
    const outR = await outInflight;
    assert.equal(outR.status, 503, `b's app, whose outbound call was cut by the deadline, gets 503: ${outR.text}`);
    assert.equal(outR.body.status, 503, outR.text);
  });

  test('SIGINT is a graceful shutdown too (exit 0, leaves the registry)', async (t) => {
    const { registry, b } = await abMesh(t);
    b.proc.kill('SIGINT');
    const ex = await b.proc.waitExit(3000);
    assert.deepEqual(ex, { code: 0, signal: null }, b.proc.describe());
    await m.waitListed(registry, 'b', [], { timeoutMs: 1000 });
  });
});
