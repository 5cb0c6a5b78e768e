'use strict';
// micro-sidecar with several registry addresses (--registry a:port,b:port): the list
// form is parsed and checked, dials that fail move on to the next address at once, and
// a sidecar whose registry dies registers on another one within its reconnect interval
// while calls keep working. Memory registries (they do not share state): the tests make
// the sidecars meet on one registry by having the other one down at first.
//
// Run: (cd tests/node && npm ci) && node --test tests/integration/registry-failover.test.js
// Env: MICRO_BUILD_DIR, MICRO_REQUIRE_BINARIES=1, MICRO_TEST_LOG_LEVEL (README.md)

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { describe } = require('node:test');
const m = require('./lib/mesh');

const { h, HOST, withEnv } = m;
const { test, waitFor, httpJson, freePort, spawnProc, sidecarBin, registryBin } = h;

const REG_NAME = 'registry.failover-test.internal';

function rootSkipReason() {
  const base = m.skipReason();
  if (base) return base;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root (mount namespace)';
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts && true'], { encoding: 'utf8' });
  if (r.status !== 0) return `unshare -m / mount --bind not available: ${(r.stderr || r.error || '').toString().trim()}`;
  return false;
}

/**
 * A wrapper that runs the sidecar in a private mount namespace whose /etc/hosts maps
 * `name` to every address of `addrs` (one line each), and whose resolv.conf names no
 * reachable server, so the name resolves from the file alone.
 */
function hostsWrapper(t, name, addrs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'micro-failover-'));
  const hosts = path.join(dir, 'hosts');
  const resolv = path.join(dir, 'resolv.conf');
  fs.writeFileSync(hosts, `127.0.0.1 localhost\n${addrs.map((a) => `${a} ${name}\n`).join('')}`);
  fs.writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  const wrapper = path.join(dir, 'micro-sidecar');
  fs.writeFileSync(
    wrapper,
    '#!/bin/sh\n' +
      `exec unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"' ` +
      `sh ${resolv} ${hosts} ${sidecarBin()} "$@"\n`,
    { mode: 0o755 },
  );
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return wrapper;
}

/** A port free on every one of `hosts`. */
async function portFreeOn(hosts) {
  for (;;) {
    const p = await freePort(hosts[0]);
    let ok = true;
    for (const host of hosts.slice(1)) {
      ok = await new Promise((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(p, host, () => srv.close(() => resolve(true)));
      });
      if (!ok) break;
    }
    if (ok) return p;
  }
}

/** micro-registry bound to `host` (a loopback address other than 127.0.0.1). */
async function registryOn(t, host, port) {
  const proc = spawnProc(registryBin(), ['--port', String(port), '--bind', host, '--log-level', process.env.MICRO_TEST_LOG_LEVEL || 'info'], {
    t,
    name: `micro-registry ${host}`,
  });
  const http = `http://${host}:${port}`;
  await waitFor(
    async () => {
      if (proc.exited) throw new Error(`micro-registry ${host} exited early\n${proc.describe()}`);
      return (await httpJson('GET', `${http}/-/health`, undefined, {}, { timeoutMs: 1000 })).status === 200;
    },
    { timeoutMs: 10000, message: `micro-registry on ${host} answers /-/health` },
  );
  return { proc, http, host, port };
}

async function health(sc) {
  const r = await httpJson('GET', `${sc.mesh}/-/health`);
  assert.equal(r.status, 200, `${sc.name} /-/health: ${r.text}`);
  return r.body;
}

/** Poll until the sidecar's /-/health says it is registered at `addr`. */
async function waitRegisteredAt(sc, addr, timeoutMs) {
  let last;
  await waitFor(
    async () => {
      last = await health(sc);
      return last.registry === true && last.registryAddress === addr;
    },
    { timeoutMs, intervalMs: 10, message: `${sc.name} registered at ${addr}` },
  ).catch((e) => {
    throw new Error(`${e.message}; last /-/health: ${JSON.stringify(last)}\n${sc.proc.describe()}`);
  });
}

/** A TCP server that accepts and never answers: a registry on a node that hangs. */
async function silentServer(t) {
  const sockets = new Set();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, HOST, resolve);
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { port: srv.address().port, accepted: () => sockets.size };
}

describe('micro-sidecar: registry failover', { skip: m.skipReason() }, () => {
  test('two registries: kill the one the sidecars are on; they register on the other within the reconnect interval and calls keep working', async (t) => {
    const reconnectIntervalMs = 3000;
    const regA = await m.startRegistry(t);
    const portB = await freePort(); // B is down at first, so both sidecars meet on A
    const list = `${HOST}:${regA.port},${HOST}:${portB}`;
    const common = { registry: list, reconnectIntervalMs };
    const echo = await m.startEcho(t, { name: 'echo-b' });
    const b = await m.startSidecar(t, { ...common, ns: 'b', appUrl: echo.url, routes: ['*'] });
    const a = await m.startSidecar(t, { ...common, ns: 'a' });
    await waitRegisteredAt(a, `${HOST}:${regA.port}`, 5000);
    await waitRegisteredAt(b, `${HOST}:${regA.port}`, 5000);
    await m.waitListed(regA, 'b', [b.key]);
    let r = await a.call('b', '/echo', { n: 1 });
    assert.equal(r.status, 200, r.text);

    const regB = await m.startRegistry(t, { port: portB });
    regA.proc.kill('SIGKILL');
    await regA.proc.waitExit(3000);
    const t0 = Date.now();
    // both are on B well within the reconnect interval: a lost connection moves on at once
    await waitRegisteredAt(a, `${HOST}:${portB}`, reconnectIntervalMs);
    await waitRegisteredAt(b, `${HOST}:${portB}`, reconnectIntervalMs);
    await m.waitListed(regB, 'a', [a.key], { timeoutMs: reconnectIntervalMs });
    await m.waitListed(regB, 'b', [b.key], { timeoutMs: reconnectIntervalMs });
    const took = Date.now() - t0;
    assert.ok(took < reconnectIntervalMs, `registered on B ${took} ms after A died`);

    for (let i = 2; i < 6; i++) {
      r = await a.call('b', '/echo', { n: i });
      assert.equal(r.status, 200, `call ${i} after the failover: ${r.text}`);
      assert.equal(r.body.n, i);
    }
    // discovery goes through B now: a namespace that appears after the failover is found
    const echoC = await m.startEcho(t, { name: 'echo-c' });
    const c = await m.startSidecar(t, { ...common, ns: 'c', appUrl: echoC.url, routes: ['*'] });
    await waitRegisteredAt(c, `${HOST}:${portB}`, 5000);
    r = await a.call('c', '/echo', { n: 7 });
    assert.equal(r.status, 200, `a finds c through B: ${r.text}`);
    assert.equal(r.body.n, 7);
    assert.equal(await a.metric('micro_sidecar_registry_disconnects_total'), 1);
    assert.equal(await a.metric('micro_sidecar_registry_connects_total'), 2);

    // and back: A restarted on its port, B killed -> both return to A
    const regA2 = await m.startRegistry(t, { port: regA.port });
    regB.proc.kill('SIGKILL');
    await regB.proc.waitExit(3000);
    await waitRegisteredAt(a, `${HOST}:${regA.port}`, reconnectIntervalMs);
    await waitRegisteredAt(b, `${HOST}:${regA.port}`, reconnectIntervalMs);
    await m.waitListed(regA2, 'b', [b.key], { timeoutMs: reconnectIntervalMs });
    r = await a.call('b', '/echo', { n: 8 });
    assert.equal(r.status, 200, r.text);
  });

  test('addresses that refuse or hang are skipped at once: registered long before the reconnect interval', async (t) => {
    const reconnectIntervalMs = 20000;
    const handshakeTimeoutMs = 300;
    const reg = await m.startRegistry(t);
    const refused = await freePort();
    const hang = await silentServer(t);
    const t0 = Date.now();
    // whichever entry the sidecar starts at, the live registry is at most two failures away
    const a = await m.startSidecar(t, {
      ns: 'a',
      registry: `${HOST}:${refused},${HOST}:${hang.port},${HOST}:${reg.port}`,
      reconnectIntervalMs,
      handshakeTimeoutMs,
      waitReady: false,
    });
    await a.waitReady(5000);
    const took = Date.now() - t0;
    assert.ok(took < 3000, `ready after ${took} ms (reconnect interval ${reconnectIntervalMs} ms)`);
    assert.equal((await health(a)).registryAddress, `${HOST}:${reg.port}`);
    await m.waitListed(reg, 'a', [a.key]);
  });

  test('every address down: one try each, then the reconnect interval; registers once one is up', async (t) => {
    const reconnectIntervalMs = 1000;
    const p1 = await freePort();
    const p2 = await freePort();
    const a = await m.startSidecar(t, { ns: 'a', registry: `${HOST}:${p1},${HOST}:${p2}`, reconnectIntervalMs, waitReady: false });
    await waitFor(() => /unreachable, will retry/.test(a.log), { timeoutMs: 5000, message: 'the sidecar says it will retry' });
    const h0 = await health(a);
    assert.equal(h0.registry, false);
    assert.equal(h0.registryAddress, null);
    // rounds, not a busy loop: at most two dials per reconnect interval
    await h.sleep(2 * reconnectIntervalMs + 200);
    const rounds = (a.log.match(/unreachable, will retry/g) || []).length;
    assert.ok(rounds >= 2 && rounds <= 4, `${rounds} rounds in ${2 * reconnectIntervalMs + 200} ms:\n${a.log}`);
    const reg = await m.startRegistry(t, { port: p2 });
    await a.waitReady(3 * reconnectIntervalMs);
    assert.equal((await health(a)).registryAddress, `${HOST}:${p2}`);
    await m.waitListed(reg, 'a', [a.key]);
  });

  test('a name that resolves to two registries: the sidecar fails over between its addresses', { skip: rootSkipReason() }, async (t) => {
    const reconnectIntervalMs = 3000;
    const hosts = ['127.0.0.2', '127.0.0.3'];
    const port = await portFreeOn(hosts);
    const regs = {};
    for (const host of hosts) regs[`${host}:${port}`] = await registryOn(t, host, port);
    const wrapper = hostsWrapper(t, REG_NAME, hosts);
    const a = await withEnv({ MICRO_SIDECAR_BIN: wrapper }, () =>
      m.startSidecar(t, { ns: 'a', registry: `${REG_NAME}:${port}`, reconnectIntervalMs }),
    );
    // registered at one of the name's addresses, and /-/health says which
    const first = (await health(a)).registryAddress;
    assert.ok(first in regs, `registryAddress ${first} is one of ${Object.keys(regs)}`);
    const other = Object.keys(regs).find((k) => k !== first);
    regs[first].proc.kill('SIGKILL');
    await regs[first].proc.waitExit(3000);
    // the name still resolves to the dead address first; the sidecar moves on to the
    // other address at once instead of redialling the dead one every interval
    const t0 = Date.now();
    await waitRegisteredAt(a, other, reconnectIntervalMs);
    assert.ok(Date.now() - t0 < reconnectIntervalMs, `registered at ${other} ${Date.now() - t0} ms after ${first} died`);
    const ns = (await httpJson('GET', `${regs[other].http}/v1/namespaces`)).body;
    assert.deepEqual(ns.a, [a.key], JSON.stringify(ns));
  });

  test('a bad --registry list exits 2 with one line naming the entry', async (t) => {
    const many = Array.from({ length: 17 }, (_, i) => `${HOST}:${9000 + i}`).join(',');
    const cases = [
      ['127.0.0.1:1,,127.0.0.1:2', /entry 2: empty entry/],
      ['127.0.0.1:1,', /entry 2: empty entry/],
      ['127.0.0.1:1,127.0.0.1', /entry 2: missing :port/],
      ['127.0.0.1:1,127.0.0.1:70000', /entry 2: port/],
      ['127.0.0.1:1, 127.0.0.1:1', /entry 2: the same address twice/],
      [many, /entry 17: too many entries/],
    ];
    for (const [value, re] of cases) {
      const p = spawnProc(sidecarBin(), ['--namespace', 'a', '--registry', value], { t, name: `micro-sidecar --registry ${value.slice(0, 40)}` });
      const { code } = await p.waitExit(5000);
      assert.equal(code, 2, `--registry ${value}: ${p.stderr}`);
      assert.match(p.stderr, re, `--registry ${value}`);
      assert.match(p.stderr, /registry/);
      assert.equal(p.stderr.trim().split('\n').length, 1, `one line on stderr: ${p.stderr}`);
    }
    // spaces around entries are fine
    const reg = await m.startRegistry(t);
    const a = await m.startSidecar(t, { ns: 'a', registry: ` ${HOST}:${reg.port} , ${HOST}:${await freePort()}` });
    await m.waitListed(reg, 'a', [a.key]);
  });
});
