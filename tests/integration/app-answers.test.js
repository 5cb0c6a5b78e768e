'use strict';
// What the provider's sidecar does with what its app answers, and what the
// caller's sidecar does with a RESPONSE it cannot read:
//   - a 2xx text answer with bytes that are not UTF-8 reaches the caller at once,
//     the bad bytes as U+FFFD (the frame stays valid JSON); an error answer too;
//   - a RESPONSE frame that is not UTF-8 (a broken peer) closes with 1007 and fails
//     its call at once with 502 instead of waiting out the call's timeout;
//   - app answers with ambiguous framing (RFC 9112 §6: two different
//     Content-Length, Transfer-Encoding other than chunked, TE with CL) are a
//     502 with a clear message, never a guessed body.
// The app is a raw TCP server (lib/rawapp.js) that sends exactly the bytes given.
// Real processes on 127.0.0.1, fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/app-answers.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');
const { startRawApp } = require('./lib/rawapp');

const { h } = m;
const { test } = h;
const HOST = '127.0.0.1';
const CALL_TIMEOUT_MS = 20000;
const AT_ONCE_MS = 3000;

/** registry, raw app (answers by url) behind provider "b", consumer "a". */
async function answersMesh(t, answers) {
  const registry = await m.startRegistry(t);
  const app = await startRawApp(t, (req) => {
    const a = answers[req.target];
    return typeof a === 'function' ? a(req) : a;
  });
  const b = await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: app.url, routes: ['*'] });
  const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, requestTimeoutMs: CALL_TIMEOUT_MS, args: ['--retries', '0'] });
  return { registry, app, a, b };
}

async function timedCall(a, url) {
  const t0 = Date.now();
  const r = await a.call('b', url, {}, {}, { timeoutMs: CALL_TIMEOUT_MS + 5000 });
  return { ...r, ms: Date.now() - t0 };
}

function raw(status, headers, body) {
  return `HTTP/1.1 ${status}\r\n${headers.map((x) => `${x}\r\n`).join('')}\r\n${body}`;
}

describe('micro-sidecar: app answers that are not UTF-8', { skip: m.skipReason() }, () => {
  test('a 2xx text answer with invalid UTF-8 reaches the caller at once, the bad bytes as U+FFFD', async (t) => {
    const bad = 'ok \xff\xfe caf\xc3\xa9 \xc3';
    const { a } = await answersMesh(t, {
      '/text': raw('200 OK', ['Content-Type: text/plain', `Content-Length: ${bad.length}`], bad),
      '/err': raw('500 Oops', ['Content-Type: text/plain', 'Content-Length: 6'], 'bad \xff\xfe'),
    });
    const r = await timedCall(a, '/text');
    assert.equal(r.status, 200, r.text);
    assert.ok(r.ms < AT_ONCE_MS, `answered in ${r.ms} ms`);
    assert.equal(r.body, 'ok \ufffd\ufffd café \ufffd');
    const e = await timedCall(a, '/err');
    assert.equal(e.status, 500, e.text);
    assert.ok(e.ms < AT_ONCE_MS, `answered in ${e.ms} ms`);
    assert.equal(e.body.error, 'bad \ufffd\ufffd');
  });

  test('a RESPONSE frame that is not valid UTF-8 closes the connection with 1007 and fails its call at once with 502', async (t) => {
    const registry = await m.startRegistry(t);
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, requestTimeoutMs: CALL_TIMEOUT_MS, args: ['--retries', '0'] });
    // a broken provider: registered, and connected to a so a's call uses this connection
    const fakePort = await h.freePort();
    const reg = h.rawPeer(HOST, registry.port, [HOST, fakePort, 'broken'], { t });
    await reg.ready();
    const peer = h.rawPeer(HOST, a.meshPort, [HOST, fakePort, 'broken'], { t });
    await peer.ready();
    peer.ws.on('message', (buf) => {
      const f = JSON.parse(buf.toString());
      if (f.mode === 0 && f.twoway) {
        const frame = Buffer.concat([
          Buffer.from(`{"id":${f.id},"mode":1,"twoway":false,"data":{"status":200,"data":"`),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('"}}'),
        ]);
        peer.ws.send(frame, { binary: false });
      }
    });
    const t0 = Date.now();
    const r = await a.call('broken', '/x', {}, {}, { timeoutMs: CALL_TIMEOUT_MS + 5000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 502, r.text);
    assert.ok(ms < AT_ONCE_MS, `answered in ${ms} ms, not after the ${CALL_TIMEOUT_MS} ms timeout`);
    // A text frame that is not UTF-8 is a protocol error (RFC 6455 §8.1): the sidecar
    // closes the connection with 1007, which fails the call it carried at once.
    assert.match(r.body.error, /not a valid frame|connection dropped/, r.text);
    const closed = await peer.waitClosed(3000);
    assert.equal(closed.code, 1007, `closed with 1007 (${JSON.stringify(closed)})`);
  });
});

describe('micro-sidecar: app answers with ambiguous framing are a 502', { skip: m.skipReason() }, () => {
  test('two different Content-Length, Transfer-Encoding: gzip with a length, TE with CL: 502 with a clear message', async (t) => {
    const { a } = await answersMesh(t, {
      '/two-cl': raw('200 OK', ['Content-Type: application/json', 'Content-Length: 9', 'Content-Length: 3'], '{"a":123}'),
      '/gzip-cl': raw('200 OK', ['Content-Type: application/json', 'Transfer-Encoding: gzip', 'Content-Length: 9'], '{"a":123}'),
      '/te-cl': raw('200 OK', ['Content-Type: application/json', 'Transfer-Encoding: chunked', 'Content-Length: 9'], '9\r\n{"a":123}\r\n0\r\n\r\n'),
      '/fine': raw('200 OK', ['Content-Type: application/json', 'Content-Length: 9', 'Content-Length: 9'], '{"a":123}'),
    });
    const expect = {
      '/two-cl': /conflicting Content-Length/,
      '/gzip-cl': /Transfer-Encoding/,
      '/te-cl': /Transfer-Encoding and Content-Length/,
    };
    for (const [url, re] of Object.entries(expect)) {
      const r = await timedCall(a, url);
      assert.equal(r.status, 502, `${url}: ${r.text}`);
      assert.ok(r.ms < AT_ONCE_MS, `${url}: answered in ${r.ms} ms`);
      assert.match(r.body.error, re, `${url}: ${r.text}`);
    }
    // the same length twice is one length
    const ok = await timedCall(a, '/fine');
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.body, { a: 123 });
  });
});
