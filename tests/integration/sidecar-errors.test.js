'use strict';
// micro-sidecar: every row of the error table in docs/API.md ("Errors"), timeouts with the
// ABORT reaching the provider's app, and the breaker (a failing peer is excluded and
// another provider chosen; all excluded -> reset). Real processes on 127.0.0.1.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/sidecar-errors.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST, UUID_RE } = m;
const { test, waitFor, httpJson, rawPeer, freePort } = h;

async function abMesh(t, extra = {}) {
  const mesh = await m.startMesh(t, {
    providers: [{ ns: 'b', echoName: 'echo-b', ...(extra.provider || {}) }],
    consumers: [{ ns: 'a', ...(extra.consumer || {}) }],
    sidecar: extra.sidecar,
  });
  return { ...mesh, a: mesh.consumers[0], b: mesh.providers[0].sidecar, echo: mesh.providers[0].echo };
}

/** The error body shape of docs/API.md ("Errors"): {"error":"<message>","status":<n>}. */
function assertError(r, httpStatus, bodyStatus = httpStatus, what = '') {
  assert.equal(r.status, httpStatus, `${what} HTTP status; body: ${r.text}`);
  assert.equal(r.headers['content-type'], 'application/json', `${what} content-type; body: ${r.text}`);
  assert.equal(typeof r.body, 'object', `${what} JSON body: ${r.text}`);
  assert.equal(typeof r.body.error, 'string', `${what} "error" is a string: ${r.text}`);
  assert.ok(r.body.error.length > 0, `${what} "error" is not empty: ${r.text}`);
  assert.equal(r.body.status, bodyStatus, `${what} "status" in the body: ${r.text}`);
}

describe('micro-sidecar: errors', { skip: m.skipReason() }, () => {
  test('400: bad JSON, missing or wrong fields in the /v1/call body form', async (t) => {
    const { a, echo } = await abMesh(t);
    assertError(await a.call('b', '/echo', '{"bad json'), 400, 400, 'path form, bad JSON');
    assertError(await a.call('b', '/echo', '{"a":1} trailing'), 400, 400, 'path form, trailing garbage');
    assertError(await a.push('b', '/echo', '{nope'), 400, 400, 'push, bad JSON');
    assertError(await httpJson('POST', `${a.api}/v1/call`, '{"namespace":'), 400, 400, 'body form, bad JSON');
    assertError(await httpJson('POST', `${a.api}/v1/call/b`, { x: 1 }), 400, 400, 'path form without a url');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { url: '/echo', data: 1 }), 400, 400, 'missing namespace');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', data: 1 }), 400, 400, 'missing url');
    assertError(await httpJson('POST', `${a.api}/v1/call`, {}), 400, 400, 'empty object');
    assertError(await httpJson('POST', `${a.api}/v1/call`, [1]), 400, 400, 'not an object');
    assertError(await httpJson('POST', `${a.api}/v1/call`, undefined), 400, 400, 'no body');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { namespace: 7, url: '/echo' }), 400, 400, 'namespace not a string');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: 'echo' }), 400, 400, 'url without /');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/echo', timeout: 'soon' }), 400, 400, 'bad timeout');
    assertError(await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/echo', retries: -1 }), 400, 400, 'bad retries');
    assertError(await a.call('b', '/echo', {}, { 'X-Micro-Timeout-Ms': 'abc' }), 400, 400, 'bad X-Micro-Timeout-Ms');
    assertError(await a.call('b', '/echo', {}, { 'X-Micro-Retries': '-3' }), 400, 400, 'bad X-Micro-Retries');
    assertError(await httpJson('POST', `${a.api}/v1/routes`, '{"url":'), 400, 400, 'routes, bad JSON');
    assertError(await httpJson('POST', `${a.api}/v1/routes`, { target: 'http://127.0.0.1:1/x' }), 400, 400, 'routes, missing url');
    // none of it reached the app
    assert.equal((await echo.stats()).by_url['/echo'], undefined);
  });

  test('404: unknown url on the provider is passed back; unknown local endpoint', async (t) => {
    const { a, b, echo } = await abMesh(t, { provider: { routes: ['/echo'] } });
    const ok = await a.call('b', '/echo', { fine: true });
    assert.equal(ok.status, 200, ok.text);
    const r = await a.call('b', '/not-registered', { x: 1 }, { 'X-Micro-Retries': '0' });
    assertError(r, 404, 404, 'unregistered url on b');
    assert.match(r.body.error, /\/not-registered/, 'the message names the url');
    assert.ok(r.headers['x-correlation-id'], 'the error answer carries X-Correlation-Id');
    assert.equal((await echo.stats()).by_url['/not-registered'], undefined, 'the app never saw it');
    assert.equal(await b.metric('micro_sidecar_inbound_no_route_total'), 1);
    assertError(await httpJson('GET', `${a.api}/v1/nothing-here`), 404, 404, 'unknown local endpoint');
  });

  test('503: no instance of the namespace (answered at once)', async (t) => {
    const { a } = await abMesh(t, { consumer: { lookupTimeoutMs: 5000 } });
    const t0 = Date.now();
    const r = await a.call('nobody', '/echo', { x: 1 });
    assertError(r, 503, 503, 'unknown namespace');
    assert.ok(Date.now() - t0 < 2000, `answered after ${Date.now() - t0} ms, not after the lookup timeout`);
    const r2 = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'nobody/else', url: '/x' });
    assertError(r2, 503, 503, 'unknown namespace, body form');
    assertError(await a.push('nobody', '/echo', {}), 503, 503, 'push to an unknown namespace');
  });

  test('502: the registry lists a peer that cannot be reached', async (t) => {
    const { registry, a } = await abMesh(t);
    const deadPort = await freePort();
    // a registration for an address nobody listens on
    const ghost = rawPeer(HOST, registry.port, [HOST, deadPort, 'ghost'], { t });
    await ghost.ready();
    await m.waitListed(registry, 'ghost', [`${HOST}:${deadPort}`]);
    const t0 = Date.now();
    const r = await a.call('ghost', '/echo', { x: 1 });
    assertError(r, 502, 502, 'unreachable peer');
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });

  test('502 after the handshake timeout: a peer that accepts TCP and never answers the upgrade', async (t) => {
    const net = require('node:net');
    const sockets = [];
    let closed = 0;
    const silent = net.createServer((s) => {
      sockets.push(s);
      s.resume(); // read (and drop) the upgrade request, so that 'end' is seen
      s.once('end', () => closed++); // the sidecar's FIN
      s.on('error', () => {});
    });
    await new Promise((r) => silent.listen(0, HOST, r));
    t.after(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const { registry, a } = await abMesh(t, { consumer: { handshakeTimeoutMs: 400 } });
    const ghost = rawPeer(HOST, registry.port, [HOST, silent.address().port, 'silent'], { t });
    await ghost.ready();
    await m.waitListed(registry, 'silent', [`${HOST}:${silent.address().port}`]);
    const t0 = Date.now();
    const r = await a.call('silent', '/echo', { x: 1 }, { 'X-Micro-Retries': '0' });
    const took = Date.now() - t0;
    assertError(r, 502, 502, 'silent peer');
    // the handshake timeout (400 ms) ends the dial, not some later housekeeping pass
    assert.ok(took < 2500, `took ${took} ms`);
    await waitFor(() => closed >= 1, { timeoutMs: 2000, message: `the sidecar closed the silent socket (${sockets.length} accepted, took ${took} ms)` });
  });

  test('a peer that stops reading: its answers are still read while our big frames wait', async (t) => {
    // The provider's socket stops reading after /small and answers it 1.5 s
    // later; meanwhile three 4 MB calls fill the socket towards it. The answer
    // must be read (200 at ~1.5 s) with the sidecar idle, not stuck behind the
    // unsent bytes (lws's raw role does not read while it holds a partial write).
    const { WebSocketServer } = require(require.resolve('ws', { paths: [require('node:path').join(__dirname, '..', 'node')] }));
    const srv = new WebSocketServer({ host: HOST, port: 0, maxPayload: 64 << 20 });
    await new Promise((r) => srv.once('listening', r));
    t.after(() => srv.close());
    srv.on('connection', (ws) => {
      ws.on('message', (msg) => {
        const f = JSON.parse(msg);
        if (f.mode === 0 && f.data.url === '/small') {
          ws._socket.pause();
          setTimeout(() => ws.send(JSON.stringify({ id: f.id, mode: 1, twoway: false, data: { status: 200, data: 'small-ok' } })), 1500);
          setTimeout(() => ws._socket.resume(), 6000);
        }
      });
    });
    t.after(() => { for (const c of srv.clients) c.terminate(); });
    const { registry, a } = await abMesh(t, { consumer: { args: ['--max-body-bytes', String(16 << 20)] } });
    const port = srv.address().port;
    const peer = rawPeer(HOST, registry.port, [HOST, port, 'slowreader'], { t });
    await peer.ready();
    await m.waitListed(registry, 'slowreader', [`${HOST}:${port}`]);
    const t0 = Date.now();
    const small = a.call('slowreader', '/small', { x: 1 }, { 'X-Micro-Retries': '0', 'X-Micro-Timeout-Ms': '5000' });
    await h.sleep(300);
    const big = [1, 2, 3].map(() => a.call('slowreader', '/big', { p: 'y'.repeat(4 << 20) },
      { 'X-Micro-Retries': '0', 'X-Micro-Timeout-Ms': '1000' }));
    const r = await small;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body, 'small-ok');
    assert.ok(Date.now() - t0 < 3500, `the answer took ${Date.now() - t0} ms`);
    await Promise.all(big);
    const stat = require('node:fs').readFileSync(`/proc/${a.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime + stime in clock ticks (100/s): well under a busy core over the ~2.5 s
    assert.ok(Number(stat[11]) + Number(stat[12]) < 150, `sidecar CPU ticks ${Number(stat[11]) + Number(stat[12])}`);
  });

  test('502: the provider sidecar dies mid-call (/slow/2000), connection dropped', async (t) => {
    const { a, b, echo } = await abMesh(t);
    const pending = a.call('b', '/slow/2000', { x: 1 }, { 'X-Micro-Retries': '0', 'X-Micro-Timeout-Ms': '10000' });
    await waitFor(async () => (await echo.stats()).by_url['/slow/2000'] === 1, { timeoutMs: 3000, message: 'the app is serving /slow/2000' });
    const t0 = Date.now();
    b.proc.kill('SIGKILL');
    const r = await pending;
    assertError(r, 502, 502, 'connection dropped');
    assert.ok(Date.now() - t0 < 1500, `answered ${Date.now() - t0} ms after the kill, not at the end of the slow call`);
  });

  test('504: timeout, ABORT reaches the provider and cancels the app request; a long enough timeout succeeds', async (t) => {
    const { a, b, echo } = await abMesh(t);
    const t0 = Date.now();
    const r = await a.call('b', '/slow/5000', { x: 1 }, { 'X-Micro-Timeout-Ms': '300', 'X-Micro-Retries': '0' });
    const took = Date.now() - t0;
    assertError(r, 504, 504, 'timeout');
    assert.ok(took >= 250 && took < 2500, `504 after ${took} ms with a 300 ms timeout`);
    assert.match(r.headers['x-correlation-id'] || '', UUID_RE);
    // the ABORT reached b, which cancelled the forwarded HTTP request: the app saw the hang-up
    await waitFor(async () => (await echo.stats()).aborted >= 1, { timeoutMs: 3000, message: 'echo /stats aborted >= 1' });
    await waitFor(async () => (await b.metric('micro_sidecar_inbound_aborted_total')) === 1, {
      timeoutMs: 3000,
      message: 'b counts one aborted inbound request',
    });
    assert.equal((await echo.stats()).by_url['/slow/5000'], 1, 'no retry with X-Micro-Retries: 0');
    assert.equal(await a.metric('micro_sidecar_call_timeouts_total'), 1);

    // request timeout from the flag when no header is given
    const ok = await a.call('b', '/slow/200', { y: 2 }, { 'X-Micro-Timeout-Ms': '5000' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.y, 2);
    assert.equal((await echo.stats()).aborted, 1, 'the successful call was not aborted');
  });

  test('504 with retries: the retry uses the same correlation id and each attempt is aborted', async (t) => {
    const { a, echo } = await abMesh(t);
    const r = await a.call('b', '/slow/5000', { _correlationId: 'retry-cid' }, { 'X-Micro-Timeout-Ms': '250', 'X-Micro-Retries': '1' });
    assertError(r, 504, 504, 'timeout after a retry');
    assert.equal(r.headers['x-correlation-id'], 'retry-cid');
    await waitFor(async () => (await echo.stats()).aborted >= 2, { timeoutMs: 3000, message: 'echo saw both attempts aborted' });
    assert.equal((await echo.stats()).by_url['/slow/5000'], 2, 'two attempts');
  });

  test('the request timeout flag is the default for calls', async (t) => {
    const { a, echo } = await abMesh(t, { consumer: { requestTimeoutMs: 300, args: ['--retries', '0'] } });
    const r = await a.call('b', '/slow/3000', {});
    assertError(r, 504, 504, 'timeout from --request-timeout-ms');
    await waitFor(async () => (await echo.stats()).aborted >= 1, { timeoutMs: 3000, message: 'echo /stats aborted >= 1' });
  });

  test('a peer\'s numeric status 400-599 is passed through (418, 500, 503)', async (t) => {
    const { a } = await abMesh(t);
    for (const code of [418, 400, 500, 503, 599]) {
      const r = await a.call('b', `/status/${code}`, { c: code });
      assertError(r, code, code, `/status/${code}`);
      assert.equal(r.body.error, `status ${code} from echo-b`, 'the app\'s error message is passed back');
    }
  });

  test('any other peer failure -> 502; a raw peer\'s status passes through (one connection per pair)', async (t) => {
    const { registry, a } = await abMesh(t);
    const fakePort = await freePort();
    // connect to a's mesh port as 127.0.0.1:fakePort, and register that key too:
    // a must reuse this connection instead of dialing the (dead) port
    const weird = rawPeer(HOST, a.meshPort, [HOST, fakePort, 'weird'], { t });
    await weird.ready();
    const reg = rawPeer(HOST, registry.port, [HOST, fakePort, 'weird'], { t });
    await reg.ready();
    await m.waitListed(registry, 'weird', [`${HOST}:${fakePort}`]);
    const fail = (status, message) => {
      throw Object.assign(new Error(message), { status });
    };
    weird.handle('/string-status', () => fail('EWEIRD', 'a string status'));
    weird.handle('/status-302', () => fail(302, 'not an error code'));
    weird.handle('/status-451', () => fail(451, 'unavailable for legal reasons'));
    weird.handle('/ok', (data) => ({ got: data }));
    weird.handle('/nothing', () => undefined);

    let r = await a.call('weird', '/ok', { v: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.got.v, 1);
    assert.match(r.body.got._correlationId, UUID_RE);
    r = await a.call('weird', '/nothing', { v: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'null', 'no data from the peer -> JSON null');
    r = await a.call('weird', '/status-451', {});
    assertError(r, 451, 451, 'peer status 451');
    assert.equal(r.body.error, 'unavailable for legal reasons');
    r = await a.call('weird', '/string-status', {});
    assert.equal(r.status, 502, `string status -> 502: ${r.text}`);
    assert.equal(typeof r.body.error, 'string');
    r = await a.call('weird', '/status-302', {});
    assert.equal(r.status, 502, `status 302 -> 502: ${r.text}`);
    // everything went over the one connection the raw peer opened
    const requests = weird.frames.filter((f) => f.mode === 0);
    assert.ok(requests.length >= 5, `the raw peer got the requests: ${JSON.stringify(weird.frames)}`);
  });

  test('502: the provider\'s app is down', async (t) => {
    const deadApp = `http://${HOST}:${await freePort()}`;
    const { a, b } = await abMesh(t, { provider: { appUrl: deadApp } });
    const r = await a.call('b', '/echo', { x: 1 });
    assertError(r, 502, 502, 'app down');
    assert.ok((await b.metric('micro_sidecar_app_unreachable_total')) >= 1);
  });

  test('413: a body over --max-body-bytes (2048); under it passes', async (t) => {
    const { a } = await abMesh(t, { consumer: { args: ['--max-body-bytes', '2048'] } });
    const small = await a.call('b', '/echo', { s: 'x'.repeat(1500) });
    assert.equal(small.status, 200, small.text);
    assert.equal(small.body.s.length, 1500);
    const big = await a.call('b', '/echo', { s: 'x'.repeat(4000) });
    assertError(big, 413, 413, 'call body of 4 kB');
    const bigForm = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/echo', data: 'y'.repeat(4000) });
    assertError(bigForm, 413, 413, 'body form of 4 kB');
    const bigPush = await a.push('b', '/echo', { s: 'x'.repeat(4000) });
    assertError(bigPush, 413, 413, 'push of 4 kB');
    // the sidecar still works afterwards
    assert.equal((await a.call('b', '/echo', { after: 1 })).status, 200);
  });

  test('breaker: a failing peer is excluded and the second provider is chosen', async (t) => {
    const registry = await m.startRegistry(t);
    const echoBad = await m.startEcho(t, { name: 'bad' });
    const echoGood = await m.startEcho(t, { name: 'good' });
    const deadPort = await freePort();
    const common = { registryPort: registry.port };
    // b #1: /inspect works, /echo goes to a dead port
    const bBad = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echoBad.url, routes: ['/inspect'], name: 'sidecar b-bad' });
    const rr = await httpJson('POST', `${bBad.api}/v1/routes`, { url: '/echo', target: `http://${HOST}:${deadPort}/echo` });
    assert.equal(rr.status, 201, rr.text);
    const a = await m.startSidecar(t, { ...common, ns: 'a', breakerCooldownMs: 60000 });
    // pin a's discovery cache to b-bad while it is the only provider
    let r = await a.call('b', '/inspect', {});
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.name, 'bad');
    // now b #2, all good
    const bGood = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echoGood.url, routes: ['*'], name: 'sidecar b-good' });
    await m.waitListed(registry, 'b', [bBad.key, bGood.key]);

    // default retries = 1: b-bad fails (app unreachable), the retry excludes it and finds b-good
    r = await a.call('b', '/echo', { k: 1 });
    assert.equal(r.status, 200, `call with one failing provider: ${r.text}`);
    assert.equal(r.body.k, 1);
    assert.equal(await bBad.metric('micro_sidecar_app_unreachable_total'), 1, 'b-bad was tried first');
    assert.equal((await echoGood.stats()).by_url['/echo'], 1, 'b-good answered');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 1, 'b-bad is excluded');
    assert.equal(await a.metric('micro_sidecar_breaker_exclusions_total'), 1);
    assert.equal(await a.metric('micro_sidecar_call_retries_total'), 1);

    // while excluded, b-bad gets nothing: every call goes to b-good
    for (let i = 0; i < 10; i++) {
      r = await a.call('b', '/inspect', { i });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.name, 'good', `call ${i} went to ${r.body.name}`);
    }
    assert.equal((await echoBad.stats()).by_url['/inspect'], 1, 'only the pinning call reached b-bad');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 1);
  });

  test('breaker: all providers fail -> error; cached peer gone -> reset, next call succeeds without the cooldown', async (t) => {
    const registry = await m.startRegistry(t);
    const dead1 = await freePort();
    const dead2 = await freePort();
    const common = { registryPort: registry.port };
    const b1 = await m.startSidecar(t, { ...common, ns: 'b', appUrl: `http://${HOST}:${dead1}`, routes: ['*'], name: 'sidecar b1' });
    const b2 = await m.startSidecar(t, { ...common, ns: 'b', appUrl: `http://${HOST}:${dead2}`, routes: ['*'], name: 'sidecar b2' });
    const a = await m.startSidecar(t, { ...common, ns: 'a', breakerCooldownMs: 60000 });
    await m.waitListed(registry, 'b', [b1.key, b2.key]);

    let r = await a.call('b', '/echo', { n: 1 });
    assertError(r, 502, 502, 'both providers\' apps are down');
    assert.equal(await b1.metric('micro_sidecar_inbound_total'), 1, 'the retry went to the other provider');
    assert.equal(await b2.metric('micro_sidecar_inbound_total'), 1, 'the retry went to the other provider');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 2, 'both excluded');

    // fix b1 (its app comes up on the same port, its sidecar restarts on the same ports) and b2 goes away
    await m.startEcho(t, { port: dead1, name: 'fixed' });
    b2.proc.kill('SIGKILL');
    await b1.proc.stop();
    const b1again = await m.startSidecar(t, {
      ...common,
      ns: 'b',
      appUrl: `http://${HOST}:${dead1}`,
      routes: ['*'],
      meshPort: b1.meshPort,
      apiPort: b1.apiPort,
      name: 'sidecar b1 (restarted)',
    });
    await m.waitListed(registry, 'b', [b1again.key]);
    await waitFor(async () => (await a.metric('micro_sidecar_peer_connections')) === 0, { timeoutMs: 5000, message: 'a saw both connections close' });
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 2, 'both still excluded (cooldown 60 s)');

    // every known provider is excluded: the breaker is reset and the call goes to b1
    const t0 = Date.now();
    r = await a.call('b', '/inspect', { n: 2 }, { 'X-Micro-Retries': '0' });
    assert.equal(r.status, 200, `after the reset: ${r.text}`);
    assert.equal(r.body.name, 'fixed');
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.equal(await a.metric('micro_sidecar_breaker_resets_total'), 1);
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 0);
  });

  test('breaker: all providers fail, then they recover -> next call succeeds through the cached peer', async (t) => {
    const registry = await m.startRegistry(t);
    const dead1 = await freePort();
    const dead2 = await freePort();
    const common = { registryPort: registry.port };
    const b1 = await m.startSidecar(t, { ...common, ns: 'b', appUrl: `http://${HOST}:${dead1}`, routes: ['*'], name: 'sidecar b1' });
    const b2 = await m.startSidecar(t, { ...common, ns: 'b', appUrl: `http://${HOST}:${dead2}`, routes: ['*'], name: 'sidecar b2' });
    const a = await m.startSidecar(t, { ...common, ns: 'a', breakerCooldownMs: 60000 });
    await m.waitListed(registry, 'b', [b1.key, b2.key]);
    const r1 = await a.call('b', '/echo', { n: 1 });
    assertError(r1, 502, 502, 'both down');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 2);
    await m.startEcho(t, { port: dead1, name: 'one' });
    await m.startEcho(t, { port: dead2, name: 'two' });
    const r2 = await a.call('b', '/inspect', { n: 2 }, { 'X-Micro-Retries': '0' });
    assert.equal(r2.status, 200, `no wait for the 60 s cooldown: ${r2.text}`);
    assert.ok(['one', 'two'].includes(r2.body.name));
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 1, 'the peer that answered left the breaker');
  });
});
