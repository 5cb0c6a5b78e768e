'use strict';
// A real etcd cluster for the tests: Debian's etcd-server (scripts/install-deps.sh
// --test installs it), N members on 127.0.0.1 on fresh ports, data in a temp dir.
//
//   const c = await startEtcdCluster(t, { members: 3 });
//   c.endpoints            ['http://127.0.0.1:P', ...] (client URLs)
//   await c.kill(i)        SIGKILL member i          await c.start(i)  start it again
//   await c.wipe()         kill all, delete every data dir, start a new empty cluster
//   await c.api(path, body) POST to the first live member's JSON gateway
//   await c.compact()      compact at the current revision
// Also: etcdSkipReason(), and tcpProxy() to cut one replica off from etcd.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const https = require('node:https');
const { execFileSync } = require('node:child_process');
const h = require(path.join(__dirname, '..', '..', 'node', 'lib', 'harness'));

const HOST = '127.0.0.1';

function etcdBin() {
  return process.env.MICRO_ETCD_BIN || '/usr/bin/etcd';
}

/** false when etcd is installed; otherwise why the etcd tests are skipped (or fail in CI). */
function etcdSkipReason() {
  if (h.isExecutable(etcdBin())) return false;
  if (process.env.MICRO_REQUIRE_BINARIES === '1') return false;
  return `${etcdBin()} not installed (scripts/install-deps.sh --test)`;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made with the
 * openssl command line in dir: {ca, serverCert, serverKey, clientCert, clientKey}.
 */
function makeCerts(dir) {
  const f = (n) => path.join(dir, n);
  const run = (...a) => execFileSync('openssl', a, { stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=micro-test-ca',
    '-keyout', f('ca.key'), '-out', f('ca.pem'));
  fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  fs.writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'etcd'], ['client', 'micro-registry']]) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    run('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

/** opts: members (3); tls: true = https client URLs that require a client certificate (c.certs). */
async function startEtcdCluster(t, { members = 3, tls = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'micro-etcd-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const certs = tls ? makeCerts(dir) : null;
  const scheme = tls ? 'https' : 'http';
  const ms = [];
  for (let i = 0; i < members; i++) {
    ms.push({ name: `m${i}`, client: await h.freePort(), peer: await h.freePort(), proc: null });
  }
  let token = 0;
  const cluster = ms.map((m) => `${m.name}=http://${HOST}:${m.peer}`).join(',');
  const c = {
    dir,
    certs,
    members: ms,
    endpoints: ms.map((m) => `${scheme}://${HOST}:${m.client}`),
    launch(i, state) {
      const m = ms[i];
      const args = [
        '--name', m.name,
        '--data-dir', path.join(dir, `${m.name}-${token}`),
        '--listen-client-urls', `${scheme}://${HOST}:${m.client}`,
        '--advertise-client-urls', `${scheme}://${HOST}:${m.client}`,
        '--listen-peer-urls', `http://${HOST}:${m.peer}`,
        '--initial-advertise-peer-urls', `http://${HOST}:${m.peer}`,
        '--initial-cluster', cluster,
        '--initial-cluster-token', `micro-test-${token}`,
        '--initial-cluster-state', state,
        // fast elections on loopback: a lost member is noticed in half a second
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--logger', 'zap',
        '--log-level', 'error',
      ];
      if (certs) {
        args.push('--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca,
          '--client-cert-auth');
      }
      m.proc = h.spawnProc(etcdBin(), args, { t, name: `etcd ${m.name}` });
    },
    async waitHealthy(indexes = ms.map((_, i) => i)) {
      await h.waitFor(
        async () => {
          for (const i of indexes) {
            const r = await c.request('GET', `${c.endpoints[i]}/health`);
            if (r.status !== 200 || !r.body || r.body.health !== 'true') return false;
          }
          return true;
        },
        { timeoutMs: 20000, intervalMs: 100, message: 'etcd members healthy' },
      );
    },
    /** An HTTP(S) request to a member (with the client certificate under TLS). */
    request(method, url, body) {
      if (!certs) return h.httpJson(method, url, body, {}, { timeoutMs: 3000 });
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(url, {
          method,
          ca: fs.readFileSync(certs.ca),
          cert: fs.readFileSync(certs.clientCert),
          key: fs.readFileSync(certs.clientKey),
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
          timeout: 3000,
        }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => {
            let parsed;
            try {
              parsed = JSON.parse(text);
            } catch {}
            resolve({ status: res.statusCode, text, body: parsed });
          });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(data);
      });
    },
    async kill(i) {
      const p = ms[i].proc;
      if (!p || p.exited) return;
      p.kill('SIGKILL');
      await p.waitExit(5000);
    },
    async start(i) {
      c.launch(i, 'existing');
    },
    async wipe() {
      await Promise.all(ms.map((_, i) => c.kill(i)));
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
      token++;
      ms.forEach((_, i) => c.launch(i, 'new'));
      await c.waitHealthy();
    },
    async api(p, body) {
      let last;
      for (let i = 0; i < ms.length; i++) {
        if (!ms[i].proc || ms[i].proc.exited) continue;
        try {
          const r = await c.request('POST', `${c.endpoints[i]}${p}`, body);
          if (r.status === 200) return r.body;
          last = new Error(`${p}: ${r.status} ${r.text}`);
        } catch (e) {
          last = e;
        }
      }
      throw last || new Error('no live etcd member');
    },
    async revision() {
      const r = await c.api('/v3/kv/range', { key: Buffer.from('\0').toString('base64') });
      return Number(r.header.revision);
    },
    async compact() {
      const rev = await c.revision();
      await c.api('/v3/kv/compaction', { revision: String(rev), physical: true });
      return rev;
    },
    /** Every key under prefix, decoded: {key: value}. */
    async keys(prefix) {
      const end = Buffer.from(prefix);
      end[end.length - 1]++;
      const r = await c.api('/v3/kv/range', { key: Buffer.from(prefix).toString('base64'), range_end: end.toString('base64') });
      const out = {};
      for (const kv of r.kvs || []) out[Buffer.from(kv.key, 'base64').toString()] = Buffer.from(kv.value || '', 'base64').toString();
      return out;
    },
  };
  ms.forEach((_, i) => c.launch(i, 'new'));
  await c.waitHealthy();
  return c;
}

/**
 * A TCP proxy in front of `target` ("host:port") that the test can cut: cut()
 * drops every connection and refuses new ones, heal() accepts again.
 */
async function tcpProxy(t, targetPort) {
  const port = await h.freePort();
  const socks = new Set();
  let open = true;
  const srv = net.createServer((client) => {
    if (!open) return client.destroy();
    const up = net.connect(targetPort, HOST);
    socks.add(client);
    socks.add(up);
    const drop = () => {
      client.destroy();
      up.destroy();
      socks.delete(client);
      socks.delete(up);
    };
    client.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise((r) => srv.listen(port, HOST, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return {
    url: `http://${HOST}:${port}`,
    cut() {
      open = false;
      for (const s of socks) s.destroy();
      socks.clear();
    },
    heal() {
      open = true;
    },
  };
}

function etcdVersion() {
  try {
    return execFileSync(etcdBin(), ['--version']).toString().split('\n')[0];
  } catch {
    return 'unknown';
  }
}

module.exports = { startEtcdCluster, tcpProxy, etcdSkipReason, etcdBin, etcdVersion };
