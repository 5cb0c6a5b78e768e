'use strict';
// Starting the two registry implementations the integration tests run against:
//   C     $MICRO_BUILD_DIR/registry/micro-registry (or $MICRO_REGISTRY_BIN)
//   Node  tests/node/peer.js registry (our stand-in for the @hile/micro reference)
// Both are started on 127.0.0.1 with a fresh free port, stopped in t.after.

const path = require('node:path');
const h = require(path.join(__dirname, '..', '..', 'node', 'lib', 'harness'));

const HOST = '127.0.0.1';

function cRegistryAvailable() {
  return h.isExecutable(h.registryBin());
}

/**
 * Why a C test is skipped (false = run it). With MICRO_REQUIRE_BINARIES=1 a
 * missing binary fails the tests instead of skipping them.
 */
function cSkipReason() {
  if (cRegistryAvailable() || process.env.MICRO_REQUIRE_BINARIES === '1') return false;
  return `${h.registryBin()} not built (set MICRO_BUILD_DIR or MICRO_REGISTRY_BIN)`;
}

/**
 * Spawn micro-registry and wait until GET /-/health answers.
 * opts: {port, heartbeatTimeoutMs, sweepIntervalMs, maxFrameBytes, maxConnections, args: [...]}
 */
async function startCRegistry(t, opts = {}) {
  const port = opts.port || (await h.freePort());
  const args = ['--port', String(port), '--bind', HOST, '--log-level', process.env.MICRO_TEST_LOG_LEVEL || 'info'];
  if (opts.heartbeatTimeoutMs !== undefined) args.push('--heartbeat-timeout-ms', String(opts.heartbeatTimeoutMs));
  if (opts.sweepIntervalMs !== undefined) args.push('--sweep-interval-ms', String(opts.sweepIntervalMs));
  if (opts.maxFrameBytes !== undefined) args.push('--max-frame-bytes', String(opts.maxFrameBytes));
  if (opts.maxConnections !== undefined) args.push('--max-connections', String(opts.maxConnections));
  if (opts.args) args.push(...opts.args);
  const proc = h.spawnProc(h.registryBin(), args, { t, name: 'micro-registry' });
  await h.waitFor(
    async () => {
      if (proc.exited) throw new Error(`micro-registry exited early (code ${proc.exitCode})\n${proc.describe()}`);
      const r = await h.httpJson('GET', `http://${HOST}:${port}/-/health`, undefined, {}, { timeoutMs: 1000 });
      return r.status === 200;
    },
    { timeoutMs: 10000, message: 'micro-registry answers GET /-/health' },
  ).catch((e) => {
    throw new Error(`${e.message}\n${proc.describe()}`);
  });
  return { impl: 'c', host: HOST, port, proc, http: `http://${HOST}:${port}` };
}

/** Spawn the Node reference-compatible registry (peer.js) and wait for READY. */
async function startNodeRegistry(t, opts = {}) {
  const port = opts.port || (await h.freePort());
  const args = ['registry', '--port', String(port), '--bind', HOST];
  if (opts.heartbeatTimeoutMs !== undefined) args.push('--heartbeat-timeout-ms', String(opts.heartbeatTimeoutMs));
  if (opts.sweepIntervalMs !== undefined) args.push('--sweep-interval-ms', String(opts.sweepIntervalMs));
  args.push('--max-frame-bytes', String(opts.maxFrameBytes ?? 1048576));
  if (opts.closeRemovesKey) args.push('--close-removes-key');
  const { proc, info } = await h.spawnPeer(args, { t, name: 'node registry' });
  return { impl: 'node', host: HOST, port: info.port, proc, http: null };
}

module.exports = { HOST, cRegistryAvailable, cSkipReason, startCRegistry, startNodeRegistry, h };
