'use strict';
// Request smuggling and hostile numbers on the way into the app:
//   - a call url is one path (and query) of visible ASCII: CR/LF, spaces, controls,
//     encoded controls (%0d%0a, %00) and dot segments (literal or %2e-encoded) are
//     refused with 400 where the url enters (API path form, API body form, a raw
//     mesh REQUEST), and nothing but the real request reaches the app (a raw TCP
//     app records every byte it received);
//   - route targets (POST /v1/routes, --route, --app-url): no CR/LF, no empty host,
//     ports 1..65535 only;
//   - the local API refuses conflicting Content-Length and Content-Length with
//     Transfer-Encoding (400) and closes the connection, so a pipelined request
//     smuggled behind it is never served;
//   - a body of exactly --max-body-bytes round-trips; a peer's "retryAfter":1e308
//     gives a sane Retry-After; {"rps":1e400} is refused and GET /v1/routes stays
//     valid JSON; X-Micro-Retries is capped (10).
// Real processes on 127.0.0.1, fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/security-smuggling.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');
const { startRawApp, rawExchange, statusLines } = require('./lib/rawapp');

const { h, withEnv } = m;
const { test, waitFor, httpJson, spawnProc } = h;
const HOST = '127.0.0.1';
const APP_TOKEN = 'app-secret-smuggle';

/** registry, a raw app behind provider sidecar "b" (route *), consumer sidecar "a". */
async function smugglingMesh(t, { providerArgs = [], consumerArgs = [] } = {}) {
  const registry = await m.startRegistry(t);
  const app = await startRawApp(t);
  const b = await withEnv({ MICRO_APP_TOKEN: APP_TOKEN }, () =>
    m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: app.url, routes: ['*'], args: providerArgs }),
  );
  const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, args: consumerArgs });
  return { registry, app, a, b };
}

/** A raw HTTP/1.1 request to the API; resolves {text, closed, statuses}. */
async function rawApi(sc, bytes, opts) {
  const r = await rawExchange(sc.apiPort, bytes, opts);
  return { ...r, statuses: statusLines(r.text) };
}

function rawPost(path, body, extra = '') {
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n${extra}\r\n${body}`;
}

describe('micro-sidecar: call urls cannot smuggle a request into the app', { skip: m.skipReason() }, () => {
  test('CR/LF, encoded controls and dot segments are refused with 400 on the API (path and body form) and on the mesh; nothing else reaches the app', async (t) => {
    const { app, a, b } = await smugglingMesh(t);
    const smuggle = `/x HTTP/1.1\r\nHost: app\r\nX-Micro-Token: ${APP_TOKEN}\r\n\r\nDELETE /admin/users/42`;

    // legitimate calls first: percent-encoding reaches the app as it was sent,
    // path and query, in both forms
    const okCall = await a.call('b', '/orders/a%20b%2Fc?x=1&y=%2F', { n: 1 });
    assert.equal(okCall.status, 200, okCall.text);
    const okBody = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url: '/orders/a%20b?q=%2Fx', data: {} });
    assert.equal(okBody.status, 200, okBody.text);
    await waitFor(() => app.requests.length === 2, { message: 'the app got the legitimate calls' });
    assert.equal(app.requests[0].requestLine, 'POST /orders/a%20b%2Fc?x=1&y=%2F HTTP/1.1');
    assert.equal(app.requests[1].requestLine, 'POST /orders/a%20b?q=%2Fx HTTP/1.1');

    // body form: the url is a JSON string, so it can hold raw CR/LF
    for (const url of [smuggle, '/a\nb', '/a b', '/a\u0000b', '/a/../admin', '/a/%2e%2e/admin', '/a%0d%0aX:%20y', '/caf\u00e9', '/a#frag']) {
      const r = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'b', url, data: {} });
      assert.equal(r.status, 400, `body form ${JSON.stringify(url)}: ${r.text}`);
      assert.match(r.body.error, /url/, r.text);
    }
    // path form: escapes stay escapes, so an encoded CR/LF or dot segment is refused
    for (const p of [
      '/x%0d%0aDELETE%20/admin/users/42%20HTTP/1.1',
      '/x%0aY',
      '/x%00y',
      '/a/%2e%2e/admin',
      '/a/.%2E/admin',
      '/a/..%2fadmin',
      '/x?q=%0d%0aX:%20y',
      `/x?${'q'.repeat(1100)}`,
    ]) {
      const r = await rawApi(a, rawPost(`/v1/call/b${p}`, '{}', 'Connection: close\r\n'));
      assert.deepEqual(r.statuses, [400], `path form ${p}: ${r.text}`);
      assert.match(r.text, /url/, r.text);
    }
    // the same on the mesh: a raw peer sends the REQUEST to b's mesh port itself
    const peer = h.rawPeer(HOST, b.meshPort, [HOST, await h.freePort(), 'intruder'], { t });
    await peer.ready();
    for (const url of [smuggle, '/x%0d%0aDELETE%20/admin', '/a/../admin', '/a\u0085b']) {
      const res = await peer.request(url, { n: 2 }, { timeout: 3000 });
      assert.equal(res.status, 400, `mesh REQUEST ${JSON.stringify(url)}: ${JSON.stringify(res)}`);
      assert.match(res.message, /url/, JSON.stringify(res));
    }
    // a legitimate mesh REQUEST still works on that connection
    const fine = await peer.request('/fine', { n: 3 }, { timeout: 3000 });
    assert.equal(fine.status, 200, JSON.stringify(fine));
    await waitFor(() => app.requests.length === 3, { message: 'the app got the third legitimate call' });

    // exactly the three legitimate requests reached the app, and nothing else
    assert.deepEqual(app.requests.map((r) => r.requestLine), [
      'POST /orders/a%20b%2Fc?x=1&y=%2F HTTP/1.1',
      'POST /orders/a%20b?q=%2Fx HTTP/1.1',
      'POST /fine HTTP/1.1',
    ]);
    assert.doesNotMatch(app.received, /DELETE|admin/, 'no smuggled bytes reached the app');
  });

  test('route targets: CR/LF, an empty host and ports 0 or > 65535 are refused by POST /v1/routes, --route and --app-url', async (t) => {
    const registry = await m.startRegistry(t);
    const sc = await m.startSidecar(t, { ns: 'r', registryPort: registry.port });
    const bad = [
      { url: '/r1', target: 'http://127.0.0.1:8080/x\r\nX-Injected: 1' },
      { url: '/r2', target: 'http://127.0.0.1:8080/x HTTP/1.1' },
      { url: '/r3', target: 'http://:8080/x' },
      { url: '/r4', target: 'http:///x' },
      { url: '/r5', target: 'http://127.0.0.1:0/x' },
      { url: '/r6', target: 'http://127.0.0.1:65536/x' },
      { url: '/r7', target: 'http://127.0.0.1:99999999999/x' },
      { url: '/r8', target: 'http://127.0.0.1:8080/a/../admin' },
      { url: '/r9', target: 'http://127.0.0.1:8080/a%0d%0a' },
      { url: '/a/../b' },
      { url: '/a/%2e%2e/b' },
      { url: '/a%0ab' },
      { url: '/a\r\nb' },
    ];
    for (const body of bad) {
      const r = await httpJson('POST', `${sc.api}/v1/routes`, body);
      assert.equal(r.status, 400, `POST /v1/routes ${JSON.stringify(body)}: ${r.text}`);
    }
    const routes = await sc.get('/v1/routes');
    assert.deepEqual(routes.body, [], 'no refused route was added');
    const good = await httpJson('POST', `${sc.api}/v1/routes`, { url: '/ok', target: 'http://127.0.0.1:65535/base%20x' });
    assert.equal(good.status, 201, good.text);

    // the same rules for the flags: exit 2 naming the flag
    const flags = [
      ['--route', '/a\r\nb'],
      ['--route', '/a/../b'],
      ['--route', '/a%00'],
      ['--app-url', 'http://127.0.0.1:0'],
      ['--app-url', 'http://127.0.0.1:65536'],
      ['--app-url', 'http://:8080'],
      ['--app-url', 'http://127.0.0.1:8080/a/../b'],
      ['--app-url', 'http://127.0.0.1:8080/a%0d%0a'],
    ];
    for (const [flag, value] of flags) {
      const p = spawnProc(h.sidecarBin(), ['--namespace', 'x', flag, value], { t, name: `sidecar ${flag}` });
      await waitFor(() => p.exited, { message: `${flag} ${JSON.stringify(value)} makes the sidecar exit` });
      assert.equal(p.exitCode, 2, `${flag} ${JSON.stringify(value)}: ${p.stderr}`);
      assert.match(p.stderr, new RegExp(flag.slice(2)), p.stderr);
    }
  });
});

describe('micro-sidecar: the local API refuses ambiguous request framing', { skip: m.skipReason() }, () => {
  test('conflicting Content-Length and Content-Length + Transfer-Encoding get 400 and a closed connection; the pipelined request behind them is never served', async (t) => {
    const { a } = await smugglingMesh(t);
    const smuggled = rawPost('/v1/routes', '{"url":"/smuggled"}');
    const cases = {
      'two different Content-Length': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\nContent-Length: 0\r\n\r\n{"url":"/cl"}${smuggled}`,
      'Content-Length then Transfer-Encoding': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      'Transfer-Encoding then Content-Length': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}`,
      'Transfer-Encoding other than chunked': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n${smuggled}`,
      'Transfer-Encoding twice': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      'Content-Length with a list': `POST /v1/routes HTTP/1.1\r\nHost: x\r\nContent-Length: 13, 0\r\n\r\n{"url":"/cl"}${smuggled}`,
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const r = await rawApi(a, bytes);
      // (a malformed value is refused by libmicrohttpd itself, with its own 400 page)
      assert.ok(r.statuses.length >= 1 && r.statuses.every((s) => s === 400), `${what}: only 400s: ${r.text}`);
      assert.equal(r.closed, true, `${what}: the connection was closed after the 400`);
    }
    const routes = await a.get('/v1/routes');
    assert.equal(routes.status, 200);
    assert.deepEqual(routes.body, [], `nothing smuggled was served: ${routes.text}`);
    // an ordinary pipelined pair is still served
    const two = await rawApi(a, rawPost('/v1/routes', '{"url":"/one"}') + rawPost('/v1/routes', '{"url":"/two"}', 'Connection: close\r\n'));
    assert.deepEqual(two.statuses, [201, 201], two.text);
    // and so is a chunked one
    const chunked = await rawApi(a, 'POST /v1/routes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\n{"url":"/three"}\r\n0\r\n\r\n');
    assert.deepEqual(chunked.statuses, [201], chunked.text);
  });
});

describe('micro-sidecar: limits and numbers from peers and the app', { skip: m.skipReason() }, () => {
  test('a body of exactly --max-body-bytes round-trips through two sidecars and an echo app', async (t) => {
    const { providers, consumers } = await m.startMesh(t, {
      providers: [{ ns: 'big' }],
      consumers: [{ ns: 'caller' }],
    });
    const [a] = consumers;
    const limit = 1048576;
    const filler = 'x'.repeat(limit - '{"pad":""}'.length);
    const body = `{"pad":"${filler}"}`;
    assert.equal(Buffer.byteLength(body), limit);
    const r = await a.call('big', '/echo', body, {}, { timeoutMs: 20000 });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.body.pad.length, filler.length);
    assert.equal(typeof r.body._correlationId, 'string');
    // one byte more is the API's 413, as documented
    const over = await a.call('big', '/echo', `${body} `, {}, { timeoutMs: 20000 });
    assert.equal(over.status, 413, over.text.slice(0, 300));
    assert.equal(await providers[0].sidecar.metric('micro_sidecar_inbound_failed_total'), 0);
  });

  test('a peer RESPONSE with "retryAfter":1e308 (or negative, or huge) gives a sane Retry-After', async (t) => {
    const registry = await m.startRegistry(t);
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, args: ['--retries', '0'] });
    // the fake provider: registered with the registry, and connected to a, so that
    // a's call goes over this very connection (one connection per pair)
    const fakePort = await h.freePort();
    const reg = h.rawPeer(HOST, registry.port, [HOST, fakePort, 'rl'], { t });
    await reg.ready();
    const peer = h.rawPeer(HOST, a.meshPort, [HOST, fakePort, 'rl'], { t });
    await peer.ready();
    let retryAfter = '1e308';
    peer.ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.mode === 0 && f.twoway) {
        peer.ws.send(`{"id":${f.id},"mode":1,"twoway":false,"data":{"status":429,"data":null,"message":"slow down","retryAfter":${retryAfter}}}`);
      }
    });
    for (const v of ['1e308', '1e400', '-5', '9007199254740993', '0.2']) {
      retryAfter = v;
      const r = await a.call('rl', '/x', {});
      assert.equal(r.status, 429, `retryAfter ${v}: ${r.text}`);
      const ra = r.headers['retry-after'];
      assert.match(ra, /^[0-9]+$/, `retryAfter ${v}: Retry-After ${ra}`);
      assert.ok(Number(ra) >= 1 && Number(ra) <= 86400, `retryAfter ${v}: Retry-After ${ra} within 1..86400`);
    }
  });

  test('{"rps":1e400} is refused and GET /v1/routes stays valid JSON', async (t) => {
    const registry = await m.startRegistry(t);
    const sc = await m.startSidecar(t, { ns: 'r', registryPort: registry.port });
    for (const body of ['{"url":"/r","rps":1e400}', '{"url":"/r","rps":-1e400}', '{"url":"/r","rps":1,"burst":1e400}', '{"url":"/r","rps":1e300}']) {
      const r = await httpJson('POST', `${sc.api}/v1/routes`, body);
      assert.equal(r.status, 400, `${body}: ${r.text}`);
    }
    const ok = await httpJson('POST', `${sc.api}/v1/routes`, '{"url":"/fine","rps":2.5,"burst":3}');
    assert.equal(ok.status, 201, ok.text);
    const list = await sc.get('/v1/routes');
    assert.equal(list.status, 200);
    assert.equal(typeof list.body, 'object', `valid JSON: ${list.text}`);
    assert.deepEqual(list.body.map((r) => r.url), ['/fine'], list.text);
  });

  test('X-Micro-Retries above 10 (and "retries" above 10) is a 400; 10 is accepted', async (t) => {
    const registry = await m.startRegistry(t);
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, requestTimeoutMs: 2000 });
    const r100 = await a.call('nobody', '/x', {}, { 'X-Micro-Retries': '100' });
    assert.equal(r100.status, 400, r100.text);
    assert.match(r100.body.error, /X-Micro-Retries.*10/, r100.text);
    const r11 = await httpJson('POST', `${a.api}/v1/call`, { namespace: 'nobody', url: '/x', retries: 11 });
    assert.equal(r11.status, 400, r11.text);
    assert.equal(await a.metric('micro_sidecar_calls_total'), 0, 'the refused calls were not started');
    const r10 = await a.call('nobody', '/x', {}, { 'X-Micro-Retries': '10' });
    assert.equal(r10.status, 503, `10 retries are allowed (nobody serves the namespace): ${r10.text}`);

    // retries back off: 3 retries against an app that always fails wait at least
    // 5 + 10 + 20 ms (the lower ends of the jittered 10/20/40 ms delays)
    const app = await startRawApp(t, () => 'HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"error":"no!"}');
    await m.startSidecar(t, { ns: 'failing', registryPort: registry.port, appUrl: app.url, routes: ['*'] });
    const t0 = Date.now();
    const r3 = await a.call('failing', '/x', {}, { 'X-Micro-Retries': '3' });
    const ms = Date.now() - t0;
    assert.equal(r3.status, 500, r3.text);
    assert.equal(app.requests.length, 4, 'one attempt and three retries');
    assert.ok(ms >= 35, `the retries backed off (${ms} ms)`);
  });
});
