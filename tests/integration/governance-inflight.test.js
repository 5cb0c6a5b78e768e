'use strict';
// micro-sidecar traffic governance: in-flight limits.
//   --namespace-concurrency K  the (K+1)th concurrent outbound call to one namespace
//                              gets 503 at once (other namespaces are not affected);
//   --connection-inflight K    per peer connection and direction: inbound requests
//                              beyond K on one connection get a 503 RESPONSE, and a
//                              caller does not send more than K on one connection.
// Slow calls use micro-echo's /slow/<ms>. Real processes on 127.0.0.1, fresh ports.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/governance-inflight.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');
const concurrent = m.concurrentCalls;

const { h } = m;
const { test, waitFor } = h;

const SLOW = 1000;

async function appCount(echo, url) {
  return (await echo.stats()).by_url[url] || 0;
}

/** Wait until the app is serving exactly `n` requests (so they are really in flight). */
function appInflight(echo, n) {
  return waitFor(async () => (await echo.stats()).inflight === n + 1 /* our own GET /stats */, {
    timeoutMs: 3000,
    intervalMs: 10,
    message: `${n} requests in flight at the app`,
  });
}

function assert503(r, re, what) {
  assert.equal(r.status, 503, `${what}: ${r.text}`);
  assert.equal(r.body.status, 503, `${what}: ${r.text}`);
  assert.match(r.body.error, re, `${what}: ${r.text}`);
}

describe('micro-sidecar: in-flight limits', { skip: m.skipReason() }, () => {
  test('--namespace-concurrency 2: a 3rd concurrent call to b gets 503 at once; c is not affected; slots come back', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [
        { ns: 'b', echoName: 'echo-b' },
        { ns: 'c', echoName: 'echo-c' },
      ],
      consumers: [{ ns: 'a', args: ['--namespace-concurrency', '2', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const [pb, pc] = mesh.providers;

    const slow = concurrent(a, 'b', `/slow/${SLOW}`, 2);
    await appInflight(pb.echo, 2);
    const t0 = Date.now();
    const third = await a.call('b', `/slow/${SLOW}`, { i: 3 });
    const thirdMs = Date.now() - t0;
    assert503(third, /in flight/i, 'the 3rd concurrent call to b');
    assert.match(third.body.error, /\bb\b/, 'the message names the namespace');
    assert.ok(thirdMs < SLOW / 2, `refused at once (${thirdMs} ms), not after a slot freed`);

    // another namespace has its own slots, also while b is full
    const toC = await concurrent(a, 'c', '/slow/100', 2);
    assert.deepEqual(toC.map((r) => r.status), [200, 200], 'c is not limited by b\'s calls');

    const done = await slow;
    assert.deepEqual(done.map((r) => r.status), [200, 200], 'the first two completed');
    assert.equal(await appCount(pb.echo, `/slow/${SLOW}`), 2, 'the refused call never reached the provider');
    assert.equal(await a.metric('micro_sidecar_concurrency_limited_total'), 1);
    assert.equal(await a.metric('micro_sidecar_calls_in_flight'), 0);

    // the slots are free again
    const again = await concurrent(a, 'b', '/slow/200', 2);
    assert.deepEqual(again.map((r) => r.status), [200, 200]);
  });

  test('--namespace-concurrency 1: sequential calls and pushes each give their slot back', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: ['--namespace-concurrency', '1', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    for (let i = 0; i < 5; i++) {
      const r = await a.call('b', '/echo', { i });
      assert.equal(r.status, 200, `call ${i + 1}: ${r.text}`);
      assert.equal((await a.push('b', '/echo', { i })).status, 202, `push ${i + 1}`);
    }
    await waitFor(async () => (await appCount(mesh.providers[0].echo, '/echo')) === 10, { message: 'all 10 reached the app' });
  });

  test('--connection-inflight 2 on the provider: requests beyond 2 on one connection get 503; another connection has its own 2', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', args: ['--connection-inflight', '2'] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b, echo } = mesh.providers[0];

    // through the caller's sidecar (one connection a -> b)
    const rs = await concurrent(a, 'b', `/slow/${SLOW}`, 4);
    const ok = rs.filter((r) => r.status === 200);
    const refused = rs.filter((r) => r.status !== 200);
    assert.equal(ok.length, 2, `2 served: ${rs.map((r) => `${r.status} ${r.text}`).join(' | ')}`);
    for (const r of refused) {
      assert503(r, /in flight/i, 'over the connection limit');
      assert.ok(r.ms < SLOW / 2, `refused at once (${r.ms} ms)`);
    }
    assert.equal(await appCount(echo, `/slow/${SLOW}`), 2, 'the app saw the 2 accepted requests only');
    assert.equal(await b.metric('micro_sidecar_concurrency_limited_total'), 2);

    // two raw peers, one connection each: 2 in flight on each is fine, a 3rd on one is refused
    const peers = [];
    for (let i = 0; i < 2; i++) {
      const p = h.rawPeer(m.HOST, b.meshPort, [m.HOST, await h.freePort(), `raw${i}`], { t });
      await p.ready();
      peers.push(p);
    }
    const url = `/slow/${SLOW}`;
    const pending = peers.flatMap((p) => [p.request(url, { a: 1 }, { timeout: 5000 }), p.request(url, { a: 2 }, { timeout: 5000 })]);
    await appInflight(echo, 4);
    const t0 = Date.now();
    const extra = await peers[0].request(url, { a: 3 }, { timeout: 5000 });
    assert.equal(extra.status, 503, `the 3rd on one connection: ${JSON.stringify(extra)}`);
    assert.equal(extra.data, null);
    assert.match(extra.message, /in flight/i);
    assert.ok(Date.now() - t0 < SLOW / 2, 'answered at once');
    const answers = await Promise.all(pending);
    assert.deepEqual(answers.map((x) => x.status), [200, 200, 200, 200], '2 per connection, 4 in all, were served');

    // finished requests free their slots
    const after = await peers[0].request('/echo', { after: 1 });
    assert.equal(after.status, 200, JSON.stringify(after));
  });

  test('--connection-inflight 2 on the caller: it does not send a 3rd request on the connection (503 locally)', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: ['--connection-inflight', '2', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b, echo } = mesh.providers[0];
    assert.equal((await a.call('b', '/echo', {})).status, 200, 'connected');
    const rs = await concurrent(a, 'b', `/slow/${SLOW}`, 3);
    assert.equal(rs.filter((r) => r.status === 200).length, 2, rs.map((r) => `${r.status} ${r.text}`).join(' | '));
    const refused = rs.filter((r) => r.status !== 200);
    assert.equal(refused.length, 1);
    assert.equal(refused[0].status, 503, refused[0].text);
    assert.ok(refused[0].ms < SLOW / 2, `refused at once (${refused[0].ms} ms)`);
    assert.equal(await appCount(echo, `/slow/${SLOW}`), 2);
    assert.equal(await b.metric('micro_sidecar_inbound_total'), 3, 'the provider got the warm-up and the 2 accepted requests only');
  });
});
