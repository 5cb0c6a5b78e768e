'use strict';
// micro-sidecar end to end, the happy paths: discovery through the registry, the
// correlation id for every payload kind, the probes (local API, mesh port, and
// /-/health over the mesh), push, the routes API, the body form of /v1/call with a
// namespace containing "/", a call to the sidecar's own namespace, and 1,000 calls
// in flight at once. Real processes on 127.0.0.1, fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/sidecar-core.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST, UUID_RE } = m;
const { test, waitFor, httpJson, rawPeer } = h;

/** registry + provider b (echo behind a sidecar, route *) + consumer a. */
async function abMesh(t, extra = {}) {
  const mesh = await m.startMesh(t, {
    providers: [{ ns: 'b', echoName: 'echo-b', ...(extra.provider || {}) }],
    consumers: [{ ns: 'a', ...(extra.consumer || {}) }],
    sidecar: extra.sidecar,
  });
  return { ...mesh, a: mesh.consumers[0], b: mesh.providers[0].sidecar, echo: mesh.providers[0].echo };
}

describe('micro-sidecar: core', { skip: m.skipReason() }, () => {
  test('discovery end to end: a calls namespace b through the registry', async (t) => {
    const { registry, a, b, echo } = await abMesh(t);
    const listed = await m.namespaces(registry);
    assert.deepEqual(listed.b, [b.key]);
    assert.deepEqual(listed.a, [a.key]);

    const r = await a.call('b', '/echo', { hello: 'world', n: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.body.hello, 'world');
    assert.equal(r.body.n, 1);
    assert.match(r.body._correlationId, UUID_RE);
    assert.deepEqual(Object.keys(r.body).sort(), ['_correlationId', 'hello', 'n']);
    assert.equal(r.headers['x-correlation-id'], r.body._correlationId);

    // the app saw the forwarded call: POST {app-url}/echo, with the caller's address
    const ins = await a.call('b', '/inspect', { x: 1 });
    assert.equal(ins.status, 200, ins.text);
    assert.equal(ins.body.name, 'echo-b');
    assert.equal(ins.body.url, '/inspect');
    assert.equal(ins.body.method, 'POST');
    assert.equal(ins.body.contentType, 'application/json');
    assert.equal(ins.body.caller, a.key);
    assert.equal(ins.body.correlationId, ins.body.body._correlationId);
    const stats = await echo.stats();
    assert.equal(stats.by_url['/echo'], 1);
    assert.equal(stats.by_url['/inspect'], 1);
    // both calls went over the mesh: the provider counted two inbound requests
    assert.equal(await b.metric('micro_sidecar_inbound_total'), 2);
    assert.equal(await a.metric('micro_sidecar_calls_ok_total'), 2);
  });

  test('app answers: JSON, text, empty body', async (t) => {
    const { a } = await abMesh(t);
    const text = await a.call('b', '/text', {});
    assert.equal(text.status, 200, text.text);
    assert.equal(text.body, 'hello from echo-b', '2xx non-JSON comes back as a JSON string');
    assert.equal(text.text, JSON.stringify('hello from echo-b'));
    const empty = await a.call('b', '/empty', {});
    assert.equal(empty.status, 200, empty.text);
    assert.equal(empty.text, 'null', 'an empty app answer is JSON null');
    const noContent = await a.call('b', '/status/204', {});
    assert.equal(noContent.status, 200, `app 204: ${noContent.text}`);
    assert.equal(noContent.text, 'null');
    const created = await a.call('b', '/status/201', {});
    assert.equal(created.status, 200, `app 201 with a JSON body: ${created.text}`);
    assert.deepEqual(created.body, { error: 'status 201 from echo-b' });
  });

  test('correlation id injected for every payload kind (exact shape the app receives)', async (t) => {
    const { a } = await abMesh(t);
    const cases = [
      { kind: 'object', body: { x: 1, y: [true] }, wrapped: (id) => ({ x: 1, y: [true], _correlationId: id }) },
      { kind: 'empty object', body: {}, wrapped: (id) => ({ _correlationId: id }) },
      { kind: 'array', body: [1, 'two', { three: 3 }], wrapped: (id) => ({ _correlationId: id, data: [1, 'two', { three: 3 }] }) },
      { kind: 'string', body: '"just text"', wrapped: (id) => ({ _correlationId: id, data: 'just text' }) },
      { kind: 'number', body: '42.5', wrapped: (id) => ({ _correlationId: id, data: 42.5 }) },
      { kind: 'boolean', body: 'false', wrapped: (id) => ({ _correlationId: id, data: false }) },
      { kind: 'null', body: 'null', wrapped: (id) => ({ _correlationId: id, data: null }) },
      // JS: {_correlationId, data: undefined} -> JSON.stringify leaves `data` out
      { kind: 'empty body', body: undefined, wrapped: (id) => ({ _correlationId: id }) },
    ];
    const seen = new Set();
    for (const c of cases) {
      const r = await a.call('b', '/inspect', c.body);
      assert.equal(r.status, 200, `${c.kind}: ${r.text}`);
      const id = r.body.correlationId;
      assert.match(String(id), UUID_RE, `${c.kind}: X-Correlation-Id the app got: ${id}`);
      assert.deepEqual(r.body.body, c.wrapped(id), `${c.kind}: body the app received`);
      assert.equal(r.headers['x-correlation-id'], id, `${c.kind}: X-Correlation-Id on the answer`);
      assert.ok(!seen.has(id), `${c.kind}: a fresh id per call`);
      seen.add(id);
    }
  });

  test('correlation id: kept when in the payload, X-Correlation-Id used when not', async (t) => {
    const { a } = await abMesh(t);
    // present in the payload: kept, body unchanged (and it beats the header)
    let r = await a.call('b', '/inspect', { _correlationId: 'mine-1', v: 2 }, { 'X-Correlation-Id': 'from-header' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { _correlationId: 'mine-1', v: 2 });
    assert.equal(r.body.correlationId, 'mine-1');
    assert.equal(r.headers['x-correlation-id'], 'mine-1');

    // header, object payload without one
    r = await a.call('b', '/inspect', { v: 3 }, { 'X-Correlation-Id': 'hdr-123' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { v: 3, _correlationId: 'hdr-123' });
    assert.equal(r.body.correlationId, 'hdr-123');
    assert.equal(r.headers['x-correlation-id'], 'hdr-123');

    // header, non-object payload
    r = await a.call('b', '/inspect', [1, 2], { 'X-Correlation-Id': 'hdr-456' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { _correlationId: 'hdr-456', data: [1, 2] });
    assert.equal(r.headers['x-correlation-id'], 'hdr-456');

    // header, empty body
    r = await a.call('b', '/inspect', undefined, { 'X-Correlation-Id': 'hdr-789' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { _correlationId: 'hdr-789' });

    // body form: the payload's id is kept, header used otherwise
    r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/inspect', data: { _correlationId: 'body-form-1' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.correlationId, 'body-form-1');
    assert.equal(r.headers['x-correlation-id'], 'body-form-1');
    r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/inspect', data: 'txt' }, { 'X-Correlation-Id': 'body-form-2' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { _correlationId: 'body-form-2', data: 'txt' });
    // an error answer carries it too
    r = await a.call('b', '/status/500', { _correlationId: 'err-cid' });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.headers['x-correlation-id'], 'err-cid');
  });

  for (const where of ['api', 'mesh']) {
    test(`/-/health, /-/ready and /metrics over HTTP on the ${where === 'api' ? 'local API' : 'mesh port'}`, async (t) => {
      const { a, b } = await abMesh(t);
      const call = await a.call('b', '/echo', {});
      assert.equal(call.status, 200, call.text);
      const base = a[where];
      const health = await httpJson('GET', `${base}/-/health`);
      assert.equal(health.status, 200, `${where} /-/health: ${health.text}`);
      assert.equal(health.headers['content-type'], 'application/json');
      assert.equal(health.body.status, 'ok', `${where} GET /-/health body: ${health.text}`);
      assert.equal(health.body.registry, true, `${where} /-/health body: ${health.text}`);
      assert.equal(typeof health.body.uptime, 'number', `${where} /-/health body: ${health.text}`);
      assert.ok(health.body.uptime >= 0, `${where}: ${health.text}`);
      assert.deepEqual(health.body.namespaces, ['b'], `${where} /-/health body: ${health.text}`);
      assert.deepEqual(Object.keys(health.body).sort(), ['namespaces', 'registry', 'registryAddress', 'status', 'uptime'], `${where}: ${health.text}`);

      const ready = await httpJson('GET', `${base}/-/ready`);
      assert.equal(ready.status, 200, `${where} /-/ready: ${ready.text}`);

      const metrics = await httpJson('GET', `${base}/metrics`);
      assert.equal(metrics.status, 200, `${where} /metrics`);
      assert.match(metrics.headers['content-type'], /^text\/plain/);
      assert.equal(m.metricValue(metrics.text, 'micro_sidecar_ready'), 1, `${where} micro_sidecar_ready`);
      assert.equal(m.metricValue(metrics.text, 'micro_sidecar_registry_connected'), 1);
      assert.ok(m.metricValue(metrics.text, 'micro_sidecar_calls_total') >= 1);

      // the provider has not called anyone: no namespaces cached
      const hb = await httpJson('GET', `${b[where]}/-/health`);
      assert.equal(hb.status, 200, hb.text);
      assert.equal(hb.body.status, 'ok', `${where} GET /-/health on b: ${hb.text}`);
      assert.deepEqual(hb.body.namespaces, [], hb.text);
    });
  }

  test('/-/health over the mesh (a raw peer asks the sidecar\'s mesh port)', async (t) => {
    const { a, b, echo } = await abMesh(t);
    assert.equal((await a.call('b', '/echo', { z: 1 })).status, 200);
    const peerPort = await h.freePort();
    for (const [sc, nss] of [[a, ['b']], [b, []]]) {
      const p = rawPeer(HOST, sc.meshPort, [HOST, peerPort, 'probe'], { t });
      await p.ready();
      const r = await p.request('/-/health', {});
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.data.status, 'ok', JSON.stringify(r));
      assert.equal(r.data.registry, true, JSON.stringify(r));
      assert.equal(typeof r.data.uptime, 'number', JSON.stringify(r));
      assert.deepEqual(r.data.namespaces, nss, JSON.stringify(r));
      assert.deepEqual(Object.keys(r.data).sort(), ['namespaces', 'registry', 'registryAddress', 'status', 'uptime']);
      await p.close();
    }
    assert.equal((await echo.stats()).by_url['/-/health'], undefined, 'the sidecar answered /-/health itself, not the app');
  });

  test('a raw peer calls the provider sidecar directly; unknown url -> 404 naming it', async (t) => {
    const { b, echo } = await abMesh(t, { provider: { routes: ['/echo'] } });
    const p = rawPeer(HOST, b.meshPort, [HOST, await h.freePort(), 'raw'], { t });
    await p.ready();
    const ok = await p.request('/echo', { _correlationId: 'raw-1', q: 'x' });
    assert.deepEqual(ok, { status: 200, data: { _correlationId: 'raw-1', q: 'x' } });
    const missing = await p.request('/nope', { _correlationId: 'raw-2' });
    assert.equal(missing.status, 404, JSON.stringify(missing));
    assert.equal(missing.data, null, JSON.stringify(missing));
    assert.match(String(missing.message), /\/nope/);
    const stats = await echo.stats();
    assert.equal(stats.by_url['/nope'], undefined, 'the app never saw the unregistered url');
  });

  test('push: POST /v1/push/b/echo -> 202 and the app receives it', async (t) => {
    const { a, echo } = await abMesh(t);
    const r = await a.push('b', '/echo', { fire: 'forget' });
    assert.equal(r.status, 202, r.text);
    await waitFor(async () => (await echo.stats()).by_url['/echo'] === 1, { timeoutMs: 5000, message: 'echo saw one /echo' });
    // the push carried a correlation id to the app
    const r2 = await a.push('b', '/inspect', [1]);
    assert.equal(r2.status, 202, r2.text);
    await waitFor(async () => (await echo.stats()).by_url['/inspect'] === 1, { timeoutMs: 5000, message: 'echo saw one /inspect' });
    assert.equal(await a.metric('micro_sidecar_pushes_total'), 2);
  });

  test('routes API: 201, 200, 409, GET, DELETE 204/404; unregistered url -> 404 passed back', async (t) => {
    const { a, b, echo } = await abMesh(t, { provider: { routes: [] } });
    // nothing registered on b yet: the call is answered 404 by b, passed back by a
    let r = await a.call('b', '/echo', { x: 1 });
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.status, 404, r.text);
    assert.equal(typeof r.body.error, 'string', r.text);

    r = await httpJson('GET', `${b.api}/v1/routes`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, []);

    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo' });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body, { url: '/echo', target: `${echo.url}/echo` });
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo' });
    assert.equal(r.status, 200, `same route again: ${r.text}`);
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', target: `${echo.url}/echo` });
    assert.equal(r.status, 200, `same route, target spelled out: ${r.text}`);
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', target: `${echo.url}/inspect` });
    assert.equal(r.status, 409, `other target: ${r.text}`);
    assert.equal(r.body.status, 409);
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/charge', target: `${echo.url}/inspect` });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body, { url: '/charge', target: `${echo.url}/inspect` });

    r = await httpJson('GET', `${b.api}/v1/routes`);
    assert.equal(r.status, 200);
    assert.deepEqual(
      [...r.body].sort((x, y) => x.url.localeCompare(y.url)),
      [
        { url: '/charge', target: `${echo.url}/inspect` },
        { url: '/echo', target: `${echo.url}/echo` },
      ],
    );

    // the routes serve now: /charge goes to the target (/inspect), not {app-url}/charge
    r = await a.call('b', '/echo', { x: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.x, 1);
    r = await a.call('b', '/charge', { amount: 100 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.url, '/inspect');
    assert.equal(r.body.body.amount, 100);

    r = await httpJson('DELETE', `${b.api}/v1/routes/echo`);
    assert.equal(r.status, 204, r.text);
    assert.equal(r.text, '');
    r = await httpJson('DELETE', `${b.api}/v1/routes/echo`);
    assert.equal(r.status, 404, `DELETE again: ${r.text}`);
    r = await httpJson('DELETE', `${b.api}/v1/routes/never-was`);
    assert.equal(r.status, 404, r.text);
    r = await httpJson('GET', `${b.api}/v1/routes`);
    assert.deepEqual(r.body, [{ url: '/charge', target: `${echo.url}/inspect` }]);

    // a url with several segments, and the catch-all "*"
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/pay/refund' });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body, { url: '/pay/refund', target: `${echo.url}/pay/refund` });
    r = await httpJson('DELETE', `${b.api}/v1/routes/pay/refund`);
    assert.equal(r.status, 204, `DELETE /v1/routes/pay/refund: ${r.text}`);
    r = await httpJson('POST', `${b.api}/v1/routes`, { url: '*' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.url, '*');
    r = await a.call('b', '/echo/anything', { star: 1 });
    assert.equal(r.status, 200, `served through "*": ${r.text}`);
    assert.equal(r.body.star, 1);
    r = await httpJson('DELETE', `${b.api}/v1/routes/*`);
    assert.equal(r.status, 204, `DELETE /v1/routes/*: ${r.text}`);
    r = await httpJson('GET', `${b.api}/v1/routes`);
    assert.deepEqual(r.body, [{ url: '/charge', target: `${echo.url}/inspect` }]);

    // deleted: b answers 404 again
    r = await a.call('b', '/echo', { x: 2 });
    assert.equal(r.status, 404, r.text);
    assert.equal((await echo.stats()).by_url['/echo'], 1, 'the app saw only the call made while the route existed');
  });

  test('POST /v1/call body form, with a namespace containing "/"', async (t) => {
    const { registry, a, b } = await abMesh(t, { provider: { ns: 'a/b' } });
    const listed = await m.namespaces(registry);
    assert.deepEqual(listed['a/b'], [b.key]);
    let r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'a/b', url: '/echo', data: { deep: true } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.deep, true);
    assert.match(r.body._correlationId, UUID_RE);
    assert.equal(r.headers['x-correlation-id'], r.body._correlationId);
    // without data: the app gets just the correlation id
    r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'a/b', url: '/inspect' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.body, { _correlationId: r.body.correlationId });
    // timeout and retries in the body form are honoured (small timeout -> 504)
    r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'a/b', url: '/slow/2000', data: {}, timeout: 200, retries: 0 });
    assert.equal(r.status, 504, r.text);
    // path form cannot address a/b: /v1/call/a/b/echo means namespace "a", url "/b/echo"
    r = await a.call('a', '/b/echo', {});
    assert.notEqual(r.status, 200, `namespace "a" has no route /b/echo: ${r.text}`);
  });

  test('a call to its own namespace is served by its own app', async (t) => {
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t, { name: 'self-app' });
    const s = await m.startSidecar(t, { ns: 'self', registryPort: registry.port, appUrl: echo.url, routes: ['*'] });
    const r = await s.call('self', '/inspect', { me: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.name, 'self-app');
    assert.equal(r.body.caller, s.key);
    assert.equal(r.body.body.me, 1);
    assert.equal(await s.metric('micro_sidecar_self_calls_total'), 1);
  });

  test('1,000 calls in flight at once all succeed', async (t) => {
    const { a, echo } = await abMesh(t, { provider: {} });
    const N = 1000;
    const agent = m.agentFor(N + 10);
    t.after(() => agent.destroy());
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => m.postWithAgent(agent, `${a.api}/v1/call/b/slow/300`, { i }, {}, 30000).catch((e) => ({ status: 'error', text: e.message }))),
    );
    const elapsed = Date.now() - started;
    const bad = results.map((r, i) => [i, r]).filter(([i, r]) => r.status !== 200 || !r.body || r.body.i !== i);
    assert.equal(bad.length, 0, `${bad.length} of ${N} failed; first: ${JSON.stringify(bad.slice(0, 3).map(([i, r]) => [i, r.status, String(r.text).slice(0, 200)]))}`);
    const ids = new Set(results.map((r) => r.body._correlationId));
    assert.equal(ids.size, N, 'every call has its own correlation id');
    // they really were in flight together: 1,000 x 300 ms serially would take 300 s
    assert.ok(elapsed < 20000, `took ${elapsed} ms`);
    const stats = await echo.stats();
    assert.equal(stats.by_url['/slow/300'], N);
    assert.equal(await a.metric('micro_sidecar_calls_ok_total'), N);
  });
});
