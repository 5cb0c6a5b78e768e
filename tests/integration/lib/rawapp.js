'use strict';
// A raw TCP "app" for the tests that need an app which records the exact bytes it
// received (to prove that no second request reached it) or sends bad HTTP on
// purpose. It splits what it receives into requests by Content-Length (enough
// for what a sidecar sends) and answers each with answer(req), which returns the
// raw bytes to write (a string is sent as latin1, so any byte can be sent), or
// null to stay silent. Keep-alive: the connection stays open unless the answer
// says otherwise.

const net = require('node:net');

function parseHead(head) {
  const lines = head.split('\r\n');
  const [method, target, version] = lines[0].split(' ');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { method, target, version, headers, requestLine: lines[0] };
}

/** ok(body, ctype): a well-formed 200 answer as raw text. */
function ok(body = '{"ok":true}', ctype = 'application/json') {
  return `HTTP/1.1 200 OK\r\nContent-Type: ${ctype}\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;
}

async function startRawApp(t, answer = () => ok()) {
  const app = { received: '', requests: [], connections: 0, answer };
  const socks = new Set();
  const server = net.createServer((sock) => {
    app.connections++;
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    let buf = '';
    sock.on('data', (d) => {
      const s = d.toString('latin1');
      app.received += s;
      buf += s;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const req = parseHead(buf.slice(0, end));
        const len = Number(req.headers['content-length'] || 0);
        if (buf.length < end + 4 + len) return;
        req.body = buf.slice(end + 4, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        app.requests.push(req);
        const out = app.answer(req, app);
        if (out != null) sock.write(Buffer.from(out, 'latin1'));
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.port = server.address().port;
  app.url = `http://127.0.0.1:${app.port}`;
  app.close = () => new Promise((resolve) => server.close(resolve));
  t.after(() => {
    server.close();
    for (const s of socks) s.destroy();
  });
  server.unref();
  return app;
}

/**
 * Sends raw bytes to host:port and collects everything until the peer closes
 * (or timeoutMs passes). Resolves {text, closed}.
 */
function rawExchange(port, bytes, { host = '127.0.0.1', timeoutMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    let text = '';
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.from(bytes, 'latin1')));
    sock.on('data', (d) => {
      text += d.toString('latin1');
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

/** How many HTTP responses (status lines) a raw exchange carried. */
function statusLines(text) {
  return (text.match(/HTTP\/1\.[01] \d{3}/g) || []).map((s) => Number(s.slice(9)));
}

module.exports = { startRawApp, rawExchange, statusLines, ok, parseHead };
