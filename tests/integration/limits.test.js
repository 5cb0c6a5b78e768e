'use strict';
// The documented count limits nothing else tests (docs/ARCHITECTURE.md, "Limits"):
//   - app connections: at most --app-max-connections to the app; more requests
//     wait in a queue of 4x that, in order, and are served as connections free;
//     beyond the queue they fail at once with 503 "too many requests waiting for
//     the app" (an app that holds its answers shows it);
//   - the send queue of a peer connection (16 x the frame limit on the sidecar;
//     marked todo, see the test):
//     a raw WebSocket peer sends requests and stops reading; the sidecar stops
//     reading it (requests sent later do not reach the app), its memory stays
//     bounded while the answers would be many times the queue, it keeps serving
//     others, and when the peer reads again every request it sent has its answer.
// Real processes on 127.0.0.1, fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/limits.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { describe } = require('node:test');
const m = require('./lib/mesh');
const { startRawApp, ok, parseHead } = require('./lib/rawapp');

const { h } = m;
const { test, waitFor } = h;
const HOST = '127.0.0.1';

/**
 * An app that holds every request until the test answers it: requests in the
 * order they arrived ({n, sock}), connections open now and at most.
 */
async function startHoldingApp(t) {
  const app = { requests: [], open: 0, maxOpen: 0, accepted: 0 };
  const socks = new Set();
  const server = net.createServer((sock) => {
    app.accepted++;
    app.open++;
    app.maxOpen = Math.max(app.maxOpen, app.open);
    socks.add(sock);
    sock.on('close', () => {
      app.open--;
      socks.delete(sock);
    });
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const req = parseHead(buf.slice(0, end));
        const len = Number(req.headers['content-length'] || 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.slice(end + 4, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        app.requests.push({ n: JSON.parse(body).n, sock, answered: false });
      }
    });
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  app.url = `http://${HOST}:${server.address().port}`;
  /** Answers the request that arrived i-th (0-based) with {n}. */
  app.answer = (i) => {
    const r = app.requests[i];
    r.answered = true;
    r.sock.write(ok(JSON.stringify({ n: r.n })));
  };
  t.after(() => {
    server.close();
    for (const s of socks) s.destroy();
  });
  return app;
}

function rssBytes(pid) {
  const m2 = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return Number(m2[1]) * 1024;
}

describe('limits: the app-connection wait queue', { skip: m.skipReason() }, () => {
  test('--app-max-connections 2: 2 at the app, 8 (4x) wait in order and are served as connections free, the 11th is a 503 at once', async (t) => {
    const MAXC = 2;
    const QUEUE = 4 * MAXC; // docs/ARCHITECTURE.md: "queue 4x that"
    const registry = await m.startRegistry(t);
    const app = await startHoldingApp(t);
    const b = await m.startSidecar(t, {
      ns: 'b', registryPort: registry.port, appUrl: app.url, routes: ['*'],
      args: ['--app-max-connections', String(MAXC)],
    });
    const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, breakerCooldownMs: 0 });
    const noRetry = { 'x-micro-retries': '0' };

    // one call at a time, each seen (at the app, or waiting at b) before the next,
    // so the order they wait in is known
    const calls = [];
    for (let n = 1; n <= MAXC + QUEUE; n++) {
      calls.push(a.call('b', '/work', { n }, noRetry, { timeoutMs: 30000 }));
      await waitFor(async () => (await b.metric('micro_sidecar_inbound_in_flight')) === n, {
        timeoutMs: 10000, message: `call ${n} reached sidecar b`,
      });
      if (n <= MAXC) await waitFor(() => app.requests.length === n, { message: `call ${n} reached the app` });
    }
    assert.equal(app.requests.length, MAXC, 'only --app-max-connections requests are at the app');
    assert.equal(app.maxOpen, MAXC);
    assert.equal(await b.metric('micro_sidecar_app_connections'), MAXC);

    // the queue is full: one more fails at once, with a clear message
    const t0 = Date.now();
    const over = await a.call('b', '/work', { n: 99 }, noRetry);
    assert.equal(over.status, 503, over.text);
    assert.match(over.text, /too many requests waiting for the app/);
    assert.ok(Date.now() - t0 < 2000, `the 503 took ${Date.now() - t0} ms`);
    assert.equal(app.requests.length, MAXC);

    // answer the oldest one at a time: each freed connection takes the next in line
    for (let i = 0; i < MAXC + QUEUE; i++) {
      app.answer(i);
      const want = Math.min(i + 1 + MAXC, MAXC + QUEUE);
      await waitFor(() => app.requests.length === want, { timeoutMs: 5000, message: `${want} requests at the app` });
    }
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { n: i + 1 });
    });
    assert.deepEqual(app.requests.map((r) => r.n), Array.from({ length: MAXC + QUEUE }, (_, i) => i + 1),
      'the waiting requests were served in the order they came');
    assert.ok(app.maxOpen <= MAXC, `at most ${MAXC} app connections at once (saw ${app.maxOpen})`);
    assert.equal(await b.metric('micro_sidecar_inbound_in_flight'), 0);
  });
});

describe('limits: the send queue of a peer that stops reading', { skip: m.skipReason() }, () => {
  // todo: today the sidecar stops reading the peer, but the answers of every
  // request it had already read are held in memory (36 MB of app answers grew
  // its RSS by ~45 MB against a 2 MiB queue): the count limits alone do not
  // bound it. The global byte budgets for these queues are meant to; this test
  // is then expected to pass as it is.
  test('the sidecar stops reading the peer, memory stays bounded, others are served, and every request is answered once the peer reads', {
    todo: 'memory is not bounded by the send queue yet (answers of requests already read are all held)',
  }, async (t) => {
    // --max-body-bytes 1024: frames up to 1024 + 128 KiB, so the send queue is
    // 16 x 132,096 bytes = 2 MiB; rx stops at half of it
    const MAX_BODY = 1024;
    const QUEUE = 16 * (MAX_BODY + 131072);
    const big = JSON.stringify('x'.repeat(60000)); // an app answer within body + 64 KiB
    const registry = await m.startRegistry(t);
    const app = await startRawApp(t, () => ok(big));
    const b = await m.startSidecar(t, {
      ns: 'b', registryPort: registry.port, appUrl: app.url, routes: ['*'],
      args: ['--max-body-bytes', String(MAX_BODY)],
    });
    const peer = h.rawPeer(HOST, b.meshPort, `/${HOST}/${await h.freePort()}/slowreader`, { t });
    await peer.ready();
    const rss0 = rssBytes(b.proc.pid);
    peer.ws._socket.pause(); // stop reading: the kernel buffers fill, then the sidecar's queue

    // 600 tiny requests whose answers are 60 KB each: 36 MB, ~17x the queue
    const N = 600;
    for (let i = 0; i < N; i++) peer.sendRaw(JSON.stringify({ id: i, twoway: true, data: { url: '/big', data: i }, mode: 0 }));
    // the sidecar read them, the app answered every one it got, the answers
    // went to the kernel and the queue as far as they fit
    await waitFor(async () => app.requests.length > 0 && (await b.metric('micro_sidecar_inbound_in_flight')) === 0, {
      timeoutMs: 20000, message: 'the app answered what it got',
    });
    const seenByApp = app.requests.length;
    const framesIn = await b.metric('micro_sidecar_frames_in_total');

    // now more requests: the sidecar does not read them while the queue is over half
    const M = 50;
    for (let i = N; i < N + M; i++) peer.sendRaw(JSON.stringify({ id: i, twoway: true, data: { url: '/big', data: i }, mode: 0 }));
    const until = Date.now() + 1000; // a window in which nothing may happen
    while (Date.now() < until) {
      assert.equal(await b.metric('micro_sidecar_frames_in_total'), framesIn, 'the sidecar read a peer it cannot answer');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(app.requests.length, seenByApp);

    // memory: the queue and what is in flight, not the 36 MB the peer asked for
    const grown = rssBytes(b.proc.pid) - rss0;
    assert.ok(grown < 4 * QUEUE, `sidecar RSS grew ${grown} bytes (send queue ${QUEUE})`);

    // others are not affected
    const health = await b.get('/-/health');
    assert.equal(health.status, 200);

    // the peer reads again: every request it sent gets exactly one answer
    peer.ws._socket.resume();
    await waitFor(() => peer.frames.filter((f) => f.mode === 1).length >= N + M, {
      timeoutMs: 30000, message: `${N + M} RESPONSEs (got ${peer.frames.filter((f) => f.mode === 1).length})`,
    });
    const ids = new Set();
    let ok200 = 0;
    for (const f of peer.frames.filter((x) => x.mode === 1)) {
      assert.ok(!ids.has(f.id), `two answers for request ${f.id}`);
      ids.add(f.id);
      if (f.data.status === 200) ok200++;
      else assert.equal(typeof f.data.message, 'string', `a failed answer says why: ${JSON.stringify(f.data)}`);
    }
    assert.equal(ids.size, N + M);
    assert.ok(ok200 > 0);
  });
});
