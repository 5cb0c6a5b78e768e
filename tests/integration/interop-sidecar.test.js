'use strict';
// micro-sidecar against the Node reference-compatible peers of tests/node/peer.js
// (our stand-in for @hile/micro 1.0.5), both directions:
//   - a Node Application as provider, called through our sidecar;
//   - a Node Application as consumer, calling an app behind our sidecar;
//   - our sidecars registered with a Node Registry, calling each other and Node apps.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/interop-sidecar.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST, UUID_RE } = m;
const { test, waitFor, httpJson, spawnPeer, sleep } = h;

/** A Node Application (peer.js app) with the echo routes and a control port. */
async function nodeApp(t, ns, registryPort, extra = []) {
  const { proc, info } = await spawnPeer(
    [
      'app',
      '--namespace', ns,
      '--port', '0',
      '--registry', `${HOST}:${registryPort}`,
      '--advertise-host', HOST,
      '--bind', HOST,
      '--serve-echo',
      '--control-port', '0',
      '--heartbeat-interval-ms', '200',
      '--reconnect-interval-ms', '200',
      ...extra,
    ],
    { t, name: `node app ${ns}` },
  );
  const control = `http://${HOST}:${info.controlPort}`;
  return {
    proc,
    info,
    key: `${HOST}:${info.port}`,
    control,
    async call(namespace, url, data, timeout, retries) {
      const r = await httpJson('POST', `${control}/call`, { namespace, url, data, timeout, retries });
      assert.equal(r.status, 200, `node control /call: ${r.text}`);
      return r.body;
    },
    async push(namespace, url, data) {
      const r = await httpJson('POST', `${control}/push`, { namespace, url, data });
      assert.equal(r.status, 200, r.text);
      return r.body;
    },
    async get(namespace, exclude) {
      const r = await httpJson('POST', `${control}/get`, { namespace, exclude });
      assert.equal(r.status, 200, r.text);
      return r.body;
    },
    async stats() {
      return (await httpJson('GET', `${control}/stats`)).body;
    },
  };
}

describe('micro-sidecar interop with the Node reference peers', { skip: m.skipReason() }, () => {
  test('a Node Application provider, called through our sidecar', async (t) => {
    const registry = await m.startRegistry(t);
    const node = await nodeApp(t, 'nodeb', registry.port);
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port });
    await m.waitListed(registry, 'nodeb', [node.key]);

    let r = await a.call('nodeb', '/echo', { x: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.x, 1);
    assert.match(r.body._correlationId, UUID_RE);
    assert.equal(r.headers['x-correlation-id'], r.body._correlationId);
    // what the Node handler received, exactly
    let st = await node.stats();
    assert.deepEqual(st.lastData['/echo'], { x: 1, _correlationId: r.body._correlationId });

    r = await a.call('nodeb', '/echo', ['arr'], { 'X-Correlation-Id': 'node-cid' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { _correlationId: 'node-cid', data: ['arr'] });

    r = await a.call('nodeb', '/whoami', {});
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { namespace: 'nodeb', host: HOST, port: node.info.port });

    // a handler failure: status 500 and the message passed back
    r = await a.call('nodeb', '/fail', {}, { 'X-Micro-Retries': '0' });
    assert.equal(r.status, 500, r.text);
    assert.deepEqual(r.body, { error: 'boom', status: 500 });

    // the reference answers an unknown url with 500 and the url as the message
    r = await a.call('nodeb', '/nope', {}, { 'X-Micro-Retries': '0' });
    assert.equal(r.status, 500, r.text);
    assert.match(r.body.error, /\/nope/);

    // a timeout: the ABORT reaches the Node handler, which sees its signal fire
    r = await a.call('nodeb', '/slow', { ms: 5000 }, { 'X-Micro-Timeout-Ms': '300', 'X-Micro-Retries': '0' });
    assert.equal(r.status, 504, r.text);
    await waitFor(async () => (await node.stats()).slowAborted === 1, { timeoutMs: 3000, message: 'node /slow was aborted' });
    st = await node.stats();
    assert.equal(st.abortsReceived, 1);
    assert.equal(st.badFrames, 0, 'the Node peer parsed every frame we sent');
    r = await a.call('nodeb', '/slow', { ms: 100 }, { 'X-Micro-Timeout-Ms': '5000' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { slept: 100 });

    // every WebSocket length encoding of the frames we mask ourselves (7-bit,
    // 16-bit, 64-bit) reaches the Node peer's ws intact, and comes back
    for (const n of [10, 126, 1000, 65536, 200000]) {
      r = await a.call('nodeb', '/echo', { s: 'x'.repeat(n) });
      assert.equal(r.status, 200, `payload of ${n}: ${r.text.slice(0, 200)}`);
      assert.equal(r.body.s.length, n);
    }
    assert.equal((await node.stats()).badFrames, 0);

    // push
    r = await a.push('nodeb', '/echo', { pushed: true });
    assert.equal(r.status, 202, r.text);
    await waitFor(async () => (await node.stats()).pushesReceived === 1, { timeoutMs: 3000, message: 'the Node app got the push' });

    // one connection between the two, opened by our sidecar
    st = await node.stats();
    assert.deepEqual(st.connections.filter((k) => k !== `${HOST}:${registry.port}`), [a.key]);
    assert.deepEqual(st.socketErrors, []);
  });

  test('a Node Application consumer, calling an app behind our sidecar', async (t) => {
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'echo-b' });
    const b = await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: echo.url, routes: ['*'] });
    const node = await nodeApp(t, 'nodea', registry.port);

    let r = await node.call('b', '/inspect', { q: 1 });
    assert.equal(r.ok, true, JSON.stringify(r));
    const cid = r.data.body._correlationId;
    assert.match(cid, UUID_RE);
    assert.deepEqual(r.data.body, { q: 1, _correlationId: cid });
    assert.equal(r.data.correlationId, cid, 'X-Correlation-Id from _correlationId');
    assert.equal(r.data.caller, node.key, 'X-Micro-Caller is the Node peer\'s address');
    assert.equal(r.data.contentType, 'application/json');

    // non-object payloads, wrapped by the Node side
    r = await node.call('b', '/echo', 'plain');
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.data.data, 'plain');
    r = await node.call('b', '/empty', {});
    assert.deepEqual(r, { ok: true, data: null }, 'an empty app answer is a RESPONSE without data');
    r = await node.call('b', '/text', {});
    assert.deepEqual(r, { ok: true, data: 'hello from echo-b' });

    // errors the Node side sees
    r = await node.call('b', '/status/418', {}, undefined, 0);
    assert.equal(r.ok, false);
    assert.equal(r.status, 418, JSON.stringify(r));
    assert.equal(r.message, 'status 418 from echo-b');
    await httpJson('DELETE', `${b.api}/v1/routes/*`).then((x) => assert.equal(x.status, 204, x.text));
    r = await node.call('b', '/echo', {}, undefined, 0);
    assert.equal(r.ok, false, 'no route: not ok');
    assert.equal(r.status, 404, JSON.stringify(r));
    assert.equal((await httpJson('POST', `${b.api}/v1/routes`, { url: '*' })).status, 201);

    // /-/health over the mesh, answered by the sidecar
    r = await node.call('b', '/-/health', {});
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.data.status, 'ok');
    assert.equal(r.data.registry, true);
    assert.equal(typeof r.data.uptime, 'number');
    assert.ok(Array.isArray(r.data.namespaces));

    // a Node timeout sends an ABORT: the sidecar cancels the app request
    r = await node.call('b', '/slow/5000', {}, 300, 0);
    assert.equal(r.ok, false);
    assert.equal(r.status, 'ECONNABORTED');
    await waitFor(async () => (await echo.stats()).aborted >= 1, { timeoutMs: 3000, message: 'echo saw the request cancelled' });
    assert.equal(await b.metric('micro_sidecar_inbound_aborted_total'), 1);

    // push from Node
    r = await node.push('b', '/echo', { p: 1 });
    assert.equal(r.ok, true);
    await waitFor(async () => (await echo.stats()).by_url['/echo'] === 2, { timeoutMs: 3000, message: 'the push reached the app' });

    // the sidecar calls back the Node app on the connection the Node app opened
    r = await b.call('nodea', '/echo', { back: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.back, 1);
    const st = await node.stats();
    assert.deepEqual(st.socketErrors, []);
    assert.equal(st.badFrames, 0);
    assert.deepEqual(st.connections.filter((k) => k !== `${HOST}:${registry.port}`), [b.key], 'one connection per pair');
  });

  test('a falsy _correlationId ("", null, false, 0) is replaced, as the reference does', async (t) => {
    // reference: `if (!data._correlationId) data = {...data, _correlationId: uuid()}`
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'echo-b' });
    await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: echo.url, routes: ['*'] });
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port });
    const node = await nodeApp(t, 'nodea', registry.port);
    for (const falsy of ['', null, false, 0]) {
      const what = `_correlationId ${JSON.stringify(falsy)}`;
      // what the reference-compatible Node Application sends
      const viaNode = await node.call('b', '/inspect', { _correlationId: falsy, x: 1 });
      assert.equal(viaNode.ok, true, JSON.stringify(viaNode));
      assert.match(String(viaNode.data.body._correlationId), UUID_RE, `Node app, ${what}: ${JSON.stringify(viaNode.data.body)}`);
      // what our sidecar sends for the same payload
      const r = await a.call('b', '/inspect', { _correlationId: falsy, x: 1 });
      assert.equal(r.status, 200, r.text);
      assert.match(String(r.body.body._correlationId), UUID_RE, `sidecar, ${what}: the app received ${JSON.stringify(r.body.body)}, X-Correlation-Id ${JSON.stringify(r.body.correlationId)}`);
      assert.equal(r.body.correlationId, r.body.body._correlationId, what);
      assert.equal(r.body.body.x, 1);
      assert.equal(r.headers['x-correlation-id'], r.body.body._correlationId, `${what}: X-Correlation-Id on the answer`);
    }
  });

  test('our sidecars registered with a Node Registry: registration, heartbeats, calls', async (t) => {
    const nreg = await m.startNodeRegistry(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
    const echo = await m.startEcho(t, { name: 'echo-b' });
    const b = await m.startSidecar(t, { ns: 'b', registryPort: nreg.port, appUrl: echo.url, routes: ['*'] });
    const a = await m.startSidecar(t, { ns: 'a', registryPort: nreg.port });
    const node = await nodeApp(t, 'nodec', nreg.port);

    // the Node registry knows both sidecars (find through a Node app)
    assert.deepEqual(await node.get('b'), { ok: true, key: b.key });
    assert.deepEqual(await node.get('a'), { ok: true, key: a.key });

    // sidecar -> sidecar through the Node registry
    let r = await a.call('b', '/echo', { via: 'node registry' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.via, 'node registry');
    // sidecar -> Node app
    r = await a.call('nodec', '/echo', { to: 'node' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.to, 'node');
    // Node app -> sidecar
    const nr = await node.call('b', '/inspect', { from: 'node' });
    assert.equal(nr.ok, true, JSON.stringify(nr));
    assert.equal(nr.data.body.from, 'node');

    // heartbeats keep the sidecars registered (registry timeout 600 ms): a fresh
    // /-/find from a raw peer (which heartbeats itself) still finds b after 1.5 s
    const probe = h.rawPeer(HOST, nreg.port, [HOST, await h.freePort(), 'probe'], { t });
    await probe.ready();
    const until = Date.now() + 1500;
    let looks = 0;
    while (Date.now() < until) {
      probe.push('/-/heartbeat', {});
      const f = await probe.request('/-/find', { namespace: 'b' });
      assert.deepEqual(f, { status: 200, data: { host: HOST, port: b.meshPort } }, `look ${looks}: b still registered`);
      looks++;
      await sleep(100);
    }
    assert.ok(looks >= 5);
    assert.equal(await b.metric('micro_sidecar_registry_connects_total'), 1, 'never evicted and re-registered');

    // SIGTERM: the sidecar leaves the Node registry
    await b.proc.stop();
    assert.equal(b.proc.exitCode, 0);
    await waitFor(
      async () => {
        probe.push('/-/heartbeat', {});
        return !('data' in (await probe.request('/-/find', { namespace: 'b' })));
      },
      { timeoutMs: 2000, message: 'b is gone from the Node registry' },
    );
    assert.deepEqual(await probe.request('/-/find', { namespace: 'a' }), { status: 200, data: { host: HOST, port: a.meshPort } });
  });

  test('our sidecar re-registers with a restarted Node Registry', async (t) => {
    const nreg = await m.startNodeRegistry(t);
    const echo = await m.startEcho(t, { name: 'echo-b' });
    const b = await m.startSidecar(t, { ns: 'b', registryPort: nreg.port, appUrl: echo.url, routes: ['*'] });
    await nreg.proc.stop();
    await waitFor(async () => (await b.metric('micro_sidecar_registry_connected')) === 0, { timeoutMs: 3000, message: 'b sees the registry gone' });
    const nreg2 = await m.startNodeRegistry(t, { port: nreg.port });
    await waitFor(async () => (await b.metric('micro_sidecar_registry_connected')) === 1, { timeoutMs: 3000, message: 'b registered again' });
    const node = await nodeApp(t, 'nodec', nreg2.port);
    assert.deepEqual(await node.get('b'), { ok: true, key: b.key });
    const r = await node.call('b', '/echo', { again: 1 });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.data.again, 1);
  });
});
