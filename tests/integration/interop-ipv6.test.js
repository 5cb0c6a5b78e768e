'use strict';
// A mesh on ::1: our registry and the Node one, our sidecars and Node
// Applications (tests/node/peer.js, our stand-in for @hile/micro 1.0.5), in every
// pairing, plus the four ways IPv6 used to break:
//   - the matrix {C, Node registry} x {provider: our sidecar + micro-echo, Node
//     Application} x {consumer: our sidecar, Node Application}, calls succeeding
//     and both registries answering /-/find with the very same bytes;
//   - `--advertise-host [::1]` is accepted and announced as a reference
//     Application with advertiseHost "::1" announces itself: "/::1/{port}/{ns}";
//   - a registry answering a bracketed host ("[::1]") is dialed without the
//     brackets, and the exclude list names an IPv6 peer in both key forms;
//   - the default binds (registry --bind, sidecar --mesh-bind) are dual stack:
//     IPv6 and IPv4 peers reach them, and an IPv4-bound sidecar still dials IPv6.
//
// What the Node reference does with IPv6 (tests/node/micro.js), which we match:
//   - a peer with advertiseHost "::1" announces "/::1/{port}/{ns}"; the registry
//     keys it "::1:{port}" (formatKey, no brackets) and /-/find answers
//     {"host":"::1"} (parseAddressKey strips brackets, so "[::1]:{port}" answers
//     "::1" too);
//   - a consumer dials ws://[::1]:{port} for a host "::1" or "[::1]" (wsHost),
//     and keys and excludes it as "{host}:{port}" with the host as /-/find gave it.
//
// Skipped only when this machine has no ::1.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/interop-ipv6.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const os = require('node:os');
const path = require('node:path');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST } = m;
const { WebSocketServer } = require(path.join(h.NODE_DIR, 'node_modules', 'ws'));
const { test, waitFor, httpJson, spawnPeer, spawnProc } = h;
const V6 = '::1';

/** Why the tests cannot run here (binaries missing, no ::1), or false. */
function skipReason() {
  const bins = m.skipReason();
  if (bins) return bins;
  const has = Object.values(os.networkInterfaces()).some((list) => (list || []).some((a) => a.address === V6));
  return has ? false : 'this machine has no IPv6 loopback address (::1)';
}

function logLevel() {
  return process.env.MICRO_TEST_LOG_LEVEL || 'info';
}

/** A port free on the dual-stack wildcard (so on ::1 and 127.0.0.1 alike). */
function freePort() {
  return h.freePort('::');
}

/** The C registry; bind: an address, or null for its default. */
async function cRegistry(t, { bind = V6 } = {}) {
  const port = await freePort();
  const args = ['--port', String(port), '--log-level', logLevel()];
  if (bind) args.push('--bind', bind);
  const proc = spawnProc(h.registryBin(), args, { t, name: 'micro-registry' });
  await waitFor(
    async () => {
      if (proc.exited) throw new Error(`micro-registry exited early\n${proc.describe()}`);
      return (await httpJson('GET', `http://[${V6}]:${port}/-/health`, undefined, {}, { timeoutMs: 1000 })).status === 200;
    },
    { timeoutMs: 10000, message: 'micro-registry answers GET /-/health on ::1' },
  );
  return { impl: 'c', port, proc, http: `http://[${V6}]:${port}` };
}

async function nodeRegistry(t) {
  const { proc, info } = await spawnPeer(['registry', '--port', '0', '--bind', V6], { t, name: 'node registry' });
  return { impl: 'node', port: info.port, proc, http: null };
}

const REGISTRIES = { c: cRegistry, node: nodeRegistry };

/** A Node Application on ::1, advertising "::1", with the echo routes and a control port. */
async function nodeApp(t, ns, registryPort, extra = []) {
  const { proc, info } = await spawnPeer(
    [
      'app',
      '--namespace', ns,
      '--port', '0',
      '--registry', `[${V6}]:${registryPort}`,
      '--advertise-host', V6,
      '--bind', V6,
      '--serve-echo',
      '--control-port', '0',
      '--heartbeat-interval-ms', '200',
      '--reconnect-interval-ms', '200',
      ...extra,
    ],
    { t, name: `node app ${ns}` },
  );
  const control = `http://${HOST}:${info.controlPort}`;
  return {
    kind: 'node',
    proc,
    port: info.port,
    async call(namespace, url, data) {
      const r = await httpJson('POST', `${control}/call`, { namespace, url, data, timeout: 5000 });
      assert.equal(r.status, 200, `node control /call: ${r.text}`);
      return r.body;
    },
    async stats() {
      return (await httpJson('GET', `${control}/stats`)).body;
    },
    async mode(failEcho) {
      const r = await httpJson('POST', `${control}/mode`, { failEcho });
      assert.equal(r.status, 200, r.text);
    },
  };
}

/**
 * Our sidecar on the mesh of registry port `registryPort` (on ::1), advertising
 * `advertise` and listening on --mesh-bind `bind` (null: the default). The local
 * API stays on 127.0.0.1.
 */
async function sidecar(t, ns, registryPort, { advertise = V6, bind = null, appUrl, routes = [], registry, args = [] } = {}) {
  for (let attempt = 1; ; attempt++) {
    const meshPort = await freePort();
    const apiPort = await freePort();
    const argv = [
      '--namespace', ns,
      '--registry', registry || `[${V6}]:${registryPort}`,
      '--advertise-host', advertise,
      '--mesh-port', String(meshPort),
      '--api-port', String(apiPort),
      '--api-bind', HOST,
      '--app-url', appUrl || `http://${HOST}:1`,
      '--heartbeat-interval-ms', '200',
      '--reconnect-interval-ms', '200',
      '--handshake-timeout-ms', '2000',
      '--log-level', logLevel(),
      ...args,
    ];
    if (bind) argv.push('--mesh-bind', bind);
    for (const r of routes) argv.push('--route', r);
    const name = `sidecar ${ns}:${meshPort}`;
    const proc = spawnProc(h.sidecarBin(), argv, { t, name });
    const sc = new m.Sidecar({ ns, meshPort, apiPort, proc, name });
    try {
      await sc.waitReady();
      sc.kind = 'sidecar';
      sc.port = meshPort;
      return sc;
    } catch (e) {
      if (attempt >= 4 || !e.exitedEarly || !/cannot listen/.test(e.message)) throw e;
    }
  }
}

/** micro-echo on ::1 (so the provider sidecar dials its app over IPv6 too). */
async function echo6(t) {
  const port = await freePort();
  const proc = spawnProc(m.echoBin(), ['--port', String(port), '--bind', V6, '--name', `echo-${port}`, '--threads', '1'], { t, name: 'micro-echo' });
  await waitFor(() => /listening on/.test(proc.stdout + proc.stderr) || proc.exited, { timeoutMs: 10000, message: 'micro-echo listens' });
  assert.ok(!proc.exited, proc.describe());
  return { port, url: `http://[${V6}]:${port}` };
}

/** A WebSocket server on ::1 standing in for a registry; onConnection(ws, req). */
async function fakeRegistry(t, onConnection) {
  const wss = new WebSocketServer({ host: V6, port: 0 });
  t.after(
    () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(resolve);
      }),
  );
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', onConnection);
  return wss.address().port;
}

/** A raw peer on the registry asking /-/find; returns the RESPONSE's raw text. */
async function rawFind(t, registryPort, ns) {
  const p = h.rawPeer(V6, registryPort, `/${V6}/1/ipv6-asker`, { t });
  await p.ready();
  const before = p.rawFrames.length;
  await p.request('/-/find', { namespace: ns });
  const raw = p.rawFrames.slice(before).find((f) => /"mode":1/.test(f));
  p.close();
  return raw;
}

/** Calls ns/echo from a consumer (our sidecar or a Node app); resolves to the result. */
async function callEcho(consumer, ns, data) {
  if (consumer.kind === 'sidecar') {
    const r = await consumer.call(ns, '/echo', data, { 'X-Micro-Timeout-Ms': '5000' });
    assert.equal(r.status, 200, `sidecar call: ${r.status} ${r.text}`);
    return r.body;
  }
  const r = await consumer.call(ns, '/echo', data);
  assert.equal(r.ok, true, `node call: ${JSON.stringify(r)}`);
  return r.data;
}

describe('IPv6: a mesh on ::1 with our and Node peers', () => {
  const skip = skipReason();

  for (const regImpl of ['c', 'node']) {
    for (const provKind of ['sidecar', 'node']) {
      for (const consKind of ['sidecar', 'node']) {
        test(`${regImpl} registry, ${provKind} provider, ${consKind} consumer: calls succeed on ::1`, { skip }, async (t) => {
          const reg = await REGISTRIES[regImpl](t);
          const provNs = `prov6-${provKind}`;
          let provider;
          if (provKind === 'sidecar') {
            const app = await echo6(t);
            provider = await sidecar(t, provNs, reg.port, { appUrl: app.url, routes: ['*'] });
          } else {
            provider = await nodeApp(t, provNs, reg.port);
          }
          const consumer = consKind === 'sidecar' ? await sidecar(t, `cons6-${consKind}`, reg.port) : await nodeApp(t, `cons6-${consKind}`, reg.port);

          // /-/find: the bytes a Node registry writes, from either registry
          const want = `{"id":0,"mode":1,"twoway":false,"data":{"status":200,"data":{"host":"::1","port":${provider.port}}}}`;
          let raw;
          await waitFor(
            async () => {
              raw = await rawFind(t, reg.port, provNs);
              return raw === want;
            },
            { timeoutMs: 5000, message: `${regImpl} registry finds ${provNs} as ${want}; last ${raw}` },
          );
          if (reg.impl === 'c') {
            const list = (await httpJson('GET', `${reg.http}/v1/namespaces`)).body;
            assert.deepEqual(list[provNs], [`[::1]:${provider.port}`]);
          }

          for (let i = 0; i < 3; i++) {
            const got = await callEcho(consumer, provNs, { i, via: `${regImpl}/${provKind}/${consKind}` });
            assert.equal(got.i, i);
            assert.equal(got.via, `${regImpl}/${provKind}/${consKind}`);
          }
          if (provKind === 'node') {
            const st = await provider.stats();
            assert.equal(st.badFrames, 0);
            assert.equal(st.served['/echo'], 3);
            // our consumer announced itself as a Node app would: keyed "::1:{port}"
            if (consKind === 'sidecar') assert.ok(st.connections.includes(`::1:${consumer.port}`), JSON.stringify(st.connections));
          }
        });
      }
    }
  }

  test('--advertise-host [::1] is accepted and announced as "/::1/{port}/{ns}", like a Node app', { skip }, async (t) => {
    // a registry of our own that records the handshake paths it sees
    const paths = [];
    const port = await fakeRegistry(t, (ws, req) => paths.push(req.url));
    const a = await sidecar(t, 'bracketed', port, { advertise: '[::1]' });
    const b = await sidecar(t, 'plain', port, { advertise: '::1' });
    await waitFor(() => paths.length >= 2, { timeoutMs: 5000, message: 'both sidecars dialed the registry' });
    assert.deepEqual(paths.sort(), [`/::1/${a.meshPort}/bracketed`, `/::1/${b.meshPort}/plain`].sort());

    // with the C registry both are listed under the canonical key, and found as "::1"
    const reg = await cRegistry(t);
    const c = await sidecar(t, 'bracketed2', reg.port, { advertise: '[::1]' });
    const list = (await httpJson('GET', `${reg.http}/v1/namespaces`)).body;
    assert.deepEqual(list.bracketed2, [`[::1]:${c.meshPort}`]);
    assert.equal(
      await rawFind(t, reg.port, 'bracketed2'),
      `{"id":0,"mode":1,"twoway":false,"data":{"status":200,"data":{"host":"::1","port":${c.meshPort}}}}`,
    );

    // what is not an IPv6 literal in brackets is still refused
    for (const bad of ['[10.0.0.1]', '[host]', '[::1', 'a b']) {
      const p = spawnProc(h.sidecarBin(), ['--namespace', 'x', '--advertise-host', bad], { t, name: `bad ${bad}` });
      const r = await p.waitExit(5000);
      assert.equal(r.code, 2, `--advertise-host ${bad}: ${p.describe()}`);
      assert.match(p.stderr, /--advertise-host/);
    }
  });

  test('a bracketed host from a registry is dialed without brackets; IPv6 excludes name both key forms', { skip }, async (t) => {
    // the provider: a Node app on ::1 (registered with a real registry, unused here)
    const reg = await nodeRegistry(t);
    const prov = await nodeApp(t, 'brk', reg.port);
    // a registry of our own: answers /-/find with "[::1]" and records the finds
    const finds = [];
    const port = await fakeRegistry(t, (ws) => {
      ws.on('message', (raw) => {
        const f = JSON.parse(raw.toString());
        if (f.mode !== 0 || !f.data || f.data.url !== '/-/find') return;
        finds.push(f.data.data);
        ws.send(JSON.stringify({ id: f.id, mode: 1, twoway: false, data: { status: 200, data: { host: '[::1]', port: prov.port } } }));
      });
    });
    const a = await sidecar(t, 'brk-caller', port, { args: ['--breaker-cooldown-ms', '60000'] });

    let r = await a.call('brk', '/echo', { n: 1 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.n, 1);
    assert.equal((await prov.stats()).served['/echo'], 1);

    // a failure puts the peer in the breaker; the next find excludes it under the
    // canonical key (our registry) and the key a Node registry files it by
    await prov.mode(true);
    r = await a.call('brk', '/echo', { n: 2 }, { 'X-Micro-Retries': '0' });
    assert.equal(r.status, 500, r.text);
    await prov.mode(false);
    await a.call('brk', '/echo', { n: 3 });
    const withExclude = finds.filter((f) => f.exclude);
    assert.ok(withExclude.length >= 1, JSON.stringify(finds));
    assert.deepEqual(withExclude[0].exclude, [`[::1]:${prov.port}`, `::1:${prov.port}`]);
  });

  test('a Node consumer\'s exclude ("::1:{port}") is honoured by our registry', { skip }, async (t) => {
    const reg = await cRegistry(t);
    const app = await echo6(t);
    const prov = await sidecar(t, 'excl', reg.port, { appUrl: app.url, routes: ['*'] });
    const asker = h.rawPeer(V6, reg.port, `/${V6}/1/asker`, { t });
    await asker.ready();
    for (const key of [`::1:${prov.meshPort}`, `[::1]:${prov.meshPort}`]) {
      assert.deepEqual(await asker.request('/-/find', { namespace: 'excl', exclude: [key] }), { status: 200 }, key);
    }
    assert.deepEqual(await asker.request('/-/find', { namespace: 'excl', exclude: [`::1:${prov.meshPort + 1}`] }), {
      status: 200,
      data: { host: '::1', port: prov.meshPort },
    });
  });

  test('the default binds are dual stack: IPv6 and IPv4 peers reach them', { skip }, async (t) => {
    const reg = await cRegistry(t, { bind: null });
    assert.match(reg.proc.stdout + reg.proc.stderr, /listening bind=:: /);
    // reachable over IPv4 too
    assert.equal((await httpJson('GET', `http://${HOST}:${reg.port}/-/health`)).status, 200);

    const app = await echo6(t);
    const prov = await sidecar(t, 'dual', reg.port, { appUrl: app.url, routes: ['*'] }); // default --mesh-bind
    // an IPv6 peer (a Node app on ::1) calls it
    const node = await nodeApp(t, 'dual-node', reg.port);
    const got = await callEcho(node, 'dual', { v: 6 });
    assert.equal(got.v, 6);
    // an IPv4 peer: a sidecar advertising and bound to 127.0.0.1, registered over IPv4
    const v4 = await sidecar(t, 'dual-v4', reg.port, { advertise: HOST, bind: HOST, registry: `${HOST}:${reg.port}` });
    const list = (await httpJson('GET', `${reg.http}/v1/namespaces`)).body;
    assert.deepEqual(list['dual-v4'], [`${HOST}:${v4.meshPort}`]);
    // it dials the IPv6 provider although it listens on IPv4 only
    const r = await v4.call('dual', '/echo', { v: 4 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.v, 4);
    // the dual-stack provider's mesh port answers on both families
    for (const host of [HOST, `[${V6}]`]) {
      assert.equal((await httpJson('GET', `http://${host}:${prov.meshPort}/-/health`)).status, 200, host);
    }
  });
});
