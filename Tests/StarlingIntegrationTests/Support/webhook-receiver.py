#!/usr/bin/env python3
"""A webhook receiver for the integration tests: appends every POST body as one JSON line
(with the Idempotency-Key header) to the file given, answers 200. Writes its port to the second
file given (once listening)."""
import http.server
import json
import signal
import sys

# A test runner may ignore SIGTERM, and children inherit that: restore the default.
signal.signal(signal.SIGTERM, signal.SIG_DFL)

out = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(out, "a") as f:
            f.write(json.dumps({"idempotency_key": self.headers.get("Idempotency-Key"), "body": json.loads(body)}) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
