'use strict';
// Deeply nested JSON through our sidecars and Node peers (tests/node/peer.js):
// payloads up to JSCAN_MAX_DEPTH (1,024) levels cross the mesh both ways — a Node
// peer accepts 1,000 — and anything deeper is refused at once with a clear
// error, never dropped to wait out a timeout:
//   - the local API answers 400;
//   - a REQUEST over the mesh gets an error RESPONSE (400) for its id;
//   - a RESPONSE over the mesh fails the call it answers with 502;
//   - an app answer nested too deeply is a 502, not a string.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/deep-payloads.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const path = require('node:path');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST } = m;
const { test, httpJson, spawnPeer } = h;
const { WebSocketServer } = require(path.join(h.NODE_DIR, 'node_modules', 'ws'));

const LIMIT = 1024; // JSCAN_MAX_DEPTH

/** An array nested `depth` levels: [[...[1]...]]. */
const deepArray = (depth) => '['.repeat(depth) + '1' + ']'.repeat(depth);
/** An object nested `depth` levels: {"a":{"a":...1...}}. */
const deepObject = (depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** The nesting of a parsed value. */
function depthOf(v) {
  let d = 0;
  while (v !== null && typeof v === 'object') {
    d++;
    v = Array.isArray(v) ? v[0] : 'a' in v ? v.a : v.data; // data: the {_correlationId, data} wrapper
  }
  return d;
}

async function nodeApp(t, ns, registryPort) {
  const { proc, info } = await spawnPeer(
    ['app', '--namespace', ns, '--port', '0', '--registry', `${HOST}:${registryPort}`, '--advertise-host', HOST, '--bind', HOST,
      '--serve-echo', '--control-port', '0', '--heartbeat-interval-ms', '200', '--reconnect-interval-ms', '200'],
    { t, name: `node app ${ns}` },
  );
  const control = `http://${HOST}:${info.controlPort}`;
  return {
    proc,
    key: `${HOST}:${info.port}`,
    /** The control port's /call with a raw JSON text as data; {ok, data | status, message}. */
    async callRaw(namespace, url, dataText, timeout = 10000) {
      const body = `{"namespace":${JSON.stringify(namespace)},"url":${JSON.stringify(url)},"data":${dataText},"timeout":${timeout},"retries":0}`;
      const r = await httpJson('POST', `${control}/call`, body, {}, { timeoutMs: timeout + 5000 });
      assert.equal(r.status, 200, r.text.slice(0, 300));
      return r.body;
    },
    async stats() {
      return (await httpJson('GET', `${control}/stats`)).body;
    },
  };
}

async function timed(fn) {
  const t0 = Date.now();
  const r = await fn();
  return { r, ms: Date.now() - t0 };
}

describe('deep payloads', { skip: m.skipReason() }, () => {
  test('1,000 and 1,024 levels cross our sidecars both ways; 1,025 is a 400 at once', async (t) => {
    const mesh = await m.startMesh(t, { providers: [{ ns: 'deep' }], consumers: [{ ns: 'caller' }] });
    const a = mesh.consumers[0];
    for (const [name, text, want] of [
      ['array of 1,000', deepArray(1000), 1001], // inside the {_correlationId, data} wrapper
      ['object of 1,000', deepObject(1000), 1000],
      ['object at the limit', deepObject(LIMIT), LIMIT],
    ]) {
      const r = await a.call('deep', '/echo', text, { 'X-Micro-Timeout-Ms': '10000' });
      assert.equal(r.status, 200, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(depthOf(r.body), want, name);
    }
    for (const text of [deepArray(LIMIT + 1), deepObject(LIMIT + 1), deepArray(100000)]) {
      const { r, ms } = await timed(() => a.call('deep', '/echo', text, { 'X-Micro-Timeout-Ms': '10000' }));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error, /nested deeper than 1024 levels/);
      assert.ok(ms < 2000, `answered in ${ms} ms`);
    }
    assert.equal(await mesh.providers[0].sidecar.metric('micro_sidecar_bad_frames_total'), 0);
  });

  test('with Node peers: 1,000 levels both ways; deeper ones answered at once', async (t) => {
    const registry = await m.startRegistry(t);
    const node = await nodeApp(t, 'nodedeep', registry.port);
    const echo = await m.startEcho(t);
    const prov = await m.startSidecar(t, { ns: 'cdeep', registryPort: registry.port, routes: ['*'], appUrl: echo.url });
    const a = await m.startSidecar(t, { ns: 'cdeep-caller', registryPort: registry.port });
    await m.waitListed(registry, 'nodedeep', [node.key]);

    // our sidecar -> Node provider
    let r = await a.call('nodedeep', '/echo', deepObject(1000), { 'X-Micro-Timeout-Ms': '10000' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(depthOf(r.body), 1000);
    assert.equal((await node.stats()).badFrames, 0);

    // Node consumer -> our provider -> micro-echo
    let n = await node.callRaw('cdeep', '/echo', deepObject(1000));
    assert.equal(n.ok, true, JSON.stringify(n).slice(0, 300));
    assert.equal(depthOf(n.data), 1000);

    // a Node consumer's REQUEST too deep for a frame: a 400 RESPONSE at once
    let { r: nr, ms } = await timed(() => node.callRaw('cdeep', '/echo', deepObject(1100)));
    assert.equal(nr.ok, false);
    assert.equal(nr.status, 400, JSON.stringify(nr));
    assert.match(nr.message, /nested deeper than 1024 levels/);
    assert.ok(ms < 3000, `answered in ${ms} ms`);

    // within a frame's envelope, but the app's answer is deeper than we take: 502 at once
    ({ r: nr, ms } = await timed(() => node.callRaw('cdeep', '/echo', deepObject(1027))));
    assert.equal(nr.ok, false);
    assert.equal(nr.status, 502, JSON.stringify(nr));
    assert.match(nr.message, /app answer is nested deeper than 1024 levels/);
    assert.ok(ms < 3000, `answered in ${ms} ms`);

    // the provider is fine afterwards
    n = await node.callRaw('cdeep', '/echo', '{"ok":1}');
    assert.equal(n.ok, true);
    assert.equal(n.data.ok, 1);
  });

  test('a RESPONSE nested too deeply fails the call at once (502), not at its timeout', async (t) => {
    const registry = await m.startRegistry(t);
    // a provider of our own that answers every request with 1,100 levels
    const wss = new WebSocketServer({ host: HOST, port: 0 });
    t.after(() => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(resolve);
    }));
    await new Promise((resolve) => wss.once('listening', resolve));
    let requests = 0;
    wss.on('connection', (ws) => {
      ws.on('message', (raw) => {
        const f = JSON.parse(raw.toString());
        if (f.mode !== 0 || !f.twoway) return;
        requests++;
        ws.send(`{"id":${f.id},"mode":1,"twoway":false,"data":{"status":200,"data":${deepArray(1100)}}}`);
      });
    });
    // registered under its address by a raw connection to the registry
    const reg = h.rawPeer(HOST, registry.port, `/${HOST}/${wss.address().port}/deepans`, { t });
    await reg.ready();
    await m.waitListed(registry, 'deepans', [`${HOST}:${wss.address().port}`]);
    const a = await m.startSidecar(t, { ns: 'deepans-caller', registryPort: registry.port });

    const { r, ms } = await timed(() => a.call('deepans', '/x', { q: 1 }, { 'X-Micro-Timeout-Ms': '10000', 'X-Micro-Retries': '0' }));
    assert.equal(r.status, 502, r.text);
    assert.match(r.body.error, /answer is nested deeper than 1024 levels/);
    assert.ok(ms < 3000, `answered in ${ms} ms`);
    assert.equal(requests, 1);
  });
});
