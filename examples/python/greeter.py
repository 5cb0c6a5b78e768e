#!/usr/bin/env python3
"""greeter.py - a tiny app that uses its micro-sidecar, standard library only.

It registers POST /greet with the sidecar's local API, serves it on its own
port (the sidecar forwards mesh calls for that url here) and exposes
GET /hello-other, which calls another namespace's /greet through the sidecar.

Environment:
  MICRO_NAMESPACE  our namespace, reported as "from"  (default greeter-py)
  MICRO_API_PORT   the sidecar's local HTTP API port  (default 3500)
  APP_PORT         our HTTP port                      (default 8080)
  APP_BIND         our listen address                 (default 127.0.0.1)
  OTHER_NS         namespace GET /hello-other calls   (default greeter-node)
"""

import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMESPACE = os.environ.get("MICRO_NAMESPACE", "greeter-py")
API_PORT = int(os.environ.get("MICRO_API_PORT", "3500"))
APP_PORT = int(os.environ.get("APP_PORT", "8080"))
APP_BIND = os.environ.get("APP_BIND", "127.0.0.1")
OTHER_NS = os.environ.get("OTHER_NS", "greeter-node")
SIDECAR = f"http://127.0.0.1:{API_PORT}"

# The sidecar keeps routes in memory: if it restarts, it forgets ours. Posting
# the same route again is harmless (200 "already there"), so we re-post now and
# then instead of assuming the first registration lasts forever.
REREGISTER_SECONDS = 30

stopping = threading.Event()


def log(msg):
    print(f"{NAMESPACE}: {msg}", file=sys.stderr, flush=True)


def sidecar_post(path, payload, headers=None, timeout=35):
    """POSTs JSON to the sidecar. Returns (status, parsed body or None).
    Raises OSError (URLError) when the sidecar cannot be reached."""
    req = urllib.request.Request(
        SIDECAR + path,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:  # a non-2xx answer: still an answer
        status, raw = e.code, e.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return status, body


def register_route():
    """Registers POST /greet, retrying with backoff until the sidecar answers
    (it may start after us), then keeps it registered."""
    delay = 0.2
    registered = False
    while not stopping.is_set():
        try:
            status, body = sidecar_post("/v1/routes", {"url": "/greet"}, timeout=5)
        except OSError as e:
            log(f"sidecar not reachable at {SIDECAR} ({getattr(e, 'reason', e)}); "
                f"retrying in {delay:.1f}s")
            stopping.wait(delay)
            delay = min(delay * 2, 5.0)
            continue
        if status in (200, 201):
            if not registered:
                log(f"registered /greet with the sidecar ({status})")
            registered = True
        else:
            # 409: someone registered /greet with another target. Retrying will
            # not fix that; say so and keep checking at the slow pace.
            log(f"sidecar refused /greet: {status} {body}")
        delay = 0.2
        stopping.wait(REREGISTER_SECONDS)


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the sidecar's connections to us alive between calls.
    protocol_version = "HTTP/1.1"
    server_version = "greeter-py"

    def log_message(self, fmt, *args):  # quieter than the default
        pass

    def reply(self, status, obj, headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def path_only(self):
        return urllib.parse.urlsplit(self.path).path

    def do_POST(self):
        raw = self.read_body()
        if self.path_only() != "/greet":
            return self.reply(404, {"error": f"no route {self.path_only()}"})
        # The sidecar sends the caller's payload ("data") as the JSON body.
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return self.reply(400, {"error": 'want {"name": "<string>"}'})
        caller = self.headers.get("X-Micro-Caller", "?")
        log(f"greeting {data['name']} (call from {caller}, "
            f"correlation {self.headers.get('X-Correlation-Id', '-')})")
        self.reply(200, {"greeting": f"hello {data['name']}", "from": NAMESPACE})

    def do_GET(self):
        if self.path_only() != "/hello-other":
            return self.reply(404, {"error": f"no route {self.path_only()}"})
        # Pass our caller's correlation id on, so one id follows the whole chain.
        headers = {}
        if self.headers.get("X-Correlation-Id"):
            headers["X-Correlation-Id"] = self.headers["X-Correlation-Id"]
        payload = {"name": "python"}
        if "/" in OTHER_NS:  # the path form cannot carry a '/' in the namespace
            path, payload = "/v1/call", {"namespace": OTHER_NS, "url": "/greet", "data": payload}
        else:
            path = f"/v1/call/{urllib.parse.quote(OTHER_NS, safe='')}/greet"
        try:
            status, body = sidecar_post(path, payload, headers)
        except OSError as e:
            reason = getattr(e, "reason", e)
            return self.reply(502, {"error": f"sidecar not reachable: {reason}", "status": 502})
        if status == 200:
            return self.reply(200, body)
        # Sidecar errors are {"error": ..., "status": ...}; ours is a 502 that
        # says what went wrong further down.
        if isinstance(body, dict):
            err, st = body.get("error", str(body)), body.get("status", status)
        else:
            err, st = str(body), status
        self.reply(502, {"error": f"call to {OTHER_NS}/greet failed: {err}", "status": st})


def main():
    server = ThreadingHTTPServer((APP_BIND, APP_PORT), Handler)
    server.daemon_threads = True

    def on_signal(signum, frame):
        stopping.set()
        # shutdown() waits for serve_forever() to return: call it off this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threading.Thread(target=register_route, daemon=True).start()
    log(f"listening on {APP_BIND}:{APP_PORT}, sidecar API {SIDECAR}, other namespace {OTHER_NS}")
    server.serve_forever()
    server.server_close()
    log("stopped")


if __name__ == "__main__":
    main()
