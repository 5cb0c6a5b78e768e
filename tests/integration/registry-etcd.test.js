'use strict';
// Registry replicas sharing one view through a real three-member etcd cluster
// (--store etcd): cross-replica find and exclude, clean close, a replica killed,
// a replica started later, one etcd member down, quorum lost and healed, etcd
// wiped and restarted, a compacted watch revision, readiness and the store state
// in health and metrics, foreign and forged entries under the prefix, a broken
// etcd (a fake server: garbage, oversized and truncated answers), TLS with a client
// certificate. Node reference-compatible apps and real sidecars are
// spread over the replicas. Lease TTL 2000 ms throughout.
//
// Run: MICRO_BUILD_DIR=$PWD/build node --test tests/integration/registry-etcd.test.js

const assert = require('node:assert/strict');
const { describe } = require('node:test');
const { HOST, cSkipReason, h } = require('./lib/registries');
const { startRegistry, startEcho, startSidecar } = require('./lib/mesh');
const { startEtcdCluster, tcpProxy, etcdSkipReason } = require('./lib/etcd');
const { test, waitFor, rawPeer, httpJson, freePort, spawnPeer } = h;

const skip = cSkipReason() || etcdSkipReason();
const TTL = 2000;

async function startReplica(t, endpoints, opts = {}) {
  const reg = await startRegistry(t, {
    args: [
      '--store', 'etcd',
      '--etcd-endpoints', endpoints.join(','),
      '--etcd-prefix', opts.prefix || '/micro-test',
      '--etcd-lease-ttl-ms', String(opts.ttl || TTL),
      '--etcd-dial-timeout-ms', '500',
      ...(opts.args || []),
    ],
  });
  if (opts.waitReady !== false) await waitReady(reg);
  return reg;
}

async function waitReady(reg, timeoutMs = 10000) {
  await waitFor(async () => (await httpJson('GET', `${reg.http}/-/ready`)).status === 200, {
    timeoutMs,
    message: `replica :${reg.port} /-/ready is 200`,
  });
}

async function listed(reg) {
  const r = await httpJson('GET', `${reg.http}/v1/namespaces`);
  assert.equal(r.status, 200);
  const out = {};
  for (const ns of Object.keys(r.body).sort()) out[ns] = [...r.body[ns]].sort();
  return out;
}

/** Waits until ns on reg lists exactly keys (sorted compare). */
async function waitListed(reg, ns, keys, timeoutMs = 5000) {
  const want = [...keys].sort();
  let last;
  await waitFor(
    async () => {
      last = (await listed(reg))[ns] || [];
      return JSON.stringify(last) === JSON.stringify(want);
    },
    { timeoutMs, message: `replica :${reg.port} lists ${ns} = ${JSON.stringify(want)} (last ${JSON.stringify(last)})` },
  );
}

async function health(reg) {
  const r = await httpJson('GET', `${reg.http}/-/health`);
  assert.equal(r.status, 200, 'health stays 200 whatever etcd does');
  return r.body;
}

/** A raw instance registered on reg under ns. */
async function instance(t, reg, ns, port) {
  port = port || (await freePort());
  const p = rawPeer(HOST, reg.port, [HOST, port, ns], { t });
  await p.ready();
  p.key = `${HOST}:${port}`;
  return p;
}

async function find(asker, ns, exclude) {
  const r = await asker.request('/-/find', exclude ? { namespace: ns, exclude } : { namespace: ns });
  assert.equal(r.status, 200);
  return 'data' in r ? `${r.data.host}:${r.data.port}` : null;
}

async function findSet(asker, ns, n = 40, exclude) {
  const seen = new Set();
  for (let i = 0; i < n; i++) seen.add(await find(asker, ns, exclude));
  return [...seen].sort();
}

async function cluster3(t, opts = {}) {
  const etcd = await startEtcdCluster(t, { members: 3 });
  const reps = [];
  for (let i = 0; i < 3; i++) reps.push(await startReplica(t, etcd.endpoints, opts));
  return { etcd, reps };
}

describe('micro-registry --store etcd', { skip }, () => {
  test('cross-replica find, exclude, namespaces and clean close; store state and readiness', async (t) => {
    const { etcd, reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    const a = await instance(t, r1, 'pay');
    const b = await instance(t, r2, 'pay');
    const keys = [];
    for (const reg of reps) {
      await waitFor(async () => ((await listed(reg)).pay || []).length === 2, { timeoutMs: 3000 });
      keys.push((await listed(reg)).pay);
    }
    assert.deepEqual(keys[0], keys[1]);
    assert.deepEqual(keys[1], keys[2]);
    const asker = await instance(t, r3, 'asker');
    assert.deepEqual(await findSet(asker, 'pay'), keys[0], 'r3 finds both (neither registered with r3)');
    assert.deepEqual(await findSet(asker, 'pay', 20, [keys[0][0]]), [keys[0][1]], 'exclude works on remote instances');
    assert.equal(await find(asker, 'pay', keys[0]), null, 'everything excluded: no data');

    // health + metrics show the store; every replica is ready
    const hb = await health(r3);
    assert.equal(hb.store.kind, 'etcd');
    assert.equal(hb.store.state, 'synced');
    assert.equal(hb.store.ready, true);
    assert.ok(hb.store.remote_instances >= 2);
    assert.equal(hb.instances, 3, 'pay x2 + the asker');
    const m = (await httpJson('GET', `${r3.http}/metrics`)).text;
    assert.match(m, /^micro_registry_store_synced 1$/m);
    assert.match(m, /^micro_registry_instances\{namespace="pay"\} 2$/m);

    // the keys in etcd: one per instance, value names the replica and namespace
    const inEtcd = await etcd.keys('/micro-test/instances/');
    assert.equal(Object.keys(inEtcd).length, 3);
    for (const v of Object.values(inEtcd)) assert.match(v, /^\{"replica":"[^"]+","ns":"(pay|asker)"\}$/);

    // a clean close on r1 disappears from every replica within a second
    const t0 = Date.now();
    await a.close();
    for (const reg of reps) await waitListed(reg, 'pay', [b.key], 1000);
    assert.ok(Date.now() - t0 < 1500, 'close propagated within ~1 s');
    assert.deepEqual(await findSet(asker, 'pay', 10), [b.key]);
  });

  test('Node apps and sidecars on different replicas call each other', async (t) => {
    const { reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    // a Node reference-compatible app serving echo, registered with r1
    const nodeApp = await spawnPeer(
      ['app', '--namespace', 'node-echo', '--port', '0', '--registry', `${HOST}:${r1.port}`, '--advertise-host', HOST,
        '--serve-echo', '--control-port', String(await freePort())],
      { t, name: 'node app r1' },
    );
    // a C sidecar in front of micro-echo, registered with r2
    const echo = await startEcho(t);
    const sc = await startSidecar(t, { ns: 'c-echo', registryPort: r2.port, appUrl: echo.url, routes: ['*'] });
    // a consumer sidecar on r3 reaches both
    const consumer = await startSidecar(t, { ns: 'caller', registryPort: r3.port });
    await waitFor(async () => ((await listed(r3))['node-echo'] || []).length === 1 && ((await listed(r3))['c-echo'] || []).length === 1, {
      timeoutMs: 3000,
      message: 'r3 sees both providers',
    });
    const r = await consumer.call('node-echo', '/echo', { hello: 'node' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.hello, 'node');
    const r2c = await consumer.call('c-echo', '/echo', { hello: 'c' });
    assert.equal(r2c.status, 200, r2c.text);
    // the Node app (via r1) calls the sidecar-fronted app registered on r2
    const ctl = `http://${HOST}:${nodeApp.info.controlPort}`;
    const viaNode = await httpJson('POST', `${ctl}/call`, { namespace: 'c-echo', url: '/echo', data: { from: 'node' } });
    assert.equal(viaNode.status, 200);
    assert.equal(viaNode.body.ok, true, viaNode.text);
    void sc;
  });

  test('SIGKILL of a replica: its instances vanish elsewhere within TTL + 2 s, nobody else is touched', async (t) => {
    const { reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    const keep1 = await instance(t, r1, 'svc');
    const keep2 = await instance(t, r2, 'svc');
    const doomed = [await instance(t, r3, 'svc'), await instance(t, r3, 'other')];
    await waitFor(async () => ((await listed(r1)).svc || []).length === 3 && ((await listed(r1)).other || []).length === 1, { timeoutMs: 3000 });
    const before = (await listed(r1)).svc;
    r3.proc.kill('SIGKILL');
    const t0 = Date.now();
    await waitFor(async () => ((await listed(r1)).svc || []).length === 2 && !(await listed(r1)).other, {
      timeoutMs: TTL + 2000,
      intervalMs: 50,
      message: "r3's instances gone from r1 within TTL + 2 s",
    });
    const took = Date.now() - t0;
    await waitFor(async () => ((await listed(r2)).svc || []).length === 2 && !(await listed(r2)).other, { timeoutMs: 1000 });
    const after = (await listed(r1)).svc;
    assert.equal(after.length, 2);
    assert.ok(after.every((k) => before.includes(k)));
    assert.deepEqual(after, (await listed(r2)).svc);
    t.diagnostic(`gone after ${took} ms`);
    void keep1, void keep2, void doomed;
  });

  test('a replica started later sees everything; /-/ready is 503 until it synced', async (t) => {
    const etcd = await startEtcdCluster(t, { members: 3 });
    const r1 = await startReplica(t, etcd.endpoints);
    for (let i = 0; i < 20; i++) await instance(t, r1, `ns${i % 4}`);
    // a replica whose etcd is not reachable yet is live but not ready
    const proxy = await tcpProxy(t, etcd.members[0].client);
    proxy.cut();
    const late = await startReplica(t, [proxy.url], { waitReady: false });
    assert.equal((await httpJson('GET', `${late.http}/-/ready`)).status, 503);
    assert.equal((await health(late)).store.state, 'syncing');
    proxy.heal();
    await waitReady(late);
    const a = await listed(r1);
    const b = await listed(late);
    assert.deepEqual(b, a);
    assert.equal(Object.values(b).flat().length, 20);
  });

  test('one etcd member down: nothing changes, registrations still propagate', async (t) => {
    const { etcd, reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    await instance(t, r1, 'x');
    await instance(t, r2, 'x');
    await waitFor(async () => ((await listed(r3)).x || []).length === 2, { timeoutMs: 3000 });
    // every replica starts on the first endpoint: kill that member
    await etcd.kill(0);
    const more = await instance(t, r3, 'x');
    void more;
    for (const reg of reps) await waitFor(async () => ((await listed(reg)).x || []).length === 3, { timeoutMs: 5000, message: `:${reg.port} lists 3` });
    await waitFor(async () => (await health(r1)).store.state === 'synced', { timeoutMs: 5000 });
    const asker = await instance(t, r1, 'asker');
    assert.equal((await findSet(asker, 'x', 40)).length, 3);
  });

  test('quorum lost: finds keep answering, local registrations kept; healed: they propagate', async (t) => {
    const { etcd, reps } = await cluster3(t);
    const [r1, r2] = reps;
    await instance(t, r1, 'q');
    await instance(t, r2, 'q');
    await waitFor(async () => ((await listed(r1)).q || []).length === 2, { timeoutMs: 3000 });
    await etcd.kill(1);
    await etcd.kill(2);
    // the view stays, even past the lease TTL (nobody can expire anything)
    const during = await instance(t, r1, 'q');
    void during;
    await waitFor(async () => (await health(r1)).store.state === 'degraded', { timeoutMs: TTL + 3000, message: 'r1 degraded' });
    assert.equal(((await listed(r1)).q || []).length, 3, 'r1: its own two + the new local one');
    assert.equal(((await listed(r2)).q || []).length, 2, "r2 still serves the last view (cannot see r1's new one)");
    const asker = await instance(t, r2, 'asker');
    assert.equal((await findSet(asker, 'q', 30)).length, 2, 'finds keep answering on r2');
    assert.equal((await httpJson('GET', `${r2.http}/-/ready`)).status, 200, 'a replica that synced once stays ready');
    const m = (await httpJson('GET', `${r1.http}/metrics`)).text;
    assert.match(m, /^micro_registry_store_up 0$/m);
    // heal
    await etcd.start(1);
    await etcd.start(2);
    await etcd.waitHealthy();
    for (const reg of reps) await waitFor(async () => ((await listed(reg)).q || []).length === 3, { timeoutMs: 10000, message: `:${reg.port} sees all 3 after the heal` });
    await waitFor(async () => (await health(r2)).store.state === 'synced', { timeoutMs: 5000 });
  });

  test('etcd wiped and restarted empty: replicas notice and publish again', async (t) => {
    const { etcd, reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    await instance(t, r1, 'w');
    await instance(t, r2, 'w');
    await instance(t, r3, 'w');
    await waitFor(async () => ((await listed(r1)).w || []).length === 3, { timeoutMs: 3000 });
    await etcd.wipe();
    await waitFor(async () => Object.keys(await etcd.keys('/micro-test/instances/')).length === 3, {
      timeoutMs: 10000,
      message: 'every replica wrote its key again',
    });
    for (const reg of reps) await waitFor(async () => ((await listed(reg)).w || []).length === 3, { timeoutMs: 5000 });
    for (const reg of reps) await waitFor(async () => (await health(reg)).store.state === 'synced', { timeoutMs: 5000 });
    // and the new cluster carries changes again
    await instance(t, r1, 'w');
    for (const reg of reps) await waitFor(async () => ((await listed(reg)).w || []).length === 4, { timeoutMs: 3000 });
  });

  test('a watch resumed from a compacted revision resyncs in full', async (t) => {
    const etcd = await startEtcdCluster(t, { members: 3 });
    const r1 = await startReplica(t, etcd.endpoints);
    const proxy = await tcpProxy(t, etcd.members[0].client);
    const r2 = await startReplica(t, [proxy.url], { ttl: 5000 });
    const gone = await instance(t, r1, 'c');
    await waitFor(async () => ((await listed(r2)).c || []).length === 1, { timeoutMs: 3000 });
    proxy.cut(); // r2 loses etcd, keeps its view
    await gone.close();
    await instance(t, r1, 'c');
    await instance(t, r1, 'd');
    await waitFor(async () => ((await listed(r1)).c || []).length === 1 && (await listed(r1)).d, { timeoutMs: 3000 });
    // r1's writes are in etcd (the delete too) before the compaction covers them
    await waitFor(async () => {
      const keys = Object.keys(await etcd.keys('/micro-test/instances/'));
      return keys.length === 2 && !keys.includes(`/micro-test/instances/${gone.key}`);
    }, { timeoutMs: 5000, message: "r1's writes reached etcd" });
    await etcd.compact();
    assert.equal(((await listed(r2)).c || []).length, 1, 'r2 still shows its last view');
    proxy.heal();
    let views;
    await waitFor(async () => {
      views = [JSON.stringify(await listed(r1)), JSON.stringify(await listed(r2))];
      return views[0] === views[1];
    }, { timeoutMs: 8000, message: 'r2 resynced to the view of r1' }).catch(async (e) => {
      throw new Error(`${e.message}: r1 ${views[0]} r2 ${views[1]} etcd ${JSON.stringify(await etcd.keys('/micro-test/'))}`);
    });
    const m = (await httpJson('GET', `${r2.http}/metrics`)).text;
    assert.match(m, /^micro_registry_store_resyncs_total [2-9]/m, 'a second full read happened');
  });

  test('an instance that moves to another replica is not removed by the old one', async (t) => {
    const { reps } = await cluster3(t);
    const [r1, r2, r3] = reps;
    const port = await freePort();
    const first = await instance(t, r1, 'mv', port);
    await waitFor(async () => ((await listed(r3)).mv || []).length === 1, { timeoutMs: 3000 });
    // the same host:port registers on r2 (a sidecar that failed over)
    const second = await instance(t, r2, 'mv', port);
    // r1 learns it moved and closes its old connection; the key stays
    await first.waitClosed(3000);
    await new Promise((r) => setTimeout(r, 500));
    for (const reg of reps) assert.deepEqual((await listed(reg)).mv, [`${HOST}:${port}`]);
    second.close();
    for (const reg of reps) await waitFor(async () => !(await listed(reg)).mv, { timeoutMs: 2000 });
  });

  test('foreign and forged entries under the prefix are skipped and counted, never served', async (t) => {
    const etcd = await startEtcdCluster(t, { members: 1 });
    const r1 = await startReplica(t, etcd.endpoints);
    const ok = await instance(t, r1, 'real');
    const r2 = await startReplica(t, etcd.endpoints);
    const b64 = (x) => Buffer.from(x).toString('base64');
    const put = (k, v) => etcd.api('/v3/kv/put', { key: b64(k), value: b64(v) });
    await put('/micro-test/instances/10.0.0.9:1', 'not json');
    await put('/micro-test/instances/10.0.0.9:2', JSON.stringify({ replica: 'x', ns: 'evil\u202eb' }));
    await put('/micro-test/instances/10.0.0.9:3', JSON.stringify({ replica: 'x', ns: 'a\nlevel=error' }));
    await put('/micro-test/instances/x verified=true:4', JSON.stringify({ replica: 'x', ns: 'z' }));
    await put('/micro-test/instances/nope', JSON.stringify({ replica: 'x', ns: 'z' }));
    await put('/micro-test/other', 'junk');
    await put('/micro-test/instances/10.0.0.9:5', JSON.stringify({ replica: 'x', ns: 'ok-foreign' }));
    // the well-formed foreign entry is an instance like any other; the rest are not
    await waitListed(r2, 'ok-foreign', ['10.0.0.9:5']);
    assert.deepEqual(Object.keys(await listed(r2)).sort(), ['ok-foreign', 'real']);
    assert.deepEqual((await listed(r2)).real, [ok.key]);
    const m = (await httpJson('GET', `${r2.http}/metrics`)).text;
    const bad = Number(m.match(/^micro_registry_store_bad_answers_total (\d+)/m)[1]);
    assert.ok(bad >= 4, `bad entries counted (${bad})`);
    // a replica started now reads them in its first range: the same outcome
    const r3 = await startReplica(t, etcd.endpoints);
    assert.deepEqual(await listed(r3), await listed(r2));
    await waitFor(async () => (await health(r3)).store.state === 'synced', { timeoutMs: 5000 });
  });

  test('a broken etcd (garbage, oversized, truncated answers) is logged, never a crash', async (t) => {
    const http = require('node:http');
    let mode = 'garbage';
    const srv = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (mode === 'garbage') return res.end('\u0000\u00ff{{{ not json');
        if (mode === 'hugewatch' && req.url !== '/v3/watch') {
          // a sane etcd but for the watch
          if (req.url === '/v3/lease/grant') return res.end('{"header":{"revision":"1"},"ID":"7","TTL":"10"}');
          if (req.url === '/v3/lease/keepalive') return res.end('{"result":{"header":{"revision":"1"},"ID":"7","TTL":"10"}}');
          return res.end('{"header":{"cluster_id":"1","revision":"1"},"succeeded":true}');
        }
        if (mode === 'huge' || mode === 'hugewatch') {
          // a watch message that never ends: bigger than the limit
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"result":{"events":[');
          const chunk = '{"kv":{"key":"QUFB","value":"QUFB"}},'.repeat(1000);
          let sent = 0;
          const pump = () => {
            while (sent < 12 << 20) {
              sent += chunk.length;
              if (!res.write(chunk)) return res.once('drain', pump);
            }
            res.end();
          };
          return pump();
        }
        if (mode === 'errors') return res.writeHead(500).end('{"error":"etcdserver: \\u001b[31mboom","code":2}');
        res.socket.destroy(); // truncated
      });
    });
    await new Promise((r) => srv.listen(0, HOST, r));
    t.after(() => srv.close());
    const url = `http://${HOST}:${srv.address().port}`;
    const reg = await startReplica(t, [url], { waitReady: false });
    const p = await instance(t, reg, 'local');
    for (const m of ['garbage', 'huge', 'errors', 'truncated']) {
      mode = m;
      await waitFor(() => /etcd: /.test(reg.proc.stderr.split('\n').slice(-20).join('\n')), { timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(reg.proc.exited, false, `survives ${m}`);
      const hb = await health(reg);
      assert.equal(hb.store.state, 'syncing');
      assert.deepEqual((await listed(reg)).local, [p.key], 'local registrations keep working');
    }
    assert.equal((await httpJson('GET', `${reg.http}/-/ready`)).status, 503, 'never synced: not ready');
    assert.doesNotMatch(reg.proc.stderr, /\u001b/, 'no control characters from etcd in the log');
    // sane but for a watch stream that sends one endless message: synced, then the
    // watch is cut at the limit and resumed, again and again, and nothing else moves
    mode = 'hugewatch';
    await waitReady(reg);
    await waitFor(() => (reg.proc.stderr.match(/watch ended: resuming/g) || []).length >= 2, { timeoutMs: 10000 });
    assert.match(reg.proc.stderr, /bad data|larger than/);
    assert.equal(reg.proc.exited, false);
    assert.deepEqual((await listed(reg)).local, [p.key]);
  });

  test('TLS: https endpoints with a CA and a client certificate; without the certificate no sync', async (t) => {
    const etcd = await startEtcdCluster(t, { members: 1, tls: true });
    const c = etcd.certs;
    const tlsArgs = ['--etcd-ca-file', c.ca, '--etcd-cert-file', c.clientCert, '--etcd-key-file', c.clientKey];
    const r1 = await startReplica(t, etcd.endpoints, { args: tlsArgs });
    const r2 = await startReplica(t, etcd.endpoints, { args: tlsArgs });
    const a = await instance(t, r1, 'secure');
    await waitListed(r2, 'secure', [a.key], 3000);
    assert.equal((await health(r2)).store.state, 'synced');
    // the CA alone: etcd refuses the handshake (client-cert-auth), the replica never syncs
    const bare = await startReplica(t, etcd.endpoints, { args: ['--etcd-ca-file', c.ca], waitReady: false });
    await waitFor(() => /etcd: (resync|lease grant) failed/.test(bare.proc.stderr), { timeoutMs: 5000 });
    assert.equal((await httpJson('GET', `${bare.http}/-/ready`)).status, 503);
    // no CA: etcd's certificate is not trusted
    const noca = await startReplica(t, etcd.endpoints, { waitReady: false });
    await waitFor(() => /certificate|SSL/i.test(noca.proc.stderr), { timeoutMs: 5000 });
    assert.equal((await httpJson('GET', `${noca.http}/-/ready`)).status, 503);
  });

  test('flag errors: --store etcd needs endpoints, bad URLs and prefixes are refused', async (t) => {
    for (const args of [
      ['--store', 'etcd'],
      ['--store', 'etcd', '--etcd-endpoints', 'ftp://x:1'],
      ['--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-prefix', 'noslash'],
      ['--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:1,', '--etcd-prefix', '/a b'],
      ['--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-lease-ttl-ms', '999'],
      ['--store', 'redis'],
    ]) {
      const p = h.spawnProc(h.registryBin(), ['--port', String(await freePort()), ...args], { t, name: 'bad flags' });
      const r = await p.waitExit(5000);
      assert.equal(r.code, 2, `${args.join(' ')} -> exit ${JSON.stringify(r)}\n${p.stderr}`);
    }
    const help = h.spawnProc(h.registryBin(), ['--help'], { t, name: 'help' });
    await help.waitExit(5000);
    for (const f of ['--store', '--etcd-endpoints', '--etcd-prefix', '--etcd-lease-ttl-ms', '--etcd-dial-timeout-ms', '--etcd-ca-file', '--etcd-cert-file', '--etcd-key-file']) {
      assert.ok(help.stdout.includes(f), `--help lists ${f}`);
    }
  });
});
