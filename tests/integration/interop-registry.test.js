'use strict';
// One test body, run against both registries:
//   - the C micro-registry (skipped when not built), and
//   - the Node Registry of tests/node/micro.js, our stand-in for @hile/micro 1.0.5.
// Only the WebSocket protocol is used here (no HTTP endpoints, which the reference
// does not have), so passing against the Node registry shows that the expectations
// are the reference's, and passing against the C one shows that it matches them.
// The second half runs real Node Application peers (tests/node/peer.js processes)
// against each registry: they register, heartbeat, find and call each other.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/interop-registry.test.js
// Env: see tests/integration/README.md

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const { HOST, cSkipReason, startCRegistry, startNodeRegistry, h } = require('./lib/registries');
const { test, waitFor, rawPeer, httpJson, sleep, spawnPeer, freePort } = h;

const IMPLS = [
  { name: 'C micro-registry', skip: cSkipReason(), start: startCRegistry },
  { name: 'Node reference Registry', skip: false, start: startNodeRegistry },
];

async function instance(t, reg, port, ns) {
  const p = rawPeer(HOST, reg.port, [HOST, port, ns], { t });
  await p.ready();
  return p;
}

/** keys found by n finds, with counts */
async function findMany(asker, ns, n, exclude) {
  const seen = new Map();
  for (let i = 0; i < n; i++) {
    const r = await asker.request('/-/find', exclude ? { namespace: ns, exclude } : { namespace: ns });
    assert.equal(r.status, 200, JSON.stringify(r));
    const key = 'data' in r ? `${r.data.host}:${r.data.port}` : '(none)';
    seen.set(key, (seen.get(key) || 0) + 1);
  }
  return seen;
}

/** Poll until find(ns) answers exactly the set `keys` (over a few finds). */
async function waitMembers(asker, ns, keys, timeoutMs = 5000) {
  const want = [...keys].sort();
  await waitFor(
    async () => {
      if (want.length === 0) {
        const r = await asker.request('/-/find', { namespace: ns });
        return !('data' in r);
      }
      const seen = await findMany(asker, ns, want.length * 12);
      return JSON.stringify([...seen.keys()].sort()) === JSON.stringify(want);
    },
    { timeoutMs, intervalMs: 50, message: `members of ${ns} are ${JSON.stringify(want)}` },
  );
}

for (const impl of IMPLS) {
  describe(`registry protocol: ${impl.name}`, { skip: impl.skip }, () => {
    test('find: only members, random, exclude, no data', async (t) => {
      const reg = await impl.start(t);
      await instance(t, reg, 11001, 'svc');
      await instance(t, reg, 11002, 'svc');
      await instance(t, reg, 11003, 'other/ns');
      const asker = await instance(t, reg, 11099, 'asker');
      const seen = await findMany(asker, 'svc', 200);
      assert.deepEqual([...seen.keys()].sort(), [`${HOST}:11001`, `${HOST}:11002`]);
      const r = await asker.request('/-/find', { namespace: 'other/ns' });
      assert.deepEqual(r, { status: 200, data: { host: HOST, port: 11003 } });
      assert.deepEqual([...(await findMany(asker, 'svc', 20, [`${HOST}:11002`])).keys()], [`${HOST}:11001`]);
      assert.deepEqual(await asker.request('/-/find', { namespace: 'svc', exclude: [`${HOST}:11001`, `${HOST}:11002`] }), { status: 200 });
      assert.deepEqual(await asker.request('/-/find', { namespace: 'nobody' }), { status: 200 });
      assert.deepEqual(await asker.request('/-/find', { namespace: 'svc', exclude: [] }).then((x) => x.status), 200);
    });

    test('responses carry the request id; ids are the sender\'s (large, out of order)', async (t) => {
      const reg = await impl.start(t);
      await instance(t, reg, 11101, 'svc');
      const p = await instance(t, reg, 11102, 'ids');
      const ids = [9007199254740990, 5, 123456789012, 0, 77];
      for (const id of ids) {
        p.sendRaw(JSON.stringify({ id, twoway: true, data: { url: '/-/find', data: { namespace: 'svc' } }, mode: 0 }));
      }
      await waitFor(() => p.frames.length === ids.length);
      assert.deepEqual(p.frames.map((f) => f.id).sort((a, b) => a - b), [...ids].sort((a, b) => a - b));
      for (const f of p.frames) {
        assert.deepEqual(f, { id: f.id, mode: 1, twoway: false, data: { status: 200, data: { host: HOST, port: 11101 } } });
      }
      // key order of the reference (id,mode,twoway,data) and no "stream" key
      for (const s of p.rawFrames) assert.match(s, /^\{"id":\d+,"mode":1,"twoway":false,"data":\{/);
    });

    test('heartbeat (two-way) -> {"status":200}; pushes unanswered; unknown url -> error', async (t) => {
      const reg = await impl.start(t);
      const p = await instance(t, reg, 11201, 'svc');
      assert.deepEqual(await p.request('/-/heartbeat', {}), { status: 200 });
      p.push('/-/heartbeat', {});
      p.push('/-/find', { namespace: 'svc' });
      const r = await p.request('/nope', null);
      // the reference answers 500, we answer 404 (docs/PROTOCOL.md §3.5); both name the url
      assert.notEqual(r.status, 200);
      assert.equal(r.data, null);
      assert.match(String(r.message), /\/nope/);
      await sleep(100);
      assert.equal(p.frames.length, 2, JSON.stringify(p.frames));
    });

    test('removal on close and on abrupt disconnect', async (t) => {
      const reg = await impl.start(t);
      const a = await instance(t, reg, 11301, 'svc');
      const b = await instance(t, reg, 11302, 'svc');
      const asker = await instance(t, reg, 11399, 'asker');
      await waitMembers(asker, 'svc', [`${HOST}:11301`, `${HOST}:11302`]);
      a.close();
      await waitMembers(asker, 'svc', [`${HOST}:11302`]);
      b.terminate();
      await waitMembers(asker, 'svc', []);
    });

    test('eviction after the heartbeat timeout; a heartbeating instance stays', async (t) => {
      const reg = await impl.start(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
      const silent = await instance(t, reg, 11401, 'svc');
      const alive = await instance(t, reg, 11402, 'svc');
      const beat = setInterval(() => alive.push('/-/heartbeat', {}), 150);
      t.after(() => clearInterval(beat));
      const started = Date.now();
      const info = await silent.waitClosed(5000);
      assert.ok(Date.now() - started >= 450, `evicted after ${Date.now() - started} ms`);
      assert.ok(info.opened);
      await sleep(900);
      assert.ok(alive.isOpen);
      assert.deepEqual(await findMany(alive, 'svc', 10), new Map([[`${HOST}:11402`, 10]]));
    });

    test('same host:port twice: the newer connection wins and survives the older closing', async (t) => {
      const reg = await impl.start(t);
      const first = await instance(t, reg, 11501, 'dup');
      const second = await instance(t, reg, 11501, 'dup');
      const asker = await instance(t, reg, 11599, 'asker');
      if (first.isOpen) first.close();
      await first.waitClosed();
      await sleep(200);
      assert.ok(second.isOpen);
      assert.deepEqual(await findMany(asker, 'dup', 10), new Map([[`${HOST}:11501`, 10]]));
      second.close();
      await waitMembers(asker, 'dup', []);
    });

    test('malformed handshake paths are closed at once; bad ports are never found', async (t) => {
      const reg = await impl.start(t);
      for (const p of ['/', '/onlyhost', `/${HOST}/11601`, `/${HOST}/11601/`, `/${HOST}//ns`, '//11601/ns']) {
        const peer = rawPeer(HOST, reg.port, p, { t });
        const started = Date.now();
        await peer.waitClosed(3000);
        assert.ok(Date.now() - started < 2000, p);
      }
      const bad = ['notaport', '0', '70000'].map((port) => rawPeer(HOST, reg.port, [HOST, port, 'badport'], { t }));
      await Promise.all(bad.map((p) => Promise.race([p.ready().catch(() => {}), p.closed])));
      const asker = await instance(t, reg, 11699, 'asker');
      assert.deepEqual(await findMany(asker, 'badport', 10), new Map([['(none)', 10]]));
      // the query string is ignored
      const q = rawPeer(HOST, reg.port, [HOST, 11602, 'q'], { t, query: 'token=abc' });
      await q.ready();
      await waitMembers(asker, 'q', [`${HOST}:11602`]);
    });

    test('garbage frames are ignored and the connection keeps working', async (t) => {
      const reg = await impl.start(t);
      await instance(t, reg, 11701, 'svc');
      const p = await instance(t, reg, 11702, 'garbage');
      p.sendRaw('not json at all');
      p.sendRaw('{"id":');
      p.sendRaw('"a string"');
      assert.deepEqual(await p.request('/-/find', { namespace: 'svc' }), { status: 200, data: { host: HOST, port: 11701 } });
      assert.equal(p.frames.length, 1);
      assert.ok(p.isOpen);
    });

    test('a message sent in fragments is reassembled', async (t) => {
      const reg = await impl.start(t);
      await instance(t, reg, 11751, 'svc');
      const p = await instance(t, reg, 11752, 'frag');
      const text = JSON.stringify({ id: 41, twoway: true, data: { url: '/-/find', data: { namespace: 'svc' } }, mode: 0 });
      p.sendFragments([text.slice(0, 5), text.slice(5, 30), text.slice(30)]);
      await waitFor(() => p.frames.length === 1);
      assert.deepEqual(p.frames[0], { id: 41, mode: 1, twoway: false, data: { status: 200, data: { host: HOST, port: 11751 } } });
    });

    test('odd /-/find payloads and stream:true get an answer, never silence or a crash', async (t) => {
      const reg = await impl.start(t);
      await instance(t, reg, 11761, 'svc');
      const p = await instance(t, reg, 11762, 'odd');
      const odd = [null, {}, { namespace: 5 }, { namespace: 'svc', exclude: 'not-an-array' }, { namespace: 'svc', exclude: [1, null, {}] }, 'str', [1]];
      for (const data of odd) {
        const r = await p.request('/-/find', data);
        assert.ok(r && (typeof r.status === 'number' || typeof r.status === 'string'), `${JSON.stringify(data)} -> ${JSON.stringify(r)}`);
      }
      // a REQUEST frame without url / data, and one asking for a stream (1.0.5 has none)
      p.sendRaw('{"id":900,"twoway":true,"mode":0}');
      p.sendRaw('{"id":901,"twoway":true,"data":{"url":"/-/find","data":{"namespace":"svc"}},"mode":0,"stream":true}');
      await waitFor(() => p.frames.some((f) => f.id === 901));
      assert.deepEqual(await p.request('/-/find', { namespace: 'svc' }), { status: 200, data: { host: HOST, port: 11761 } });
    });

    test('a frame over 1 MiB closes the connection with 1009', async (t) => {
      const reg = await impl.start(t);
      const p = await instance(t, reg, 11801, 'big');
      p.sendRaw(JSON.stringify({ id: 0, twoway: false, data: { url: '/-/heartbeat', data: { pad: 'x'.repeat(1048576) } }, mode: 0 }));
      assert.equal((await p.waitClosed(5000)).code, 1009);
    });

    describe('with Node Application peers', () => {
      async function app(t, reg, ns, extra = []) {
        return spawnPeer(
          ['app', '--namespace', ns, '--port', '0', '--registry', `${HOST}:${reg.port}`, '--advertise-host', HOST,
            '--serve-echo', '--control-port', '0', ...extra],
          { t, name: `app ${ns}` },
        );
      }
      const ctl = (p, path, body) => httpJson(body ? 'POST' : 'GET', `http://${HOST}:${p.info.controlPort}${path}`, body);

      test('apps register, find and call each other through the registry', async (t) => {
        const reg = await impl.start(t);
        const a = await app(t, reg, 'alpha');
        const b = await app(t, reg, 'beta/v1');
        let r = await ctl(a, '/call', { namespace: 'beta/v1', url: '/echo', data: { n: 1 } });
        assert.equal(r.body.ok, true, JSON.stringify(r.body));
        assert.equal(r.body.data.n, 1);
        assert.match(r.body.data._correlationId, /^[0-9a-f-]{36}$/);
        r = await ctl(b, '/call', { namespace: 'alpha', url: '/whoami', data: null });
        assert.deepEqual(r.body.data, { namespace: 'alpha', host: HOST, port: a.info.port });
        r = await ctl(a, '/call', { namespace: 'beta/v1', url: '/fail', data: 1, retries: 0 });
        assert.deepEqual(r.body, { ok: false, status: 500, message: 'boom' });
        r = await ctl(a, '/call', { namespace: 'beta/v1', url: '/slow', data: { ms: 5000 }, timeout: 200, retries: 0 });
        assert.deepEqual(r.body, { ok: false, status: 'ECONNABORTED', message: 'Abort' });
        await waitFor(async () => (await ctl(b, '/stats')).body.slowAborted === 1);
        r = await ctl(a, '/call', { namespace: 'nobody', url: '/echo', data: 1, retries: 0 });
        assert.equal(r.body.ok, false);
        r = await ctl(a, '/call', { namespace: 'beta/v1', url: '/-/health', data: null });
        assert.equal(r.body.data.status, 'ok');
        assert.equal(r.body.data.registry, true);
        // the raw view agrees
        const asker = await instance(t, reg, 11999, 'asker');
        await waitMembers(asker, 'alpha', [`${HOST}:${a.info.port}`]);
        await waitMembers(asker, 'beta/v1', [`${HOST}:${b.info.port}`]);
        // an app that dies is removed
        await b.proc.stop();
        await waitMembers(asker, 'beta/v1', []);
      });

      test('heartbeats keep apps registered past the heartbeat timeout', async (t) => {
        const reg = await impl.start(t, { heartbeatTimeoutMs: 600, sweepIntervalMs: 100 });
        const a = await app(t, reg, 'alpha', ['--heartbeat-interval-ms', '150']);
        const b = await app(t, reg, 'beta', ['--heartbeat-interval-ms', '150']);
        await sleep(1500);
        for (const p of [a, b]) {
          const s = (await ctl(p, '/stats')).body;
          assert.equal(s.registryConnected, true);
          assert.equal(s.registryConnects, 1, 'never evicted and reconnected');
        }
        const r = await ctl(a, '/call', { namespace: 'beta', url: '/echo', data: 'x' });
        assert.equal(r.body.data.data, 'x');
      });

      test('an app that stops heartbeating is evicted, survives the close and reconnects', async (t) => {
        const reg = await impl.start(t, { heartbeatTimeoutMs: 500, sweepIntervalMs: 100 });
        // heartbeat far slower than the registry's timeout: evicted again and again
        const a = await app(t, reg, 'lazy', ['--heartbeat-interval-ms', '60000', '--reconnect-interval-ms', '100']);
        await waitFor(async () => (await ctl(a, '/stats')).body.registryConnects >= 3, { timeoutMs: 5000 });
        assert.equal(a.proc.exited, false, 'the Node peer must not crash on the registry closing it');
        // the close must be a valid RFC 6455 close (the reference sends an empty one -> 1005)
        assert.deepEqual((await ctl(a, '/stats')).body.socketErrors, []);
      });

      test('breaker: a failing provider is excluded, the other one serves', async (t) => {
        const reg = await impl.start(t);
        const bad = await app(t, reg, 'svc');
        const good = await app(t, reg, 'svc');
        const consumer = await app(t, reg, 'consumer');
        await ctl(bad, '/mode', { failEcho: true });
        const badKey = `${HOST}:${bad.info.port}`;
        // make the failing one the consumer's cached choice, so the first call lands on it
        const g = await ctl(consumer, '/get', { namespace: 'svc', exclude: [`${HOST}:${good.info.port}`] });
        assert.deepEqual(g.body, { ok: true, key: badKey });
        for (let i = 0; i < 12; i++) {
          const r = await ctl(consumer, '/call', { namespace: 'svc', url: '/echo', data: i, timeout: 2000, retries: 1 });
          assert.equal(r.body.ok, true, JSON.stringify(r.body));
        }
        const sb = (await ctl(bad, '/stats')).body;
        const sg = (await ctl(good, '/stats')).body;
        assert.equal(sb.served['/echo'], 1, 'the failing provider is tried once, then excluded');
        assert.equal(sg.served['/echo'], 12);
        assert.deepEqual((await ctl(consumer, '/stats')).body.breakers, { svc: [badKey] });
      });

      test('apps re-register after the registry restarts on the same port', async (t) => {
        const port = await freePort();
        let reg = await impl.start(t, { port });
        const a = await app(t, reg, 'alpha', ['--reconnect-interval-ms', '100']);
        const b = await app(t, reg, 'beta', ['--reconnect-interval-ms', '100']);
        assert.equal((await ctl(a, '/call', { namespace: 'beta', url: '/echo', data: 1 })).body.ok, true);
        await reg.proc.stop();
        await waitFor(async () => (await ctl(a, '/stats')).body.registryConnected === false);
        // cache degradation: the known peer keeps answering while the registry is down
        assert.equal((await ctl(a, '/call', { namespace: 'beta', url: '/echo', data: 2 })).body.ok, true);
        reg = await impl.start(t, { port });
        await waitFor(async () => (await ctl(a, '/stats')).body.registryConnected && (await ctl(b, '/stats')).body.registryConnected, { timeoutMs: 5000 });
        const asker = await instance(t, reg, 11998, 'asker');
        await waitMembers(asker, 'alpha', [`${HOST}:${a.info.port}`]);
        await waitMembers(asker, 'beta', [`${HOST}:${b.info.port}`]);
        assert.equal((await ctl(b, '/call', { namespace: 'alpha', url: '/echo', data: 3 })).body.ok, true);
      });
    });
  });
}
