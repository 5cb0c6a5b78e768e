'use strict';
// Proves the reference-compatible peers in micro.js among themselves, so that the
// integration tests can trust them as a stand-in for @hile/micro 1.0.5.
// Run: cd tests/node && node --test test/

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const { Registry, Application, Server, parseAddressKey, parseHandshakePath } = require('../micro');
const { test, waitFor, freePort, rawPeer, spawnPeer, httpJson, sleep } = require('../lib/harness');

const HOST = '127.0.0.1';

/** Per-test topology; everything is torn down in reverse order in t.after. */
function topology(t) {
  const stops = [];
  t.after(async () => {
    for (const stop of stops.reverse()) await stop();
  });
  return {
    async registry(props = {}) {
      const reg = new Registry({ advertiseHost: HOST, ...props });
      stops.push(await reg.listen(0));
      return reg;
    },
    async app(reg, namespace, props = {}) {
      const app = new Application({
        namespace,
        registry: { host: HOST, port: reg.port },
        advertiseHost: HOST,
        ...props,
      });
      stops.push(await app.listen(0));
      return app;
    },
    onStop(fn) {
      stops.push(fn);
    },
  };
}

/**
 * A raw peer pretending to be an instance `host:fakePort` of `ns`: registered with
 * the registry and, since connections are symmetric and reused per host:port,
 * already connected to `app` — so app.call(ns, ...) lands on this raw socket and
 * we see the exact frames.
 */
async function rawInstance(t, reg, app, ns) {
  const fakePort = await freePort();
  const segs = [HOST, fakePort, ns];
  const toRegistry = rawPeer(HOST, reg.port, segs, { t });
  await toRegistry.ready();
  const toApp = rawPeer(HOST, app.port, segs, { t });
  await toApp.ready();
  await waitFor(() => app.clients.has(`${HOST}:${fakePort}`));
  await waitFor(() => reg.namespaces.get(ns)?.has(`${HOST}:${fakePort}`));
  return { toRegistry, toApp, key: `${HOST}:${fakePort}`, port: fakePort };
}

describe('helpers', () => {
  test('parseAddressKey splits at the last colon and checks the port', () => {
    assert.deepEqual(parseAddressKey('10.0.0.1:9100'), { host: '10.0.0.1', port: 9100 });
    assert.deepEqual(parseAddressKey('[::1]:9100'), { host: '::1', port: 9100 });
    assert.deepEqual(parseAddressKey('::1:9100'), { host: '::1', port: 9100 });
    for (const bad of ['h:0', 'h:65536', 'h:x', ':80', 'h', 'h:', 'h:80x', 'h:-1']) {
      assert.equal(parseAddressKey(bad), undefined, bad);
    }
  });

  test('handshake path parsing', () => {
    assert.deepEqual(parseHandshakePath('/10.1.2.3/9100/a/b'), { host: '10.1.2.3', port: '9100', extras: ['a', 'b'] });
    assert.deepEqual(parseHandshakePath('/h/1/ns/?token=x'), { host: 'h', port: '1', extras: ['ns'] });
    assert.deepEqual(parseHandshakePath('/h/1//'), { host: 'h', port: '1', extras: [''] });
    for (const bad of ['/', '', '/onlyhost', '/h/1', '/h/1/', '/h//ns', '//1/ns']) {
      assert.equal(parseHandshakePath(bad), undefined, bad);
    }
  });
});

describe('frames', () => {
  test('requests, responses, errors, unknown url, no data, garbage, ids', async (t) => {
    const server = new Server('svc', { advertiseHost: HOST });
    const stop = await server.listen(0);
    t.after(stop);
    server.register('/echo', async ({ data }) => data);
    server.register('/nothing', async () => undefined);
    server.register('/teapot', async () => {
      const e = new Error('short and stout');
      e.status = 418;
      throw e;
    });
    server.register('/boom', async () => {
      throw new Error('boom');
    });
    const peer = rawPeer(HOST, server.port, [HOST, 1234, 'raw'], { t });
    await peer.ready();

    const r0 = peer.request('/echo', { a: [1, 2] });
    assert.equal(r0.id, 0);
    assert.deepEqual(await r0, { status: 200, data: { a: [1, 2] } });
    // exact bytes: key order id,mode,twoway,data and no "stream"
    assert.equal(peer.rawFrames[0], '{"id":0,"mode":1,"twoway":false,"data":{"status":200,"data":{"a":[1,2]}}}');

    assert.deepEqual(await peer.request('/nothing', {}), { status: 200 });
    assert.equal(peer.rawFrames[1], '{"id":1,"mode":1,"twoway":false,"data":{"status":200}}');

    assert.deepEqual(await peer.request('/nope', 1), { status: 500, data: null, message: '/nope' });
    assert.equal(peer.rawFrames[2], '{"id":2,"mode":1,"twoway":false,"data":{"status":500,"data":null,"message":"/nope"}}');

    assert.deepEqual(await peer.request('/teapot', null), { status: 418, data: null, message: 'short and stout' });
    assert.deepEqual(await peer.request('/boom', null), { status: 500, data: null, message: 'boom' });

    // garbage is ignored, not answered, and the connection keeps working
    peer.sendRaw('this is not json');
    peer.sendRaw('{"id":');
    assert.deepEqual(await peer.request('/echo', 'still here'), { status: 200, data: 'still here' });
    assert.equal(server.stats.badFrames, 2);
    assert.equal(peer.frames.length, 6);

    // unknown keys are ignored; streaming requests get an error, not silence
    peer.sendRaw(JSON.stringify({ id: 100, twoway: true, data: { url: '/echo', data: 7 }, mode: 0, extra: 'x' }));
    peer.sendRaw(JSON.stringify({ id: 101, twoway: true, data: { url: '/echo', data: 7 }, mode: 0, stream: true }));
    await waitFor(() => peer.frames.length === 8);
    const byId = (id) => peer.frames.find((f) => f.id === id);
    assert.deepEqual(byId(100), { id: 100, mode: 1, twoway: false, data: { status: 200, data: 7 } });
    assert.notEqual(byId(101).data.status, 200);

    // a push is never answered
    peer.push('/echo', 'pushed');
    await sleep(50);
    assert.deepEqual(await peer.request('/echo', 'after push'), { status: 200, data: 'after push' });
    assert.equal(peer.frames.length, 9);
  });

  test('outbound frames: key order, ids from 0 per direction, ABORT takes an id', async (t) => {
    const server = new Server('svc', { advertiseHost: HOST });
    t.after(await server.listen(0));
    const peer = rawPeer(HOST, server.port, [HOST, 4321, 'raw'], { t });
    await peer.ready();
    peer.handle('/x', (d) => ({ got: d }));
    const client = await waitFor(() => server.clients.get(`${HOST}:4321`));

    // our side sends a request first (id 0 of the raw side), server ids start at 0 too
    assert.deepEqual(await peer.request('/unknown', null), { status: 500, data: null, message: '/unknown' });
    assert.deepEqual(await client.request('/x', { n: 1 }).response(), { got: { n: 1 } });
    client.push('/x', 2);
    const slow = client.request('/never', { n: 3 }, 100); // raw peer never answers /never
    await assert.rejects(slow.response(), (e) => e.status === 'ECONNABORTED' && e.message === 'Abort');
    await waitFor(() => peer.rawFrames.length >= 5);
    assert.deepEqual(peer.rawFrames.slice(1), [
      '{"id":0,"twoway":true,"data":{"url":"/x","data":{"n":1}},"mode":0}',
      '{"id":1,"twoway":false,"data":{"url":"/x","data":2},"mode":0}',
      '{"id":2,"twoway":true,"data":{"url":"/never","data":{"n":3}},"mode":0}',
      '{"id":3,"twoway":false,"data":2,"mode":2}',
    ]);
    // a late response for the aborted id is dropped without harm
    peer.sendRaw('{"id":2,"mode":1,"twoway":false,"data":{"status":200,"data":1}}');
    assert.deepEqual(await client.request('/x', 9).response(), { got: 9 });
  });

  test('pending requests are rejected when the socket closes', async (t) => {
    const server = new Server('svc', { advertiseHost: HOST });
    t.after(await server.listen(0));
    const peer = rawPeer(HOST, server.port, [HOST, 4322, 'raw'], { t });
    await peer.ready();
    const client = await waitFor(() => server.clients.get(`${HOST}:4322`));
    const r = client.request('/never', null, 10000);
    await waitFor(() => peer.frames.length === 1);
    peer.close();
    await assert.rejects(r.response(), (e) => e.status !== 200);
    await waitFor(() => !server.clients.has(`${HOST}:4322`));
  });

  test('malformed handshake paths are closed at once', async (t) => {
    const server = new Server('svc', { advertiseHost: HOST });
    t.after(await server.listen(0));
    for (const p of ['/', '/onlyhost', '/h/1', '/h//ns', '//1/ns']) {
      const peer = rawPeer(HOST, server.port, p, { t });
      const info = await peer.waitClosed(3000);
      assert.equal(info.code, 1005, p);
    }
    assert.equal(server.clients.size, 0);
    // a query string is ignored
    const ok = rawPeer(HOST, server.port, `/${HOST}/77/ns`, { t, query: { token: 'abc' } });
    await ok.ready();
    await waitFor(() => server.clients.get(`${HOST}:77`)?.extras[0] === 'ns');
  });
});

describe('registry', () => {
  test('membership, find, exclude, no-data, removal on close', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const a = rawPeer(HOST, reg.port, [HOST, 9101, 'pay/ments'], { t });
    const b = rawPeer(HOST, reg.port, [HOST, 9102, 'pay/ments'], { t });
    const c = rawPeer(HOST, reg.port, [HOST, 9103, 'other'], { t });
    await Promise.all([a.ready(), b.ready(), c.ready()]);
    await waitFor(() => reg.namespaces.get('pay/ments')?.size === 2);
    assert.deepEqual(reg.snapshot(), { 'pay/ments': [`${HOST}:9101`, `${HOST}:9102`], other: [`${HOST}:9103`] });

    const seen = new Set();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const r = await c.request('/-/find', { namespace: 'pay/ments' });
      assert.equal(r.status, 200);
      assert.equal(r.data.host, HOST);
      seen.add(r.data.port);
    }
    assert.deepEqual([...seen].sort(), [9101, 9102]);

    for (let i = 0; i < 20; i++) {
      const r = await c.request('/-/find', { namespace: 'pay/ments', exclude: [`${HOST}:9101`] });
      assert.deepEqual(r, { status: 200, data: { host: HOST, port: 9102 } });
    }
    const none = c.request('/-/find', { namespace: 'pay/ments', exclude: [`${HOST}:9101`, `${HOST}:9102`] });
    assert.deepEqual(await none, { status: 200 });
    assert.equal(c.rawFrames.at(-1), `{"id":${none.id},"mode":1,"twoway":false,"data":{"status":200}}`);
    assert.deepEqual(await c.request('/-/find', { namespace: 'nobody' }), { status: 200 });
    assert.deepEqual(await c.request('/-/heartbeat', {}), { status: 200 });

    a.close();
    await waitFor(() => reg.namespaces.get('pay/ments')?.size === 1);
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await c.request('/-/find', { namespace: 'pay/ments' }), { status: 200, data: { host: HOST, port: 9102 } });
    }
    b.close();
    await waitFor(() => !reg.namespaces.has('pay/ments'));
  });

  test('keys that do not parse are never found', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const bad = rawPeer(HOST, reg.port, [HOST, 'notaport', 'ns'], { t });
    const zero = rawPeer(HOST, reg.port, [HOST, '0', 'ns'], { t });
    const asker = rawPeer(HOST, reg.port, [HOST, 9200, 'asker'], { t });
    await Promise.all([bad.ready(), zero.ready(), asker.ready()]);
    await waitFor(() => reg.namespaces.get('ns')?.size === 2);
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await asker.request('/-/find', { namespace: 'ns' }), { status: 200 });
    }
  });

  test('a second connection for the same host:port replaces the first', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const first = rawPeer(HOST, reg.port, [HOST, 9301, 'dup'], { t });
    await first.ready();
    await waitFor(() => reg.namespaces.get('dup')?.size === 1);
    const firstClient = reg.members.get(`${HOST}:9301`).client;
    const second = rawPeer(HOST, reg.port, [HOST, 9301, 'dup'], { t });
    await second.ready();
    await waitFor(() => reg.members.get(`${HOST}:9301`).client !== firstClient);
    first.close();
    await first.waitClosed();
    await sleep(50);
    assert.deepEqual(reg.snapshot(), { dup: [`${HOST}:9301`] });
    second.close();
    await waitFor(() => !reg.namespaces.has('dup'));
  });

  test('eviction after the heartbeat timeout; heartbeating instances stay', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry({ heartbeatTimeoutMs: 400, sweepIntervalMs: 50 });
    const app = await topo.app(reg, 'alive', { heartbeatIntervalMs: 100 });
    const silent = rawPeer(HOST, reg.port, [HOST, 9401, 'silent'], { t });
    const pusher = rawPeer(HOST, reg.port, [HOST, 9402, 'pusher'], { t });
    await Promise.all([silent.ready(), pusher.ready()]);
    const beat = setInterval(() => pusher.push('/-/heartbeat', {}), 100);
    t.after(() => clearInterval(beat));
    const started = Date.now();
    const info = await silent.waitClosed(3000);
    const took = Date.now() - started;
    assert.equal(info.code, 1005); // closed without a close code, like the reference
    assert.ok(took >= 300, `evicted after ${took} ms, before the 400 ms timeout`);
    await waitFor(() => !reg.namespaces.has('silent'));
    await sleep(600);
    assert.ok(pusher.isOpen);
    assert.deepEqual(reg.snapshot(), { alive: [`${HOST}:${app.port}`], pusher: [`${HOST}:9402`] });
    assert.equal(reg.stats.evictions, 1);
  });
});

describe('application', () => {
  test('two applications discover and call each other over one connection', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const a = await topo.app(reg, 'alpha');
    const b = await topo.app(reg, 'beta/x');
    a.register('/hello', async ({ data }) => ({ from: 'alpha', got: data }));
    b.register('/hello', async ({ data }) => ({ from: 'beta', got: data }));

    const r1 = await a.call('beta/x', '/hello', { n: 1 });
    assert.equal(r1.from, 'beta');
    assert.equal(r1.got.n, 1);
    assert.match(r1.got._correlationId, /^[0-9a-f-]{36}$/);
    const r2 = await b.call('alpha', '/hello', 'hi');
    assert.equal(r2.from, 'alpha');
    assert.equal(r2.got.data, 'hi');
    // b reused the connection a opened (one connection per host:port pair)
    assert.equal(b.stats.connectionsOut, 1); // the registry only
    assert.equal(a.stats.connectionsOut, 2); // registry + b
    assert.deepEqual([...a.clients.keys()].sort(), [`${HOST}:${b.port}`, `${HOST}:${reg.port}`].sort());

    const health = await a.call('beta/x', '/-/health', null);
    assert.equal(health.status, 'ok');
    assert.equal(health.registry, true);
    assert.equal(typeof health.uptime, 'number');
    assert.deepEqual(health.namespaces, ['alpha']);

    // concurrent gets share one /-/find
    const c = await topo.app(reg, 'gamma');
    const before = reg.stats.finds;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => c.call('alpha', '/hello', i)));
    assert.equal(results.length, 10);
    assert.equal(reg.stats.finds - before, 1);
  });

  test('timeout sends ABORT and the provider handler sees it', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const provider = await topo.app(reg, 'slow');
    const consumer = await topo.app(reg, 'consumer');
    let aborted = 0;
    let finished = 0;
    provider.register('/slow', ({ signal }) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          finished++;
          resolve('late');
        }, 2000);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          aborted++;
          reject(signal.reason);
        });
      }),
    );
    const started = Date.now();
    await assert.rejects(consumer.call('slow', '/slow', {}, 150, 0), (e) => e.status === 'ECONNABORTED' && e.message === 'Abort');
    assert.ok(Date.now() - started < 1500);
    await waitFor(() => aborted === 1);
    assert.equal(provider.stats.abortsIn, 1);
    assert.equal(finished, 0);

    // the same seen on the wire, with a raw instance as the provider
    const raw = await rawInstance(t, reg, consumer, 'rawslow');
    await assert.rejects(consumer.call('rawslow', '/slow', { ms: 1 }, 100, 0), /Abort/);
    await waitFor(() => raw.toApp.frames.length === 2);
    const [req, abort] = raw.toApp.frames;
    assert.equal(req.mode, 0);
    assert.equal(req.twoway, true);
    assert.equal(req.data.url, '/slow');
    assert.deepEqual(abort, { id: req.id + 1, twoway: false, data: req.id, mode: 2 });
    // with retries, each attempt is aborted and retried with the same correlation id
    await assert.rejects(consumer.call('rawslow', '/slow', { ms: 1 }, 100, 1), /Abort/);
    await waitFor(() => raw.toApp.frames.length === 6);
    const reqs = raw.toApp.frames.slice(2).filter((f) => f.mode === 0);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].data.data._correlationId, reqs[1].data.data._correlationId);
  });

  test('correlation id injected for object/array/null/number/string, kept when present', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const app = await topo.app(reg, 'caller');
    const raw = await rawInstance(t, reg, app, 'cid');
    raw.toApp.handle('/cid', (d) => d);
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

    const obj = { value: 1 };
    const r1 = await app.call('cid', '/cid', obj);
    assert.deepEqual(Object.keys(r1), ['value', '_correlationId']);
    assert.match(r1._correlationId, uuid);
    assert.deepEqual(obj, { value: 1 }, 'the caller object is not mutated');

    for (const payload of [[1, 2], null, 42, 'str', 0, false, undefined]) {
      const r = await app.call('cid', '/cid', payload);
      assert.match(r._correlationId, uuid);
      assert.deepEqual(Object.keys(r).sort(), payload === undefined ? ['_correlationId'] : ['_correlationId', 'data']);
      if (payload !== undefined) assert.deepEqual(r.data, payload);
    }
    const kept = await app.call('cid', '/cid', { _correlationId: 'trace-1', x: 2 });
    assert.deepEqual(kept, { _correlationId: 'trace-1', x: 2 });
    // exact wire for a wrapped payload: {"_correlationId":..,"data":..}
    const last = raw.toApp.rawFrames.find((s) => s.includes('"data":42'));
    assert.match(last, /^\{"id":\d+,"twoway":true,"data":\{"url":"\/cid","data":\{"_correlationId":"[0-9a-f-]{36}","data":42\}\},"mode":0\}$/);
  });

  test('breaker: a failing provider is excluded and the other one is chosen', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const bad = await topo.app(reg, 'svc');
    const good = await topo.app(reg, 'svc');
    const consumer = await topo.app(reg, 'consumer');
    bad.register('/echo', async () => {
      const e = new Error('boom');
      e.status = 500;
      throw e;
    });
    good.register('/echo', async ({ data }) => ({ port: good.port, data }));
    const badKey = `${HOST}:${bad.port}`;

    // watch the /-/find frames the consumer sends to the registry
    const finds = [];
    const origDispatch = reg.dispatch.bind(reg);
    reg.dispatch = async (url, data, ctx) => {
      if (url === '/-/find' && ctx.client && ctx.client.key === `${HOST}:${consumer.port}`) finds.push(data);
      return origDispatch(url, data, ctx);
    };

    // make the failing one the cached choice, so the first call lands on it
    const first = await consumer.get('svc', [`${HOST}:${good.port}`]);
    assert.equal(first.key, badKey);
    finds.length = 0;
    for (let i = 0; i < 10; i++) {
      const r = await consumer.call('svc', '/echo', i, 2000, 1);
      assert.equal(r.port, good.port);
    }
    // tried once, failed, excluded; the retry's find carried the exclusion
    assert.equal(bad.stats.served['/echo'], 1);
    assert.deepEqual(finds, [{ namespace: 'svc', exclude: [badKey] }]);
    assert.deepEqual([...consumer.circuitBreakers.get('svc').keys()], [badKey]);

    // failure without retries surfaces the provider's status and message
    await assert.rejects(consumer.call('svc', '/fail', null, 2000, 0), (e) => e.status === 500);
  });

  test('breaker: all peers excluded -> reset, single provider is used again; cooldown expires', async (t) => {
    const topo = topology(t);
    const reg = await topo.registry();
    const only = await topo.app(reg, 'solo');
    const consumer = await topo.app(reg, 'consumer', { breakerCooldownMs: 300 });
    let fail = true;
    only.register('/x', async () => {
      if (fail) throw Object.assign(new Error('boom'), { status: 503 });
      return 'ok';
    });
    await assert.rejects(consumer.call('solo', '/x', null, 2000, 0), (e) => e.status === 503 && e.message === 'boom');
    assert.deepEqual(consumer.getActiveExcludes('solo'), [`${HOST}:${only.port}`]);
    fail = false;
    // excluded, but nothing else exists: the cached (still open) peer is used
    assert.equal(await consumer.call('solo', '/x', null, 2000, 0), 'ok');
    assert.deepEqual(consumer.getActiveExcludes('solo'), []);
    // with a fresh cache: exclusion leaves nothing -> breaker reset -> found again
    fail = true;
    await assert.rejects(consumer.call('solo', '/x', null, 2000, 0));
    consumer.namespaces.delete('solo');
    fail = false;
    assert.equal(await consumer.call('solo', '/x', null, 2000, 0), 'ok');
    // cooldown: an exclusion older than breakerCooldownMs is dropped
    consumer.recordFailure('solo', HOST, only.port);
    assert.equal(consumer.getActiveExcludes('solo').length, 1);
    await sleep(350);
    assert.deepEqual(consumer.getActiveExcludes('solo'), []);
    assert.equal(consumer.circuitBreakers.has('solo'), false);
  });

  test('cache degradation, registry reconnect, eviction of a dead app', async (t) => {
    const topo = topology(t);
    const regPort = await freePort();
    let reg = new Registry({ advertiseHost: HOST });
    let stopReg = await reg.listen(regPort);
    topo.onStop(() => stopReg());
    const mk = async (ns) => {
      const app = new Application({ namespace: ns, registry: { host: HOST, port: regPort }, advertiseHost: HOST, reconnectIntervalMs: 100 });
      topo.onStop(await app.listen(0));
      return app;
    };
    const provider = await mk('prov');
    const consumer = await mk('cons');
    provider.register('/echo', async ({ data }) => data);
    assert.deepEqual(await consumer.call('prov', '/echo', { v: 1, _correlationId: 'k' }), { v: 1, _correlationId: 'k' });

    await stopReg();
    await waitFor(() => !consumer.registry && !provider.registry);
    const h = await consumer.dispatch('/-/health', {});
    assert.equal(h.registry, false);
    // registry down, cached peer still connected: calls keep working
    assert.deepEqual(await consumer.call('prov', '/echo', { v: 2, _correlationId: 'k2' }), { v: 2, _correlationId: 'k2' });
    // a namespace never seen before fails
    await assert.rejects(consumer.call('unknown', '/echo', 1, 500, 0));

    reg = new Registry({ advertiseHost: HOST });
    stopReg = await reg.listen(regPort);
    await waitFor(() => consumer.registry && provider.registry, { timeoutMs: 3000 });
    await waitFor(() => reg.namespaces.get('prov')?.size === 1 && reg.namespaces.get('cons')?.size === 1);
    assert.equal((await consumer.dispatch('/-/health', {})).registry, true);
  });

  test('listen fails when the registry is unreachable (reference rollback)', async () => {
    const port = await freePort();
    const app = new Application({ namespace: 'x', registry: { host: HOST, port }, advertiseHost: HOST });
    await assert.rejects(app.listen(0));
    assert.equal(app.wss, null);
  });
});

describe('peer.js processes', () => {
  test('registry + two apps over the control port: call, push, fail, abort, stats', async (t) => {
    const reg = await spawnPeer(['registry', '--port', '0'], { t, name: 'registry' });
    const registry = `${HOST}:${reg.info.port}`;
    const common = ['--registry', registry, '--advertise-host', HOST, '--serve-echo', '--control-port', '0', '--port', '0'];
    const a = await spawnPeer(['app', '--namespace', 'a', ...common], { t, name: 'app a' });
    const b = await spawnPeer(['app', '--namespace', 'b', ...common], { t, name: 'app b' });
    assert.equal(a.info.registryConnected, true);
    const ctl = (p, path, body) => httpJson(body ? 'POST' : 'GET', `http://${HOST}:${p.info.controlPort}${path}`, body);

    let r = await ctl(a, '/call', { namespace: 'b', url: '/echo', data: { x: 1 } });
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.data.x, 1);
    r = await ctl(b, '/call', { namespace: 'a', url: '/whoami', data: null });
    assert.deepEqual(r.body.data, { namespace: 'a', host: HOST, port: a.info.port });
    r = await ctl(a, '/call', { namespace: 'b', url: '/fail', data: null, retries: 0 });
    assert.deepEqual(r.body, { ok: false, status: 500, message: 'boom' });
    r = await ctl(a, '/call', { namespace: 'b', url: '/slow', data: { ms: 5000 }, timeout: 200, retries: 0 });
    assert.deepEqual(r.body, { ok: false, status: 'ECONNABORTED', message: 'Abort' });
    await waitFor(async () => (await ctl(b, '/stats')).body.slowAborted === 1);
    r = await ctl(a, '/push', { namespace: 'b', url: '/echo', data: 'p' });
    assert.deepEqual(r.body, { ok: true });
    await waitFor(async () => (await ctl(b, '/stats')).body.pushesReceived === 1);
    const stats = (await ctl(b, '/stats')).body;
    assert.equal(stats.registryConnected, true);
    assert.equal(stats.abortsReceived, 1);
    assert.equal(stats.served['/echo'], 2);

    const code = await a.proc.stop();
    assert.equal(code.code, 0);
  });
});
