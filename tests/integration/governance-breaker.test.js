'use strict';
// micro-sidecar traffic governance: the circuit breaker.
//   --breaker-policy consecutive: per peer CLOSED -> OPEN after --breaker-failures
//     failures in a row, OPEN -> HALF_OPEN after --breaker-reset-ms, where exactly one
//     trial call goes through: success closes, failure re-opens. With every instance
//     of a namespace open a call fails fast with 503 and never reaches a provider.
//   --breaker-policy reference (the default): docs/PROTOCOL.md §5.3, any failure excludes the
//     peer for --breaker-cooldown-ms; all excluded -> clear and look up again.
// Real processes on 127.0.0.1 (registry, micro-echo apps, sidecars), fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/governance-breaker.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h } = m;
const { test, waitFor, httpJson } = h;

function consecutive(failures, resetMs) {
  return ['--breaker-policy', 'consecutive', '--breaker-failures', String(failures), '--breaker-reset-ms', String(resetMs)];
}

/** The breaker gauges of a sidecar: {open, half}. */
async function breakerState(sc) {
  const text = await sc.metrics();
  return {
    open: m.metricValue(text, 'micro_sidecar_breaker_open'),
    half: m.metricValue(text, 'micro_sidecar_breaker_half_open'),
  };
}

async function byUrl(echo, url) {
  return (await echo.stats()).by_url[url] || 0;
}

/** What the app was asked, per url, leaving out our own GET /stats. */
async function appCalls(echo) {
  const { '/stats': _, ...rest } = (await echo.stats()).by_url;
  return rest;
}

/** A call through the consumer's API, with its latency. */
async function timedCall(sc, ns, url, body = { x: 1 }, headers = {}) {
  const t0 = Date.now();
  const r = await sc.call(ns, url, body, headers);
  r.ms = Date.now() - t0;
  return r;
}

function assertCircuitOpen(r, what = '') {
  assert.equal(r.status, 503, `${what}: HTTP status; body: ${r.text}`);
  assert.equal(r.body.status, 503, `${what}: status in the body: ${r.text}`);
  assert.match(r.body.error, /circuit/i, `${what}: the message says the circuit is open: ${r.text}`);
  assert.match(r.body.error, /open/i, `${what}: the message says the circuit is open: ${r.text}`);
}

/** A route on a provider sidecar with an explicit target (POST /v1/routes). */
async function addRoute(sc, url, target) {
  const r = await httpJson('POST', `${sc.api}/v1/routes`, { url, target });
  assert.equal(r.status, 201, `POST /v1/routes ${url} -> ${target}: ${r.text}`);
}

/**
 * Namespace `b` with instance b1 only; consumer `a` calls it once so that its
 * discovery cache holds b1; then instance b2 joins. Route /flaky answers 500 on b1
 * (echo1 /status/500) and `flaky2` on b2 (default: echo2 /echo, a success).
 */
async function twoInstances(t, consumerArgs, { flaky2 = '/echo' } = {}) {
  const registry = await m.startRegistry(t);
  const echo1 = await m.startEcho(t, { name: 'echo-b1' });
  const echo2 = await m.startEcho(t, { name: 'echo-b2' });
  const b1 = await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: echo1.url, routes: ['*'], name: 'sidecar b1' });
  await addRoute(b1, '/flaky', `${echo1.url}/status/500`);
  const a = await m.startSidecar(t, { ns: 'a', registryPort: registry.port, args: consumerArgs, name: 'sidecar a' });
  const warm = await a.call('b', '/echo', { warm: 1 });
  assert.equal(warm.status, 200, `a -> b1 warm-up: ${warm.text}`);
  const b2 = await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: echo2.url, routes: ['*'], name: 'sidecar b2' });
  await addRoute(b2, '/flaky', `${echo2.url}${flaky2}`);
  await m.waitListed(registry, 'b', [b1.key, b2.key]);
  return { registry, a, b1, b2, echo1, echo2 };
}

describe('micro-sidecar: circuit breaker (consecutive policy)', { skip: m.skipReason() }, () => {
  test('CLOSED until N failures in a row (a success resets the count), then OPEN: 503 at once, the provider never sees the call', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: [...consecutive(3, 60000), '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const echo = mesh.providers[0].echo;

    for (let i = 0; i < 2; i++) {
      const r = await a.call('b', '/status/500', {});
      assert.equal(r.status, 500, `failure ${i + 1} is passed through: ${r.text}`);
    }
    assert.deepEqual(await breakerState(a), { open: 0, half: 0 }, 'closed after 2 of 3 failures');
    const ok = await a.call('b', '/echo', { n: 1 });
    assert.equal(ok.status, 200, `a success in between: ${ok.text}`);
    for (let i = 0; i < 2; i++) {
      const r = await a.call('b', '/status/500', {});
      assert.equal(r.status, 500, `failure ${i + 1} after the success: ${r.text}`);
    }
    assert.deepEqual(await breakerState(a), { open: 0, half: 0 }, 'still closed: the success reset the count (2 + 2 failures, not 4 in a row)');
    assert.equal(await byUrl(echo, '/status/500'), 4, 'every call so far reached the app');

    const third = await a.call('b', '/status/500', {});
    assert.equal(third.status, 500, `the 3rd failure in a row still reached the app: ${third.text}`);
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 }, 'open after 3 failures in a row');
    assert.match(a.log, /circuit opened/, 'the opening is logged');

    for (let i = 0; i < 5; i++) {
      const r = await timedCall(a, 'b', '/echo', { n: i });
      assertCircuitOpen(r, `call ${i + 1} while open`);
      assert.ok(r.ms < 500, `call ${i + 1} failed fast (${r.ms} ms)`);
    }
    const stats = await echo.stats();
    assert.equal(stats.by_url['/status/500'], 5, 'no more failures reached the app');
    assert.equal(stats.by_url['/echo'], 1, 'none of the calls made while open reached the app');
    assert.equal(await a.metric('micro_sidecar_breaker_exclusions_total'), 1, 'opened once');
    assert.equal(await a.metric('micro_sidecar_breaker_resets_total'), 0, 'an open circuit is not cleared by the all-excluded reset');
  });

  test('OPEN -> HALF_OPEN after --breaker-reset-ms; exactly one trial call goes through and its success closes the circuit', async (t) => {
    const resetMs = 800;
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: [...consecutive(2, resetMs), '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const echo = mesh.providers[0].echo;

    assert.equal((await a.call('b', '/status/502', {})).status, 502);
    const second = await a.call('b', '/status/503', {});
    assert.equal(second.status, 503, second.text);
    const openedAt = Date.now();
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 });
    assertCircuitOpen(await a.call('b', '/echo', {}), 'right after opening');

    // stays OPEN for the reset time, then HALF_OPEN (without any call)
    let halfAt = 0;
    await waitFor(
      async () => {
        const s = await breakerState(a);
        if (s.half === 1) {
          halfAt = Date.now();
          assert.equal(s.open, 0, 'half-open is not also counted as open');
          return true;
        }
        assert.equal(s.open, 1, 'open until the reset time');
        return false;
      },
      { timeoutMs: resetMs + 2000, intervalMs: 20, message: 'micro_sidecar_breaker_half_open = 1' },
    );
    const openFor = halfAt - openedAt;
    assert.ok(openFor >= resetMs - 60, `half-open after ${openFor} ms, not before --breaker-reset-ms ${resetMs}`);

    // 4 concurrent calls: one trial (slow, so the others overlap with it), 3 refused at once
    const slowMs = 700;
    const results = await Promise.all([0, 1, 2, 3].map((i) => timedCall(a, 'b', `/slow/${slowMs}`, { i })));
    const oks = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    assert.equal(oks.length, 1, `exactly one trial call: ${results.map((r) => `${r.status} ${r.text}`).join(' | ')}`);
    assert.ok(oks[0].ms >= slowMs - 50, `the trial was served by the app (${oks[0].ms} ms)`);
    for (const r of refused) {
      assertCircuitOpen(r, 'a call beside the trial');
      assert.ok(r.ms < slowMs, `refused without waiting for the trial (${r.ms} ms)`);
    }
    assert.equal(await byUrl(echo, `/slow/${slowMs}`), 1, 'the app saw the trial only');

    assert.deepEqual(await breakerState(a), { open: 0, half: 0 }, 'closed after the trial succeeded');
    assert.match(a.log, /circuit closed/);
    for (let i = 0; i < 3; i++) assert.equal((await a.call('b', '/echo', { i })).status, 200, 'calls flow again');
    assert.equal(await byUrl(echo, '/echo'), 3);
  });

  test('a failed trial re-opens the circuit for another --breaker-reset-ms', async (t) => {
    const resetMs = 600;
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: [...consecutive(2, resetMs), '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const echo = mesh.providers[0].echo;

    for (let i = 0; i < 2; i++) assert.equal((await a.call('b', '/status/500', {})).status, 500);
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 });
    await waitFor(async () => (await breakerState(a)).half === 1, { timeoutMs: resetMs + 2000, message: 'half-open' });

    const trial = await a.call('b', '/status/500', { trial: 1 });
    assert.equal(trial.status, 500, `the trial reached the app and failed: ${trial.text}`);
    const reopenedAt = Date.now();
    assert.equal(await byUrl(echo, '/status/500'), 3, 'the trial reached the app');
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 }, 're-opened by the failed trial');
    assertCircuitOpen(await a.call('b', '/echo', {}), 'right after the failed trial');
    assert.equal(await byUrl(echo, '/echo'), 0);

    // open again for a whole reset period, then one more trial, which succeeds
    let halfAt = 0;
    await waitFor(
      async () => {
        if ((await breakerState(a)).half === 1) halfAt = Date.now();
        return halfAt;
      },
      { timeoutMs: resetMs + 2000, intervalMs: 20, message: 'half-open again' },
    );
    assert.ok(halfAt - reopenedAt >= resetMs - 60, `half-open again after ${halfAt - reopenedAt} ms, not before ${resetMs}`);
    const ok = await a.call('b', '/echo', { trial: 2 });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(await breakerState(a), { open: 0, half: 0 });
    assert.equal(await a.metric('micro_sidecar_breaker_exclusions_total'), 2, 'opened twice');
  });

  test('per instance: failures of b1 open only its circuit; calls move to b2; with both open -> 503 fast, neither app reached', async (t) => {
    const { a, b2, echo1, echo2 } = await twoInstances(t, [...consecutive(2, 60000), '--retries', '0']);

    // the cached instance is b1: its /flaky fails twice in a row
    for (let i = 0; i < 2; i++) {
      const r = await a.call('b', '/flaky', { i });
      assert.equal(r.status, 500, `failure ${i + 1} on b1: ${r.text}`);
    }
    assert.equal(await byUrl(echo1, '/status/500'), 2);
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 }, 'b1 open');

    // now every call goes to b2 (b1 is excluded from the lookup)
    for (let i = 0; i < 5; i++) {
      const r = await a.call('b', '/flaky', { i });
      assert.equal(r.status, 200, `call ${i + 1} served by b2: ${r.text}`);
    }
    assert.equal(await byUrl(echo2, '/echo'), 5, 'b2 served them');
    assert.equal(await byUrl(echo1, '/status/500'), 2, 'b1 saw nothing more');
    assert.deepEqual(await breakerState(a), { open: 1, half: 0 }, 'b2 stays closed');

    // b2 starts failing too
    let r = await httpJson('DELETE', `${b2.api}/v1/routes/flaky`);
    assert.equal(r.status, 204, r.text);
    await addRoute(b2, '/flaky', `${echo2.url}/status/503`);
    for (let i = 0; i < 2; i++) {
      r = await a.call('b', '/flaky', { i });
      assert.equal(r.status, 503, `failure ${i + 1} on b2: ${r.text}`);
      assert.doesNotMatch(r.body.error, /circuit/i, 'the app\'s own 503, not the breaker');
    }
    assert.deepEqual(await breakerState(a), { open: 2, half: 0 }, 'both open');

    const before1 = await appCalls(echo1);
    const before2 = await appCalls(echo2);
    for (const url of ['/flaky', '/echo']) {
      r = await timedCall(a, 'b', url, {});
      assertCircuitOpen(r, `${url} with every instance open`);
      assert.ok(r.ms < 500, `failed fast (${r.ms} ms)`);
    }
    assert.deepEqual(await appCalls(echo1), before1, 'b1\'s app saw nothing');
    assert.deepEqual(await appCalls(echo2), before2, 'b2\'s app saw nothing');
  });
});

describe('micro-sidecar: breaker and rate limits', { skip: m.skipReason() }, () => {
  test('a provider\'s 429s (its rate limit) do not open the caller\'s circuit', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', args: ['--inbound-rps', '20', '--inbound-burst', '1'] }],
      consumers: [{ ns: 'a', args: [...consecutive(3, 60000), '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await a.call('b', '/echo', { i })).status);
    assert.ok(statuses.filter((s) => s === 429).length >= 3, `the provider refused several in a row: ${statuses}`);
    // 200 ms later the provider has tokens again (20/s); the caller must let the call through
    await h.sleep(200);
    const r = await a.call('b', '/echo', { after: 1 });
    assert.equal(r.status, 200, `after the provider's limit refilled: ${r.text}`);
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 0, 'no circuit opened by 429s');
  });
});

describe('micro-sidecar: breaker, reference policy (docs/PROTOCOL.md §5.3, the default)', { skip: m.skipReason() }, () => {
  test('one failure excludes the instance for the cooldown; the retry and later calls go to the other one', async (t) => {
    const { a, echo1, echo2 } = await twoInstances(t, ['--breaker-cooldown-ms', '30000']);

    // default retries (1): b1 fails, the retry goes to b2
    const r = await a.call('b', '/flaky', { n: 1 });
    assert.equal(r.status, 200, `the retry on b2 succeeded: ${r.text}`);
    assert.equal(await byUrl(echo1, '/status/500'), 1, 'b1 was tried first');
    assert.equal(await byUrl(echo2, '/echo'), 1, 'then b2');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 1, 'b1 excluded after one failure');
    assert.equal(await a.metric('micro_sidecar_breaker_exclusions_total'), 1);

    for (let i = 0; i < 5; i++) {
      const ri = await a.call('b', '/flaky', { i }, { 'X-Micro-Retries': '0' });
      assert.equal(ri.status, 200, `call ${i + 1}: ${ri.text}`);
    }
    assert.equal(await byUrl(echo1, '/status/500'), 1, 'b1 stays excluded during the cooldown');
    assert.equal(await byUrl(echo2, '/echo'), 6);
  });

  test('a single failure is enough (no failure count) and the default policy is reference', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const r = await a.call('b', '/status/500', {});
    assert.equal(r.status, 500, r.text);
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 1, 'excluded after the first failure');
    // the only instance is excluded: the call still goes out (cached connection / reset), never "circuit open"
    const ok = await a.call('b', '/echo', { after: 1 });
    assert.equal(ok.status, 200, `not failed fast like the consecutive policy: ${ok.text}`);
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 0, 'the success cleared it');
  });

  test('every instance excluded and no cached connection: the breaker is cleared and the lookup repeated (call succeeds, not 503)', async (t) => {
    const { registry, a, b1, b2, echo1, echo2 } = await twoInstances(t, ['--breaker-cooldown-ms', '30000'], { flaky2: '/status/500' });

    // b1 fails, the retry on b2 fails too: both excluded, the cache holds b2
    const r = await a.call('b', '/flaky', {});
    assert.equal(r.status, 500, `both attempts failed: ${r.text}`);
    assert.equal(await byUrl(echo1, '/status/500'), 1);
    assert.equal(await byUrl(echo2, '/status/500'), 1);
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 2, 'both excluded');

    // b2 goes away: no cached connection is left, the registry lists b1 only (excluded)
    await b2.proc.stop();
    await m.waitListed(registry, 'b', [b1.key]);
    await waitFor(async () => {
      const hl = await httpJson('GET', `${a.mesh}/-/health`);
      assert.equal(hl.status, 200, hl.text);
      return !hl.body.namespaces.includes('b');
    }, {
      message: 'a dropped its cached connection to b2',
    });
    const resetsBefore = await a.metric('micro_sidecar_breaker_resets_total');

    const ok = await a.call('b', '/echo', { again: 1 }, { 'X-Micro-Retries': '0' });
    assert.equal(ok.status, 200, `served by b1 after the reset: ${ok.text}`);
    assert.equal(await byUrl(echo1, '/echo'), 2, 'b1 served it (warm-up + this one)');
    assert.equal(await a.metric('micro_sidecar_breaker_resets_total'), resetsBefore + 1, 'the namespace\'s exclusions were cleared once');
    assert.equal(await a.metric('micro_sidecar_breaker_open'), 0);
  });
});
