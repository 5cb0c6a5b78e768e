'use strict';
// Integration tests of the C micro-registry (docs/PROTOCOL.md §2-§4 and §6,
// docs/API.md "The registry").
// Every test starts its own registry on a fresh free port on 127.0.0.1 and talks to
// it with raw WebSocket peers and plain HTTP. Skipped when the binary is not built.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/registry.test.js
// Env: MICRO_BUILD_DIR (default <repo>/build), MICRO_REGISTRY_BIN,
//      MICRO_REQUIRE_BINARIES=1 (fail instead of skip), MICRO_TEST_LOG_LEVEL.

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const { HOST, cSkipReason, startCRegistry, h } = require('./lib/registries');
const { test, waitFor, rawPeer, httpJson, sleep, spawnProc, registryBin } = h;

const skip = cSkipReason();

// -- helpers ---------------------------------------------------------------

async function namespaces(reg) {
  const r = await httpJson('GET', `${reg.http}/v1/namespaces`);
  assert.equal(r.status, 200, `GET /v1/namespaces -> ${r.status} ${r.text}`);
  assert.equal(typeof r.body, 'object', `GET /v1/namespaces body: ${r.text}`);
  const out = {};
  for (const [ns, keys] of Object.entries(r.body)) out[ns] = [...keys].sort();
  return out;
}

async function health(reg) {
  const r = await httpJson('GET', `${reg.http}/-/health`);
  assert.equal(r.status, 200);
  return r.body;
}

/** Prometheus text -> [{name, labels:{}, value}] (comments skipped). */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$/);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3]) {
      for (const part of m[3].match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) || []) {
        const eq = part.indexOf('=');
        labels[part.slice(0, eq)] = JSON.parse(part.slice(eq + 1));
      }
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

async function metrics(reg) {
  const r = await httpJson('GET', `${reg.http}/metrics`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  return { text: r.text, samples: parseMetrics(r.text) };
}

/** Sum of the samples whose name matches re (and whose labels include `labels`). */
function metricSum(samples, re, labels = {}) {
  const hits = samples.filter((s) => re.test(s.name) && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
}

/** An instance connection: raw peer at path /HOST/port/ns, open. */
async function instance(t, reg, port, ns, opts) {
  const p = rawPeer(HOST, reg.port, [HOST, port, ns], { t, ...opts });
  await p.ready();
  return p;
}

async function findMany(asker, ns, n, exclude) {
  const seen = new Map();
  for (let i = 0; i < n; i++) {
    const r = await asker.request('/-/find', exclude ? { namespace: ns, exclude } : { namespace: ns });
    assert.equal(r.status, 200, JSON.stringify(r));
    const key = 'data' in r ? `${r.data.host}:${r.data.port}` : '(none)';
    if ('data' in r) assert.equal(typeof r.data.port, 'number', 'port is a JSON number');
    seen.set(key, (seen.get(key) || 0) + 1);
  }
  return seen;
}

// -- tests -----------------------------------------------------------------

describe('micro-registry (C)', { skip }, () => {
  test('membership: GET /v1/namespaces lists instances per namespace', async (t) => {
    const reg = await startCRegistry(t);
    assert.deepEqual(await namespaces(reg), {});
    await instance(t, reg, 9101, 'payments');
    await instance(t, reg, 9102, 'payments');
    await instance(t, reg, 9103, 'a/b'); // a namespace may contain '/'
    await waitFor(async () => Object.keys(await namespaces(reg)).length === 2);
    assert.deepEqual(await namespaces(reg), {
      payments: [`${HOST}:9101`, `${HOST}:9102`],
      'a/b': [`${HOST}:9103`],
    });
  });

  test('find returns only members; unknown namespace -> {"status":200} without data', async (t) => {
    const reg = await startCRegistry(t);
    await instance(t, reg, 9201, 'svc');
    await instance(t, reg, 9202, 'svc');
    await instance(t, reg, 9203, 'other');
    const asker = await instance(t, reg, 9299, 'asker');
    const seen = await findMany(asker, 'svc', 60);
    for (const key of seen.keys()) assert.ok([`${HOST}:9201`, `${HOST}:9202`].includes(key), `found non-member ${key}`);
    const none = await asker.request('/-/find', { namespace: 'nobody' });
    assert.deepEqual(none, { status: 200 });
    assert.ok(!('data' in none), 'no "data" key at all (not null)');
  });

  test('both of two instances are chosen within 200 finds (random, not first)', async (t) => {
    const reg = await startCRegistry(t);
    await instance(t, reg, 9301, 'svc');
    await instance(t, reg, 9302, 'svc');
    const asker = await instance(t, reg, 9399, 'asker');
    const seen = new Set();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const r = await asker.request('/-/find', { namespace: 'svc' });
      seen.add(`${r.data.host}:${r.data.port}`);
    }
    assert.deepEqual([...seen].sort(), [`${HOST}:9301`, `${HOST}:9302`]);
    // and roughly uniform: with 400 finds each side gets far more than 100
    const counts = await findMany(asker, 'svc', 400);
    for (const [k, n] of counts) assert.ok(n > 100, `${k} chosen only ${n}/400 times`);
  });

  test('exclude drops keys; nothing left -> {"status":200} without data', async (t) => {
    const reg = await startCRegistry(t);
    await instance(t, reg, 9401, 'svc');
    await instance(t, reg, 9402, 'svc');
    const asker = await instance(t, reg, 9499, 'asker');
    const seen = await findMany(asker, 'svc', 30, [`${HOST}:9401`]);
    assert.deepEqual([...seen.keys()], [`${HOST}:9402`]);
    // excluded keys that are not members are harmless
    const seen2 = await findMany(asker, 'svc', 30, [`${HOST}:1`, 'garbage', `${HOST}:9402`]);
    assert.deepEqual([...seen2.keys()], [`${HOST}:9401`]);
    const none = await asker.request('/-/find', { namespace: 'svc', exclude: [`${HOST}:9401`, `${HOST}:9402`] });
    assert.deepEqual(none, { status: 200 });
    // exclude: [] is what Application.call() sends when no breaker is open
    const any = await asker.request('/-/find', { namespace: 'svc', exclude: [] });
    assert.equal(any.status, 200);
    assert.ok(any.data);
  });

  test('removal on disconnect (close frame and abrupt TCP close); empty namespace dropped', async (t) => {
    const reg = await startCRegistry(t);
    const a = await instance(t, reg, 9501, 'svc');
    const b = await instance(t, reg, 9502, 'svc');
    const c = await instance(t, reg, 9503, 'other');
    const asker = await instance(t, reg, 9599, 'asker');
    await waitFor(async () => (await namespaces(reg)).svc?.length === 2);
    a.close();
    await waitFor(async () => (await namespaces(reg)).svc?.length === 1, { message: 'closed instance removed' });
    assert.deepEqual(await findMany(asker, 'svc', 10), new Map([[`${HOST}:9502`, 10]]));
    b.terminate(); // no close frame
    await waitFor(async () => !('svc' in (await namespaces(reg))), { message: 'terminated instance removed, namespace dropped' });
    assert.deepEqual(await asker.request('/-/find', { namespace: 'svc' }), { status: 200 });
    assert.deepEqual((await namespaces(reg)).other, [`${HOST}:9503`]);
    c.close();
  });

  test('eviction after --heartbeat-timeout-ms while a heartbeating instance stays', async (t) => {
    const reg = await startCRegistry(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
    const silent = await instance(t, reg, 9601, 'silent');
    const alive = await instance(t, reg, 9602, 'alive');
    const beat = setInterval(() => alive.push('/-/heartbeat', {}), 150);
    t.after(() => clearInterval(beat));
    const started = Date.now();
    const info = await silent.waitClosed(5000);
    const took = Date.now() - started;
    assert.ok(took >= 450, `evicted after ${took} ms, timeout is 600 ms`);
    assert.ok(took < 3000, `evicted only after ${took} ms`);
    assert.ok(info.opened);
    await waitFor(async () => !('silent' in (await namespaces(reg))));
    await sleep(1000); // well past the timeout: the heartbeating one must still be there
    assert.ok(alive.isOpen, 'heartbeating instance was closed');
    assert.deepEqual(await namespaces(reg), { alive: [`${HOST}:9602`] });
    const m = await metrics(reg);
    assert.ok(metricSum(m.samples, /evict/i) >= 1, `no eviction counted in /metrics:\n${m.text}`);
  });

  test('a two-way /-/heartbeat is answered {"status":200} and also keeps the instance', async (t) => {
    const reg = await startCRegistry(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
    const p = await instance(t, reg, 9651, 'hb');
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(await p.request('/-/heartbeat', {}), { status: 200 });
      await sleep(200);
    }
    assert.ok(p.isOpen);
    assert.deepEqual(await namespaces(reg), { hb: [`${HOST}:9651`] });
  });

  test('eviction closes the socket without a close code (1005), like the reference', async (t) => {
    const reg = await startCRegistry(t, { heartbeatTimeoutMs: 300, sweepIntervalMs: 50 });
    const silent = await instance(t, reg, 9661, 'silent');
    const info = await silent.waitClosed(5000);
    assert.equal(info.code, 1005);
  });

  test('a second connection for the same host:port replaces the first; the old one closing does not remove it', async (t) => {
    const reg = await startCRegistry(t);
    const first = await instance(t, reg, 9701, 'dup');
    await waitFor(async () => (await namespaces(reg)).dup?.length === 1);
    const second = await instance(t, reg, 9701, 'dup');
    const asker = await instance(t, reg, 9799, 'asker');
    // one key, listed once
    assert.deepEqual((await namespaces(reg)).dup, [`${HOST}:9701`]);
    // the registry may close the replaced connection itself; if not, we do
    if (first.isOpen) first.close();
    await first.waitClosed();
    await sleep(300);
    assert.ok(second.isOpen, 'the new connection must survive the old one closing');
    assert.deepEqual((await namespaces(reg)).dup, [`${HOST}:9701`]);
    assert.deepEqual(await asker.request('/-/find', { namespace: 'dup' }), { status: 200, data: { host: HOST, port: 9701 } });
    second.close();
    await waitFor(async () => !('dup' in (await namespaces(reg))));
  });

  test('a replacement in another namespace moves the key', async (t) => {
    const reg = await startCRegistry(t);
    const first = await instance(t, reg, 9711, 'old-ns');
    await waitFor(async () => (await namespaces(reg))['old-ns']?.length === 1);
    await instance(t, reg, 9711, 'new-ns');
    if (first.isOpen) first.close();
    await first.waitClosed();
    await waitFor(async () => {
      const ns = await namespaces(reg);
      return !('old-ns' in ns) && ns['new-ns']?.length === 1;
    }, { message: 'key listed under new-ns only' });
  });

  // Handshake paths (docs/PROTOCOL.md §2.2): the path without query, one leading and one
  // trailing '/' stripped, split on '/' -> [host, port, ...extras].
  //  - fewer than 3 segments, or an empty host or port -> closed at once. We accept
  //    either form of "closed": the upgrade refused with an HTTP error, or accepted
  //    and closed right away. Such a connection is never listed.
  //  - a port that is not an integer 1..65535 ("notaport", "0", "70000"): the
  //    reference registers the key but /-/find never returns it (keys that do not
  //    parse are never returned). We assert only that: find never returns it; the
  //    registry may also refuse the connection.
  //  - an empty namespace ('/h/1//' -> extras ['']) is implementation-defined; we
  //    only assert the registry keeps working.
  test('malformed handshake paths are closed at once and never listed', async (t) => {
    const reg = await startCRegistry(t);
    for (const p of ['/', '/onlyhost', `/${HOST}/9801`, `/${HOST}/9801/`, `/${HOST}//ns`, '//9801/ns']) {
      const peer = rawPeer(HOST, reg.port, p, { t });
      const started = Date.now();
      const info = await peer.waitClosed(3000);
      assert.ok(Date.now() - started < 2000, `${p}: closed only after ${Date.now() - started} ms (${JSON.stringify(info)})`);
    }
    assert.deepEqual(await namespaces(reg), {});
    assert.equal((await health(reg)).instances, 0);
  });

  test('keys whose port does not parse are never returned by find', async (t) => {
    const reg = await startCRegistry(t);
    const peers = ['notaport', '0', '70000', '12ab'].map((port) => rawPeer(HOST, reg.port, [HOST, port, 'badport'], { t }));
    await Promise.all(peers.map((p) => Promise.race([p.ready().catch(() => {}), p.closed])));
    const asker = await instance(t, reg, 9899, 'asker');
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await asker.request('/-/find', { namespace: 'badport' }), { status: 200 });
    }
    // empty namespace: implementation-defined, but must not break anything
    const empty = rawPeer(HOST, reg.port, `/${HOST}/9898//`, { t });
    await Promise.race([empty.ready().catch(() => {}), empty.closed]);
    assert.equal((await health(reg)).status, 'ok');
    assert.deepEqual(await asker.request('/-/find', { namespace: 'asker' }), { status: 200, data: { host: HOST, port: 9899 } });
  });

  test('a query string on the handshake path is ignored', async (t) => {
    const reg = await startCRegistry(t);
    const p = rawPeer(HOST, reg.port, [HOST, 9851, 'qns'], { t, query: { token: 'abc', x: '1/2' } });
    await p.ready();
    await waitFor(async () => (await namespaces(reg)).qns?.[0] === `${HOST}:9851`);
  });

  test('an IPv6 advertise host is found as host "::1"', async (t) => {
    const reg = await startCRegistry(t);
    const p = rawPeer(HOST, reg.port, '/::1/9862/v6only', { t });
    await p.ready();
    const asker = await instance(t, reg, 9869, 'asker');
    assert.deepEqual(await asker.request('/-/find', { namespace: 'v6only' }), { status: 200, data: { host: '::1', port: 9862 } });
  });

  test('garbage frames are ignored, counted in /metrics, and the connection keeps working', async (t) => {
    const reg = await startCRegistry(t);
    const m0 = await metrics(reg);
    const before = metricSum(m0.samples, /bad|invalid|malformed/i) ?? 0;
    await instance(t, reg, 9901, 'svc');
    const p = await instance(t, reg, 9902, 'garbage');
    p.sendRaw('this is not json');
    p.sendRaw('{"id":');
    p.sendRaw('[1,2,3]');
    p.sendRaw('{"id":1,"mode":7,"twoway":true,"data":null}');
    const r = await p.request('/-/find', { namespace: 'svc' });
    assert.deepEqual(r, { status: 200, data: { host: HOST, port: 9901 } });
    // nothing was answered for the garbage
    assert.equal(p.frames.length, 1, JSON.stringify(p.frames));
    assert.ok(p.isOpen);
    await waitFor(async () => {
      const m = await metrics(reg);
      const n = metricSum(m.samples, /bad|invalid|malformed/i);
      return n !== undefined && n - before >= 2;
    }, { message: 'bad frames counted in /metrics' });
  });

  test('unknown url -> error RESPONSE (404 naming the url); pushes are never answered', async (t) => {
    const reg = await startCRegistry(t);
    const p = await instance(t, reg, 9951, 'svc');
    const r = await p.request('/nope', { a: 1 });
    assert.notEqual(r.status, 200);
    assert.equal(r.status, 404, 'docs/PROTOCOL.md §3.5: we answer 404');
    assert.equal(r.data, null);
    assert.match(String(r.message), /\/nope/);
    p.push('/-/find', { namespace: 'svc' });
    p.push('/nope', null);
    p.push('/-/heartbeat', {});
    assert.deepEqual(await p.request('/-/heartbeat', {}), { status: 200 });
    await sleep(100);
    assert.equal(p.frames.length, 2, JSON.stringify(p.frames));
  });

  test('a RESPONSE or ABORT from a peer with no matching request is ignored', async (t) => {
    const reg = await startCRegistry(t);
    const p = await instance(t, reg, 9961, 'svc');
    p.sendRaw('{"id":0,"mode":1,"twoway":false,"data":{"status":200}}');
    p.sendRaw('{"id":1,"twoway":false,"data":12345,"mode":2}');
    p.sendRaw('{"id":2,"twoway":true,"data":{"url":"/-/find","data":{"namespace":"svc"}},"mode":0,"stream":false,"extra":[1]}');
    await waitFor(() => p.frames.length === 1);
    assert.deepEqual(p.frames[0], { id: 2, mode: 1, twoway: false, data: { status: 200, data: { host: HOST, port: 9961 } } });
  });

  test('frames over --max-frame-bytes (default 1 MiB) close the connection with 1009', async (t) => {
    const reg = await startCRegistry(t);
    const ok = await instance(t, reg, 9971, 'big');
    // just under the limit: accepted, connection stays
    const under = JSON.stringify({ id: 0, twoway: false, data: { url: '/-/heartbeat', data: { pad: 'x'.repeat(1048576 - 200) } }, mode: 0 });
    assert.ok(under.length <= 1048576);
    ok.sendRaw(under);
    assert.deepEqual(await ok.request('/-/heartbeat', {}), { status: 200 });
    assert.ok(ok.isOpen);
    const big = await instance(t, reg, 9972, 'big');
    big.sendRaw(JSON.stringify({ id: 0, twoway: false, data: { url: '/-/heartbeat', data: { pad: 'x'.repeat(1048576) } }, mode: 0 }));
    const info = await big.waitClosed(5000);
    assert.equal(info.code, 1009);
    await waitFor(async () => (await namespaces(reg)).big?.length === 1);
  });

  test('--max-frame-bytes is configurable', async (t) => {
    const reg = await startCRegistry(t, { maxFrameBytes: 4096 });
    const p = await instance(t, reg, 9981, 'small');
    assert.deepEqual(await p.request('/-/heartbeat', { pad: 'x'.repeat(3000) }), { status: 200 });
    p.sendRaw(JSON.stringify({ id: 5, twoway: false, data: { url: '/-/heartbeat', data: { pad: 'x'.repeat(5000) } }, mode: 0 }));
    assert.equal((await p.waitClosed(5000)).code, 1009);
  });

  // Only WebSocket connections are used here: whether plain HTTP requests count
  // against --max-connections is the implementation's business.
  test('--max-connections refuses connections over the limit', async (t) => {
    const reg = await startCRegistry(t, { maxConnections: 5 });
    const peers = [];
    for (let i = 0; i < 5; i++) peers.push(await instance(t, reg, 10001 + i, 'cap'));
    const extra = rawPeer(HOST, reg.port, [HOST, 10010, 'cap'], { t });
    await extra.waitClosed(5000); // refused, or accepted and closed at once
    const asker = peers[4];
    const seen = await findMany(asker, 'cap', 60);
    assert.ok(!seen.has(`${HOST}:10010`), 'the refused connection was registered');
    assert.equal(seen.size, 5);
    peers[0].close();
    const others = peers.slice(1).map((_, i) => `${HOST}:${10002 + i}`);
    await waitFor(async () => !('data' in (await asker.request('/-/find', { namespace: 'cap', exclude: others }))));
    const again = rawPeer(HOST, reg.port, [HOST, 10011, 'cap'], { t });
    await again.ready();
    await waitFor(async () => {
      const r = await asker.request('/-/find', { namespace: 'cap', exclude: others });
      return r.data && r.data.port === 10011;
    }, { message: 'a connection under the limit is accepted again' });
  });

  test('1,000 concurrent instance connections are all registered, then all removed', { timeout: 120000 }, async (t) => {
    const reg = await startCRegistry(t);
    const N = 1000;
    const peers = [];
    // from four source addresses: one address may hold 512 (--max-connections-per-address)
    for (let i = 0; i < N; i++) {
      peers.push(rawPeer(HOST, reg.port, [HOST, 20000 + i, `bulk${i % 10}`], { t, handshakeTimeoutMs: 30000, localAddress: `127.0.0.${2 + (i % 4)}` }));
    }
    await Promise.all(peers.map((p) => p.ready()));
    await waitFor(async () => (await health(reg)).instances === N, { timeoutMs: 20000, intervalMs: 100, message: `${N} instances in /-/health` });
    const ns = await namespaces(reg);
    assert.equal(Object.keys(ns).length, 10);
    for (let k = 0; k < 10; k++) assert.equal(ns[`bulk${k}`].length, N / 10);
    assert.equal((await health(reg)).namespaces, 10);
    const asker = await instance(t, reg, 29999, 'asker');
    const seen = await findMany(asker, 'bulk3', 50);
    for (const key of seen.keys()) {
      const port = Number(key.split(':').pop());
      assert.equal((port - 20000) % 10, 3, key);
    }
    const m = await metrics(reg);
    assert.ok(metricSum(m.samples, /connection/i) >= N, `connections metric below ${N}:\n${m.text}`);
    asker.close();
    await Promise.all(peers.map((p) => p.close()));
    await waitFor(async () => (await health(reg)).instances === 0, { timeoutMs: 20000, intervalMs: 100, message: 'all removed' });
    assert.deepEqual(await namespaces(reg), {});
    assert.equal((await health(reg)).namespaces, 0);
  });

  test('GET /-/health shape', async (t) => {
    const reg = await startCRegistry(t);
    const h0 = await health(reg);
    assert.deepEqual(Object.keys(h0).sort(), ['instances', 'namespaces', 'status', 'uptime']);
    assert.equal(h0.status, 'ok');
    assert.equal(typeof h0.uptime, 'number');
    assert.ok(h0.uptime >= 0);
    assert.equal(h0.namespaces, 0);
    assert.equal(h0.instances, 0);
    await instance(t, reg, 10101, 'x');
    await instance(t, reg, 10102, 'x');
    await instance(t, reg, 10103, 'y');
    await waitFor(async () => (await health(reg)).instances === 3);
    const h1 = await health(reg);
    assert.equal(h1.namespaces, 2);
    const r = await httpJson('GET', `${reg.http}/-/health`);
    assert.match(String(r.headers['content-type']), /application\/json/);
  });

  test('GET /metrics is Prometheus text with instance, connection and find counters', async (t) => {
    const reg = await startCRegistry(t);
    await instance(t, reg, 10201, 'payments');
    await instance(t, reg, 10202, 'payments');
    const asker = await instance(t, reg, 10299, 'asker');
    for (let i = 0; i < 3; i++) await asker.request('/-/find', { namespace: 'payments' });
    const m = await metrics(reg);
    assert.match(m.text, /^# (HELP|TYPE) /m, 'has HELP/TYPE lines');
    // every sample has a TYPE line for its family
    const types = new Set([...m.text.matchAll(/^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/gm)].map((x) => x[1]));
    for (const s of m.samples) {
      const family = s.name.replace(/_(bucket|sum|count|total|created)$/, '');
      assert.ok(types.has(s.name) || types.has(family), `no # TYPE for ${s.name}`);
    }
    assert.ok(
      m.samples.some((s) => /instance/i.test(s.name) && s.labels.namespace === 'payments' && s.value === 2),
      `no instances sample with {namespace="payments"} = 2:\n${m.text}`,
    );
    assert.ok(metricSum(m.samples, /connection/i) >= 3, `connections:\n${m.text}`);
    assert.ok(metricSum(m.samples, /find/i) >= 3, `finds:\n${m.text}`);
    assert.ok(metricSum(m.samples, /frame/i) >= 3, `frames in/out:\n${m.text}`);
  });

  test('unknown HTTP path -> 404; GET /v1/namespaces with nothing registered -> {}', async (t) => {
    const reg = await startCRegistry(t);
    for (const p of ['/nope', '/-/nope', '/v2/namespaces']) {
      const r = await httpJson('GET', `${reg.http}${p}`);
      assert.equal(r.status, 404, `${p} -> ${r.status}`);
    }
    assert.deepEqual(await namespaces(reg), {});
  });

  test('SIGTERM with connections open -> exit 0 promptly', async (t) => {
    const reg = await startCRegistry(t);
    const a = await instance(t, reg, 10301, 'svc');
    await instance(t, reg, 10302, 'svc');
    const started = Date.now();
    reg.proc.kill('SIGTERM');
    const { code, signal } = await reg.proc.waitExit(5000);
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    await a.waitClosed(2000);
  });

  test('SIGINT -> exit 0', async (t) => {
    const reg = await startCRegistry(t);
    reg.proc.kill('SIGINT');
    const { code } = await reg.proc.waitExit(5000);
    assert.equal(code, 0);
  });

  test('--help and --version exit 0; a bad value exits 2 with one line naming the key', async (t) => {
    for (const flag of ['--help', '--version']) {
      const p = spawnProc(registryBin(), [flag], { t, name: `micro-registry ${flag}` });
      const { code } = await p.waitExit(5000);
      assert.equal(code, 0, flag);
      assert.ok(p.stdout.length > 0, `${flag} prints to stdout`);
    }
    const bad = spawnProc(registryBin(), ['--port', '70000'], { t, name: 'micro-registry --port 70000' });
    const { code } = await bad.waitExit(5000);
    assert.equal(code, 2);
    assert.match(bad.stderr, /port/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, `one line on stderr: ${bad.stderr}`);
  });
});
