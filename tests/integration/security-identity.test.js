'use strict';
// Who a sidecar talks to, and whether the registry really lists it:
//   mesh identity   a peer that dials sidecar A's mesh port naming someone else's
//                   host:port must not receive A's calls to that peer: an inbound
//                   connection is used for our calls only when it comes from the
//                   address it claims, and never displaces a connection A dialed;
//                   --verify-peer-address refuses such handshakes outright;
//   degradation     with the registry unable to help, a call does not go back to the
//                   peer that just failed when a healthy one of the namespace is known;
//   re-registration evicted by a registry with the reference's close handling (1.0.5
//                   removes a key when any connection for it closes), the sidecar
//                   registers again after the old connection is gone, checks that it
//                   is listed, and /-/health and /-/ready say so when it is not.
// The registry is not involved in the hijack, so most tests use a scripted registry
// (a WebSocket server in this file) that answers /-/find as the test says.
// Loopback has every 127.0.0.0/8 address: the intruder dials from 127.0.0.2.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/security-identity.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const path = require('node:path');
const { once } = require('node:events');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST } = m;
const { test, waitFor, httpJson } = h;
const { WebSocketServer } = require(path.join(h.NODE_DIR, 'node_modules', 'ws'));

/**
 * A registry that answers /-/find from a table the test controls:
 * reg.answers[ns] = "host:port" | null (no data) | undefined (no data).
 * A sidecar looking up its own namespace (its listed check) finds itself.
 * Every other request is answered {status: 200}.
 */
async function scriptedRegistry(t) {
  const wss = new WebSocketServer({ host: HOST, port: 0 });
  await once(wss, 'listening');
  const reg = { port: wss.address().port, answers: {}, finds: [] };
  wss.on('connection', (ws, req) => {
    const [askerHost, askerPort, ...askerNs] = decodeURIComponent(req.url.split('?')[0]).slice(1).split('/');
    const asker = { key: `${askerHost}:${askerPort}`, ns: askerNs.join('/') };
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      let f;
      try {
        f = JSON.parse(raw.toString('utf8'));
      } catch {
        return;
      }
      if (!f || f.mode !== 0 || !f.twoway || !f.data) return;
      let data = { status: 200 };
      if (f.data.url === '/-/find') {
        const ns = f.data.data && f.data.data.namespace;
        reg.finds.push(ns);
        const ex = (f.data.data && f.data.data.exclude) || [];
        const key = ns === asker.ns ? asker.key : reg.answers[ns];
        if (key && !ex.includes(key)) {
          const i = key.lastIndexOf(':');
          data = { status: 200, data: { host: key.slice(0, i), port: Number(key.slice(i + 1)) } };
        }
      }
      ws.send(JSON.stringify({ id: f.id, mode: 1, twoway: false, data }));
    });
  });
  t.after(
    () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  return reg;
}

/** A sidecar on the scripted registry, listed there under its own namespace. */
async function sidecarOn(t, reg, ns, opts = {}) {
  const meshPort = await h.freePort();
  reg.answers[ns] = `${HOST}:${meshPort}`;
  let appUrl = opts.appUrl;
  if (!appUrl && opts.echo !== false) appUrl = (await m.startEcho(t, { name: `echo-${ns}` })).url;
  return m.startSidecar(t, { ns, registryPort: reg.port, meshPort, routes: appUrl ? ['*'] : [], appUrl, ...opts });
}

/** An intruder on `sc`'s mesh port claiming `claim` = "host:port" for namespace ns. */
async function intruder(t, sc, claim, ns, localAddress) {
  const i = claim.lastIndexOf(':');
  const peer = h.rawPeer(HOST, sc.meshPort, [claim.slice(0, i), claim.slice(i + 1), ns], { t, localAddress });
  peer.handle('/inspect', () => ({ name: 'forged' }));
  peer.handle('/echo', () => ({ forged: true }));
  await peer.ready();
  return peer;
}

function requestsTo(peer) {
  return peer.frames.filter((f) => f && f.mode === 0 && f.data && typeof f.data.url === 'string' && !f.data.url.startsWith('/-/'));
}

async function assertCallsReach(a, ns, name, n = 5) {
  for (let i = 0; i < n; i++) {
    const r = await a.call(ns, '/inspect', { i });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.name, name, `call ${i} to ${ns} answered by ${r.body.name}`);
  }
}

describe('micro-sidecar: mesh identity', { skip: m.skipReason() }, () => {
  test('an intruder claiming a peer\'s host:port from another address gets none of the calls to it', async (t) => {
    const reg = await scriptedRegistry(t);
    const b = await sidecarOn(t, reg, 'b');
    const a = await sidecarOn(t, reg, 'a', { echo: false });
    // before a has ever called b, the intruder names itself b
    const evil = await intruder(t, a, b.key, 'b', '127.0.0.2');
    await assertCallsReach(a, 'b', 'echo-b');
    assert.deepEqual(requestsTo(evil), [], 'the intruder received no call');
    assert.ok(evil.isOpen, 'its connection is served, just never used for our calls');
    assert.equal(await a.metric('micro_sidecar_peers_unverified_total'), 1);
    await waitFor(() => /claims another address than it connects from/.test(a.log), { message: 'a logs it' });
  });

  test('an intruder from another address does not replace a peer\'s own inbound connection', async (t) => {
    const reg = await scriptedRegistry(t);
    const a = await sidecarOn(t, reg, 'a');
    const b = await sidecarOn(t, reg, 'b');
    // b calls a first: b's connection to a is the one a uses to reach b
    assert.equal((await b.call('a', '/inspect', {})).status, 200);
    const evil = await intruder(t, a, b.key, 'b', '127.0.0.2');
    await assertCallsReach(a, 'b', 'echo-b');
    assert.deepEqual(requestsTo(evil), []);
  });

  test('an inbound connection never displaces one this sidecar dialed', async (t) => {
    const reg = await scriptedRegistry(t);
    const b = await sidecarOn(t, reg, 'b');
    const a = await sidecarOn(t, reg, 'a', { echo: false });
    await assertCallsReach(a, 'b', 'echo-b', 1); // a dials b
    // now something on b's own address (it passes the address rule) connects
    // naming b, and a looks up another namespace that the registry places on b's key
    const evil = await intruder(t, a, b.key, 'b', HOST);
    reg.answers.c = b.key;
    await assertCallsReach(a, 'c', 'echo-b');
    await assertCallsReach(a, 'b', 'echo-b', 2);
    assert.deepEqual(requestsTo(evil), [], 'our own connection kept carrying the calls');
    assert.equal(await a.metric('micro_sidecar_peers_kept_total'), 1);
  });

  test('--verify-peer-address refuses a handshake whose claimed host is not its source', async (t) => {
    const reg = await scriptedRegistry(t);
    const a = await sidecarOn(t, reg, 'a', { args: ['--verify-peer-address'] });
    const b = await sidecarOn(t, reg, 'b', { args: ['--verify-peer-address'] });
    const evil = h.rawPeer(HOST, a.meshPort, [HOST, b.meshPort, 'b'], { t, localAddress: '127.0.0.2' });
    const info = await evil.waitClosed(3000);
    assert.equal(info.opened, false, `refused before the upgrade: ${JSON.stringify(info)}`);
    await waitFor(() => /claimed host is not the source address/.test(a.log), { message: 'a logs why' });
    // honest peers, both directions, still work
    const honest = h.rawPeer(HOST, a.meshPort, ['127.0.0.2', 9999, 'x'], { t, localAddress: '127.0.0.2' });
    await honest.ready();
    assert.equal((await a.call('b', '/inspect', {})).body.name, 'echo-b');
    assert.equal((await b.call('a', '/inspect', {})).body.name, 'echo-a');
    // the flag has an environment variable too
    const c = await m.withEnv({ MICRO_VERIFY_PEER_ADDRESS: 'true' }, () => sidecarOn(t, reg, 'c', { echo: false }));
    const evil2 = h.rawPeer(HOST, c.meshPort, [HOST, b.meshPort, 'b'], { t, localAddress: '127.0.0.2' });
    assert.equal((await evil2.waitClosed(3000)).opened, false);
  });
});

describe('micro-sidecar: cache degradation avoids the peer that just failed', { skip: m.skipReason() }, () => {
  test('with the lookup failing, a call goes to another healthy peer of the namespace rather than the one that failed', async (t) => {
    const reg = await scriptedRegistry(t);
    const a = await sidecarOn(t, reg, 'a', { breakerCooldownMs: 60000 });
    const b1 = await sidecarOn(t, reg, 'b', { name: 'b1' });
    const b1key = reg.answers.b;
    const b2 = await sidecarOn(t, reg, 'b', { name: 'b2', echo: false, appUrl: (await m.startEcho(t, { name: 'echo-b2' })).url });
    assert.equal(reg.answers.b, b2.key);
    // b1 is known to a as a peer of namespace b: it called a
    reg.answers.b = b1key;
    assert.equal((await b1.call('a', '/inspect', {})).status, 200);
    reg.answers.b = b2.key;
    assert.equal((await a.call('b', '/inspect', {})).body.name, 'echo-b2');
    // the registry now finds nobody for b, and b2 fails a call: it is excluded
    reg.answers.b = null;
    const bad = await a.call('b', '/status/500', {}, { 'X-Micro-Retries': '0' });
    assert.equal(bad.status, 500, bad.text);
    // the next calls cannot look anyone up; they go to b1, not back to b2
    await assertCallsReach(a, 'b', 'echo-b', 3);
    await waitFor(() => /using another known peer than the one that failed/.test(a.log), { message: 'a logs it' });
    assert.ok((await a.metric('micro_sidecar_discovery_degraded_total')) >= 1);
  });
});

async function findKey(probe, ns) {
  const r = await probe.request('/-/find', { namespace: ns });
  return r.data ? `${r.data.host}:${r.data.port}` : null;
}

async function heartbeatingProbe(t, port) {
  const probe = h.rawPeer(HOST, port, [HOST, await h.freePort(), 'probe'], { t });
  await probe.ready();
  const beat = setInterval(() => probe.isOpen && probe.push('/-/heartbeat', {}), 100);
  t.after(() => clearInterval(beat));
  return probe;
}

async function assertListed(sc, probe) {
  await waitFor(async () => (await findKey(probe, sc.ns)) === sc.key, { timeoutMs: 5000, message: `${sc.ns} is found again` });
  await waitFor(async () => (await httpJson('GET', `${sc.api}/-/health`)).body.registry === true, { timeoutMs: 3000, message: 'health says registry: true' });
  assert.equal((await httpJson('GET', `${sc.api}/-/ready`)).status, 200);
  assert.equal(await sc.metric('micro_sidecar_registry_listed'), 1);
}

describe('micro-sidecar: re-registration with a Node registry', { skip: m.skipReason() }, () => {
  test('evicted by a registry with 1.0.5 close handling: registers again after the old connection is gone, and is found', { timeout: 60000 }, async (t) => {
    const nreg = await m.withEnv({ MICRO_PEER_LOG: 'info' }, () =>
      m.startNodeRegistry(t, { heartbeatTimeoutMs: 1000, sweepIntervalMs: 20, closeRemovesKey: true }),
    );
    const echo = await m.startEcho(t, {});
    const b = await m.startSidecar(t, { ns: 'b', registryPort: nreg.port, appUrl: echo.url, routes: ['*'], heartbeatIntervalMs: 100 });
    const probe = await heartbeatingProbe(t, nreg.port);
    assert.equal(await findKey(probe, 'b'), b.key);
    for (let round = 1; round <= 3; round++) {
      const before = await b.metric('micro_sidecar_registry_connects_total');
      const evictions = () => (nreg.proc.stderr.match(/evicting/g) || []).length;
      const evicted = evictions();
      // the sidecar misses its heartbeats (paused); the registry evicts it
      b.proc.kill('SIGSTOP');
      try {
        await waitFor(async () => evictions() > evicted, { timeoutMs: 5000, message: `eviction ${round}` });
      } finally {
        b.proc.kill('SIGCONT');
      }
      await waitFor(async () => (await b.metric('micro_sidecar_registry_connects_total')) > before, { timeoutMs: 3000, message: `registered again (${round})` });
      await assertListed(b, probe);
    }
  });

  test('a registration the registry drops while connected is noticed and made again', { timeout: 60000 }, async (t) => {
    const nreg = await m.startNodeRegistry(t, { closeRemovesKey: true });
    const probe = await heartbeatingProbe(t, nreg.port);
    // an older connection for b's key is still open when b registers (a restarted
    // pod whose previous connection the registry has not dropped yet)
    const meshPort = await h.freePort();
    const stale = h.rawPeer(HOST, nreg.port, [HOST, meshPort, 'b'], { t });
    await stale.ready();
    const echo = await m.startEcho(t, {});
    const b = await m.startSidecar(t, { ns: 'b', registryPort: nreg.port, meshPort, appUrl: echo.url, routes: ['*'], heartbeatIntervalMs: 1000 });
    // ... and closes after b registered: 1.0.5 removes the key, b's entry with it
    await stale.close();
    await waitFor(async () => (await findKey(probe, 'b')) === null, { timeoutMs: 3000, message: 'the registry dropped b' });
    await waitFor(async () => (await b.metric('micro_sidecar_registry_unlisted_total')) >= 1, { timeoutMs: 8000, message: 'b noticed' });
    assert.match(b.log, /the registry does not list us although we are connected/);
    await assertListed(b, probe);
    assert.equal(await b.metric('micro_sidecar_registry_connects_total'), 2);
  });
});
