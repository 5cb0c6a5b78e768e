'use strict';
// micro-sidecar traffic governance: token-bucket rate limits.
//   inbound, per route: --inbound-rps/--inbound-burst (the default for every route) or
//     {"url","rps","burst"} on POST /v1/routes; a call over the limit gets a 429
//     RESPONSE over the mesh, which the caller's API passes through as 429;
//   outbound, per target namespace: --outbound-rps/--outbound-burst; a call over the
//     limit gets 429 with Retry-After at once, and never leaves the sidecar.
// Rates are measured over a fixed window with a few concurrent keep-alive clients.
// Real processes on 127.0.0.1 (registry, micro-echo apps, sidecars), fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/governance-ratelimit.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');
const burst = m.concurrentCalls;

const { h } = m;
const { test, httpJson } = h;

/**
 * `concurrency` clients call POST {sc.api}/v1/call/{ns}{url} back to back for
 * `ms` milliseconds. Returns {count: {status: n}, total, elapsed, latencies: {status: [ms]}, bodies}.
 */
async function hammer(sc, ns, url, { ms, concurrency, headers = {} }) {
  const agent = m.agentFor(concurrency);
  const count = {};
  const latencies = {};
  const bodies = {};
  const t0 = Date.now();
  const deadline = t0 + ms;
  async function client(k) {
    let i = 0;
    while (Date.now() < deadline) {
      const s = Date.now();
      const r = await m.postWithAgent(agent, `${sc.api}/v1/call/${ns}${url}`, { k, i: i++ }, headers, 10000);
      count[r.status] = (count[r.status] || 0) + 1;
      (latencies[r.status] ||= []).push(Date.now() - s);
      if (!bodies[r.status]) bodies[r.status] = r;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, k) => client(k)));
  const elapsed = Date.now() - t0;
  agent.destroy();
  const total = Object.values(count).reduce((x, y) => x + y, 0);
  return { count, total, elapsed, latencies, bodies };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function describeRun(run) {
  const lat = Object.fromEntries(
    Object.entries(run.latencies).map(([k, v]) => {
      const s = [...v].sort((x, y) => x - y);
      return [k, `p50=${pct(s, 50)} p99=${pct(s, 99)} max=${s[s.length - 1]}`];
    }),
  );
  return `counts ${JSON.stringify(run.count)} in ${run.elapsed} ms; latency ms ${JSON.stringify(lat)}`;
}

/** The 429 shape at the caller's API: {"error": "...rate limit...", "status": 429}. */
function assert429(r, what) {
  assert.equal(r.status, 429, `${what}: ${r.text}`);
  assert.equal(r.headers['content-type'], 'application/json', `${what}: content-type`);
  assert.equal(r.body.status, 429, `${what}: status in the body: ${r.text}`);
  assert.match(r.body.error, /rate limit/i, `${what}: the message names the rate limit: ${r.text}`);
}

async function appCount(echo, url) {
  return (await echo.stats()).by_url[url] || 0;
}

describe('micro-sidecar: inbound rate limit (per route)', { skip: m.skipReason() }, () => {
  test('--inbound-rps 50 --inbound-burst 1: over 3 s the provider accepts 50/s (+ burst); the rest is 429 at the caller', async (t) => {
    const rps = 50;
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', args: ['--inbound-rps', String(rps), '--inbound-burst', '1'] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b, echo } = mesh.providers[0];

    const run = await hammer(a, 'b', '/echo', { ms: 3000, concurrency: 6 });
    const info = describeRun(run);
    t.diagnostic(info);
    const ok = run.count[200] || 0;
    const limited = run.count[429] || 0;
    assert.equal(ok + limited, run.total, `only 200 and 429: ${info}`);
    const expected = (rps * run.elapsed) / 1000 + 1;
    assert.ok(Math.abs(ok - expected) <= expected * 0.1, `accepted ${ok}, expected ${expected.toFixed(0)} +- 10 %: ${info}`);
    assert.ok(limited > ok, `the offered load was well above the limit: ${info}`);
    assert429(run.bodies[429], 'a refused call at the caller\'s API');
    assert.match(run.bodies[429].body.error, /\/echo/, 'the message names the route');

    assert.equal(await appCount(echo, '/echo'), ok, 'the app saw exactly the accepted calls');
    assert.equal(await b.metric('micro_sidecar_rate_limited_inbound_total'), limited, 'the provider counted every refusal');
    assert.equal(await a.metric('micro_sidecar_rate_limited_outbound_total'), 0, 'the caller did not refuse anything itself');
  });

  test('per route via POST /v1/routes {"url","rps","burst"}: only that route is limited, burst then rate; /v1/routes shows it', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', routes: ['/inspect'] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b, echo } = mesh.providers[0];

    for (const bad of [{ rps: -1 }, { rps: 'fast' }, { burst: -2 }, { burst: [] }]) {
      const r = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', ...bad });
      assert.equal(r.status, 400, `${JSON.stringify(bad)} is refused: ${r.text}`);
    }
    const add = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', rps: 20, burst: 5 });
    assert.equal(add.status, 201, add.text);
    const list = await httpJson('GET', `${b.api}/v1/routes`);
    const echoRoute = list.body.find((r) => r.url === '/echo');
    assert.equal(echoRoute.rps, 20, `GET /v1/routes: ${list.text}`);
    assert.equal(echoRoute.burst, 5, `GET /v1/routes: ${list.text}`);
    assert.equal(list.body.find((r) => r.url === '/inspect').rps, undefined, 'the other route has no limit');

    // burst: 12 at once -> 5 (at most one more token arrives meanwhile)
    const first = await burst(a, 'b', '/echo', 12);
    const okBurst = first.filter((r) => r.status === 200).length;
    assert.ok(okBurst >= 5 && okBurst <= 6, `burst of 5: ${first.map((r) => r.status).join(',')}`);
    for (const r of first.filter((x) => x.status !== 200)) assert429(r, 'over the burst');

    // the unlimited route keeps working while /echo is exhausted
    const side = await burst(a, 'b', '/inspect', 20);
    assert.deepEqual([...new Set(side.map((r) => r.status))], [200], `/inspect is not limited: ${side.map((r) => r.status).join(',')}`);

    // rate: 20/s for 2 s (the bucket is empty or nearly so now)
    const run = await hammer(a, 'b', '/echo', { ms: 2000, concurrency: 4 });
    const info = describeRun(run);
    t.diagnostic(info);
    const ok = run.count[200] || 0;
    const expected = (20 * run.elapsed) / 1000;
    assert.ok(Math.abs(ok - expected) <= Math.max(expected * 0.1, 3), `accepted ${ok}, expected ${expected.toFixed(0)} +- 10 %: ${info}`);
    assert.equal(ok + (run.count[429] || 0), run.total, `only 200 and 429: ${info}`);
    assert.equal(await appCount(echo, '/echo'), okBurst + ok, 'the app saw exactly the accepted calls');
    assert.equal(await appCount(echo, '/inspect'), 20);
  });

  test('a route-level limit overrides --inbound-rps; a route without one gets the default', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', routes: [], args: ['--inbound-rps', '2', '--inbound-burst', '2'] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b } = mesh.providers[0];
    assert.equal((await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', rps: 1000, burst: 30 })).status, 201);
    assert.equal((await httpJson('POST', `${b.api}/v1/routes`, { url: '/inspect' })).status, 201);

    const fast = await burst(a, 'b', '/echo', 25);
    assert.deepEqual([...new Set(fast.map((r) => r.status))], [200], 'the route\'s own limit (burst 30) applies, not the default');
    const slow = await burst(a, 'b', '/inspect', 8);
    const ok = slow.filter((r) => r.status === 200).length;
    assert.ok(ok >= 2 && ok <= 3, `the default limit (burst 2): ${slow.map((r) => r.status).join(',')}`);
    for (const r of slow.filter((x) => x.status !== 200)) assert429(r, 'over the default limit');
  });

  test('POST /v1/routes with a burst below 1: refused (400) or a route that still admits calls', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', routes: [] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b } = mesh.providers[0];
    const add = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', rps: 100, burst: 0.5 });
    if (add.status === 400) return; // refusing it is fine
    assert.equal(add.status, 201, add.text);
    const rs = [];
    for (let i = 0; i < 5; i++) {
      rs.push(await a.call('b', '/echo', { i }));
      await h.sleep(30); // 3 tokens' worth at 100/s between calls
    }
    assert.ok(rs.some((r) => r.status === 200), `a route with rps 100 admits something: ${rs.map((r) => `${r.status} ${r.text}`).join(' | ')}`);
  });

  test('POST /v1/routes again with another limit for an existing route is not silently ignored (409, or the new limit applies)', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b', routes: ['/echo'] }],
      consumers: [{ ns: 'a', args: ['--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { sidecar: b } = mesh.providers[0];
    const again = await httpJson('POST', `${b.api}/v1/routes`, { url: '/echo', rps: 1, burst: 1 });
    if (again.status === 409) return; // refusing the change is fine
    assert.ok([200, 201].includes(again.status), again.text);
    const list = await httpJson('GET', `${b.api}/v1/routes`);
    assert.equal(list.body.find((r) => r.url === '/echo').rps, 1, `the new limit is in effect: ${list.text}`);
    const rs = await burst(a, 'b', '/echo', 5);
    assert.ok(rs.filter((r) => r.status === 429).length >= 3, `limited to 1/s: ${rs.map((r) => r.status).join(',')}`);
  });

  test('a 429 over the mesh is an error RESPONSE with status 429 (raw peer view)', async (t) => {
    const registry = await m.startRegistry(t);
    const echo = await m.startEcho(t);
    const b = await m.startSidecar(t, { ns: 'b', registryPort: registry.port, appUrl: echo.url, routes: ['*'], args: ['--inbound-rps', '1', '--inbound-burst', '1'] });
    const port = await h.freePort();
    const peer = h.rawPeer(m.HOST, b.meshPort, [m.HOST, port, 'rawns'], { t });
    await peer.ready();
    const first = await peer.request('/echo', { n: 1 });
    assert.equal(first.status, 200, JSON.stringify(first));
    const second = await peer.request('/echo', { n: 2 });
    assert.equal(second.status, 429, `over the limit: ${JSON.stringify(second)}`);
    assert.equal(second.data, null);
    assert.match(second.message, /rate limit/i);
    assert.equal(await appCount(echo, '/echo'), 1);
  });
});

describe('micro-sidecar: outbound rate limit (per namespace)', { skip: m.skipReason() }, () => {
  test('--outbound-rps/--outbound-burst: over the burst -> 429 + Retry-After at once; the provider never sees refused calls', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [
        { ns: 'b', echoName: 'echo-b' },
        { ns: 'c', echoName: 'echo-c' },
      ],
      consumers: [{ ns: 'a', args: ['--outbound-rps', '2', '--outbound-burst', '4', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const [pb, pc] = mesh.providers;

    const rs = await burst(a, 'b', '/echo', 15);
    const ok = rs.filter((r) => r.status === 200);
    const refused = rs.filter((r) => r.status !== 200);
    assert.ok(ok.length >= 4 && ok.length <= 5, `burst 4: ${rs.map((r) => r.status).join(',')}`);
    for (const r of refused) {
      assert429(r, 'over the outbound limit');
      assert.match(r.body.error, /\bb\b/, `the message names the namespace: ${r.text}`);
      assert.match(r.headers['retry-after'] || '', /^[1-9][0-9]*$/, `Retry-After in whole seconds: ${JSON.stringify(r.headers)}`);
      assert.ok(Number(r.headers['retry-after']) <= 1, `a token comes within 0.5 s at 2/s, so Retry-After is 1: ${r.headers['retry-after']}`);
      assert.ok(r.headers['x-correlation-id'], 'the answer still carries X-Correlation-Id');
      assert.ok(r.ms < 1000, `refused at once (${r.ms} ms)`);
    }
    assert.equal(await appCount(pb.echo, '/echo'), ok.length, 'the provider saw only the accepted calls');
    assert.equal(await pb.sidecar.metric('micro_sidecar_inbound_total'), ok.length, 'the refused calls never left the caller');
    assert.equal(await a.metric('micro_sidecar_rate_limited_outbound_total'), refused.length);

    // another namespace has its own bucket
    const other = await burst(a, 'c', '/echo', 4);
    assert.deepEqual(other.map((r) => r.status), [200, 200, 200, 200], 'namespace c is not limited by b\'s calls');
    assert.equal(await appCount(pc.echo, '/echo'), 4);
  });

  test('--outbound-rps 20: over 3 s the caller lets 20/s (+ burst) through', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: ['--outbound-rps', '20', '--outbound-burst', '5', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { echo } = mesh.providers[0];
    const run = await hammer(a, 'b', '/echo', { ms: 3000, concurrency: 4 });
    const info = describeRun(run);
    t.diagnostic(info);
    const ok = run.count[200] || 0;
    const expected = (20 * run.elapsed) / 1000 + 5;
    assert.ok(Math.abs(ok - expected) <= expected * 0.1, `accepted ${ok}, expected ${expected.toFixed(0)} +- 10 %: ${info}`);
    assert.equal(ok + (run.count[429] || 0), run.total, `only 200 and 429: ${info}`);
    assert.equal(await appCount(echo, '/echo'), ok);
    assert429(run.bodies[429], 'refused');
    assert.ok(run.bodies[429].headers['retry-after'], 'Retry-After');
  });

  test('nothing queues: 200 calls at once with --outbound-rps 10 are all answered within a second', async (t) => {
    const mesh = await m.startMesh(t, {
      providers: [{ ns: 'b', echoName: 'echo-b' }],
      consumers: [{ ns: 'a', args: ['--outbound-rps', '10', '--outbound-burst', '1', '--retries', '0'] }],
    });
    const a = mesh.consumers[0];
    const { echo } = mesh.providers[0];
    const agent = m.agentFor(50);
    t.after(() => agent.destroy());
    const t0 = Date.now();
    const rs = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const s = Date.now();
        const r = await m.postWithAgent(agent, `${a.api}/v1/call/b/echo`, { i }, {}, 10000);
        r.ms = Date.now() - s;
        return r;
      }),
    );
    const wall = Date.now() - t0;
    const ok = rs.filter((r) => r.status === 200).length;
    assert.ok(ok >= 1 && ok <= 1 + Math.ceil((wall / 1000) * 10) + 1, `1 + 10/s over ${wall} ms accepted, got ${ok}`);
    assert.equal(rs.filter((r) => r.status === 429).length, 200 - ok, 'the rest refused, none delayed into a success');
    assert.ok(wall < 1500, `all 200 answered in ${wall} ms (a queue at 10/s would take 20 s)`);
    assert.equal(await appCount(echo, '/echo'), ok);
    assert.equal(await a.metric('micro_sidecar_calls_in_flight'), 0, 'nothing left waiting');
  });
});
