'use strict';
// micro-registry under registration abuse and expensive finds:
//   --max-connections-per-address  one source address cannot take every slot of
//                                  --max-connections, with or without --verify-peer-address;
//   the replacement rule           a live host:port is taken over only from its own source
//                                  address (or once it has been silent for half the
//                                  heartbeat timeout), so a flapping impostor never wins;
//   /-/find exclude                at most 1,024 entries (400 beyond), and linear: a
//                                  900 KB exclude list costs the registry nothing.
// Loopback has every 127.0.0.0/8 address, so raw peers dial from 127.0.0.2.. to be
// "another pod". Real processes, fresh ports per test.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/registry-abuse.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST } = m;
const { test, waitFor, httpJson } = h;

/** Opens a raw peer and resolves to {peer, opened: bool} once it is open or refused. */
async function tryOpen(t, port, segs, localAddress) {
  const peer = h.rawPeer(HOST, port, segs, { t, localAddress });
  const opened = await peer.ready().then(
    () => true,
    () => false,
  );
  return { peer, opened };
}

/** Opens n peers in batches; returns how many opened. */
async function openMany(t, port, n, seg, localAddress, peers = []) {
  let opened = 0;
  for (let i = 0; i < n; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 100); j++) batch.push(tryOpen(t, port, seg(j), typeof localAddress === 'function' ? localAddress(j) : localAddress));
    for (const r of await Promise.all(batch)) {
      if (r.opened) {
        opened++;
        peers.push(r.peer);
      }
    }
  }
  return opened;
}

async function metric(registry, name) {
  const r = await httpJson('GET', `${registry.http}/metrics`);
  return m.metricValue(r.text, name);
}

describe('micro-registry: per-address limits and the replacement rule', { skip: m.skipReason() }, () => {
  test('one address cannot lock everyone out: --max-connections-per-address (default 512) with --verify-peer-address', { timeout: 60000 }, async (t) => {
    const registry = await m.startRegistry(t, { maxConnections: 600, args: ['--verify-peer-address'] });
    // an attacker with one IP registers as many instances as it can, any port of its own IP
    const got = await openMany(t, registry.port, 600, (i) => ['127.0.0.2', 20000 + i, `flood-${i % 10}`], '127.0.0.2');
    assert.equal(got, 512, 'the default per-address limit stopped the flood at 512');
    // everyone else still gets in
    for (const ip of ['127.0.0.3', '127.0.0.4']) {
      const { opened } = await tryOpen(t, registry.port, [ip, 9100, 'payments'], ip);
      assert.ok(opened, `${ip} registers while the flood holds its 512`);
    }
    await m.waitListed(registry, 'payments', ['127.0.0.3:9100', '127.0.0.4:9100']);
    assert.equal(await metric(registry, 'micro_registry_refused_per_address_total'), 88);
    assert.match(registry.proc.stderr + registry.proc.stdout, /too many connections from this address/);
  });

  test('an explicit --max-connections-per-address; 0 turns it off', { timeout: 60000 }, async (t) => {
    const registry = await m.startRegistry(t, { args: ['--max-connections-per-address', '5'] });
    assert.equal(await openMany(t, registry.port, 8, (i) => ['10.1.0.1', 1000 + i, 'a'], '127.0.0.2'), 5);
    assert.equal(await openMany(t, registry.port, 3, (i) => ['10.1.0.2', 1000 + i, 'a'], '127.0.0.3'), 3, 'another address has its own 5');
    // a replacement from the same address does not count as one more (which 5 of
    // the 8 got in depends on the order the handshakes arrived)
    const held = (await m.namespaces(registry)).a.find((k) => k.startsWith('10.1.0.1:'));
    const again = await tryOpen(t, registry.port, ['10.1.0.1', held.split(':')[1], 'a'], '127.0.0.2');
    assert.ok(again.opened, 'the same key from the same address replaces at the limit');
    const open = await m.startRegistry(t, { args: ['--max-connections-per-address', '0'] });
    assert.equal(await openMany(t, open.port, 20, (i) => ['10.1.0.1', 1000 + i, 'a'], '127.0.0.2'), 20);
  });

  test('a flapping impostor from another address never displaces a live instance', { timeout: 30000 }, async (t) => {
    const registry = await m.startRegistry(t, { heartbeatTimeoutMs: 4000 });
    const real = h.rawPeer(HOST, registry.port, ['127.0.0.1', 9301, 'pay'], { t });
    await real.ready();
    const beat = setInterval(() => real.isOpen && real.push('/-/heartbeat', {}), 200);
    t.after(() => clearInterval(beat));
    const finder = h.rawPeer(HOST, registry.port, ['127.0.0.1', 9399, 'finder'], { t });
    await finder.ready();
    // the impostor claims the key again and again for 2 s, closing each time
    let tries = 0;
    let accepted = 0;
    let findsOk = 0;
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      const [imp, found] = await Promise.all([
        tryOpen(t, registry.port, ['127.0.0.1', 9301, 'pay'], '127.0.0.2'),
        finder.request('/-/find', { namespace: 'pay' }),
      ]);
      tries++;
      if (imp.opened) accepted++;
      imp.peer.terminate();
      if (found.status === 200 && found.data && found.data.port === 9301) findsOk++;
      assert.ok(real.isOpen, `the real instance's connection is still open after ${tries} takeover attempts`);
    }
    assert.ok(tries >= 10, `only ${tries} attempts`);
    assert.equal(accepted, 0, 'every takeover from another address was refused');
    assert.equal(findsOk, tries, 'the instance was in every /-/find answer');
    assert.deepEqual((await m.namespaces(registry)).pay, ['127.0.0.1:9301']);
    assert.equal(await metric(registry, 'micro_registry_refused_takeover_total'), tries);
    // a legitimate restart (the same address) still replaces at once, as the reference does
    const restarted = h.rawPeer(HOST, registry.port, ['127.0.0.1', 9301, 'pay'], { t });
    await restarted.ready();
    await real.waitClosed(3000);
    await m.waitListed(registry, 'pay', ['127.0.0.1:9301']);
  });

  test('a silent instance can be taken over from another address after half the heartbeat timeout', { timeout: 30000 }, async (t) => {
    const registry = await m.startRegistry(t, { heartbeatTimeoutMs: 4000 });
    const old = h.rawPeer(HOST, registry.port, ['10.2.0.1', 9100, 'pay'], { t, localAddress: '127.0.0.2' });
    await old.ready(); // and never heartbeats
    const started = Date.now();
    const early = await tryOpen(t, registry.port, ['10.2.0.1', 9100, 'pay'], '127.0.0.3');
    assert.equal(early.opened, false, 'refused while the registration is fresh');
    let late;
    await waitFor(async () => {
      late = await tryOpen(t, registry.port, ['10.2.0.1', 9100, 'pay'], '127.0.0.3');
      return late.opened;
    }, { timeoutMs: 8000, intervalMs: 100, message: 'the newcomer gets the key' });
    const took = Date.now() - started;
    assert.ok(took >= 1900 && took < 4000, `taken over after ${took} ms (half of 4000 is 2000, eviction at 4000)`);
    await old.waitClosed(3000);
    await m.waitListed(registry, 'pay', ['10.2.0.1:9100']);
  });
});

describe('micro-registry: /-/find exclude is bounded and linear', { skip: m.skipReason() }, () => {
  test('150,000 excludes over 1,000 instances: a 400 at once, and the registry keeps serving', { timeout: 120000 }, async (t) => {
    const registry = await m.startRegistry(t, { heartbeatTimeoutMs: 120000, maxFrameBytes: 4 * 1048576 });
    const srcs = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const n = await openMany(t, registry.port, 1000, (i) => ['10.3.0.1', 10000 + i, 'big'], (i) => srcs[i % 4]);
    assert.equal(n, 1000);
    await waitFor(async () => ((await m.namespaces(registry)).big || []).length === 1000, { message: '1,000 listed' });
    const finder = h.rawPeer(HOST, registry.port, ['127.0.0.1', 9399, 'finder'], { t });
    await finder.ready();

    // the attack: ~2 MB of excludes that match nothing (O(instances × excludes) was 13 s
    // for 150,000 over 1,000 instances)
    const exclude = [];
    for (let i = 0; i < 150000; i++) exclude.push(`10.9.${i >> 8 & 255}.${i & 255}:1`);
    let t0 = Date.now();
    const big = finder.request('/-/find', { namespace: 'big', exclude }, { timeout: 20000 });
    const health = await httpJson('GET', `${registry.http}/-/health`, undefined, {}, { timeoutMs: 3000 });
    assert.equal(health.status, 200, 'the registry answers /-/health meanwhile');
    const r = await big;
    const tookMs = Date.now() - t0;
    assert.equal(r.status, 400);
    assert.match(r.message, /exclude has more than 1024 entries/);
    assert.ok(tookMs < 1500, `the oversized find took ${tookMs} ms`);
    assert.equal(await metric(registry, 'micro_registry_exclude_too_long_total'), 1);

    // 1,024 excludes is served, linearly: exclude all but one real instance (999
    // entries) plus 25 that match nothing, and only that one can come back
    const keys = ((await m.namespaces(registry)).big || []).slice().sort();
    const keep = keys[437];
    const ex = keys.filter((k) => k !== keep);
    for (let i = 0; i < 25; i++) ex.push(`10.8.0.${i}:1`);
    assert.equal(ex.length, 1024);
    t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      const a = await finder.request('/-/find', { namespace: 'big', exclude: ex });
      assert.equal(a.status, 200);
      assert.equal(`${a.data.host}:${a.data.port}`, keep);
    }
    const per = (Date.now() - t0) / 20;
    assert.ok(per < 100, `a 1,024-entry find took ${per} ms`);
    // excluding every instance answers no data; one more entry than the cap is refused
    const none = await finder.request('/-/find', { namespace: 'big', exclude: [...keys.slice(0, 1000), ...ex.slice(0, 24)] });
    assert.deepEqual(none, { status: 200 });
    const over = await finder.request('/-/find', { namespace: 'big', exclude: [...ex, '10.8.1.1:1'] });
    assert.equal(over.status, 400);
  });

  test('excluding about half the namespace still picks uniformly among the rest', { timeout: 30000 }, async (t) => {
    const registry = await m.startRegistry(t);
    await openMany(t, registry.port, 10, (i) => ['10.4.0.1', 100 + i, 'u'], '127.0.0.2');
    const finder = h.rawPeer(HOST, registry.port, ['127.0.0.1', 9399, 'finder'], { t });
    await finder.ready();
    // a duplicate entry counts once; entries that are not keys are ignored
    const ex = ['10.4.0.1:100', '10.4.0.1:101', '10.4.0.1:102', '10.4.0.1:103', '10.4.0.1:103', 'junk', 7];
    const counts = new Map();
    for (let i = 0; i < 1200; i++) {
      const a = await finder.request('/-/find', { namespace: 'u', exclude: ex });
      const k = `${a.data.host}:${a.data.port}`;
      counts.set(k, (counts.get(k) || 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), ['10.4.0.1:104', '10.4.0.1:105', '10.4.0.1:106', '10.4.0.1:107', '10.4.0.1:108', '10.4.0.1:109']);
    for (const [k, c] of counts) assert.ok(c > 120 && c < 280, `${k} picked ${c} of 1200 times (200 expected)`);
  });
});
