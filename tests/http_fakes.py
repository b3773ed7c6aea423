"""What every fake HTTP server of the tests shares: a quiet request handler that answers with JSON."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


class JSONHandler(BaseHTTPRequestHandler):
    """A handler with :meth:`send_json` and no request logging (the tests' output stays readable)."""

    def send_json(self, code: int, obj) -> None:
        """Answer ``code`` with ``obj`` as JSON (``bytes`` are sent as they are)."""
        payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_json(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def log_message(self, *a):
        pass
