"""Fixtures of the eval tests."""
import threading
from http.server import ThreadingHTTPServer

import pytest

from eval_fakes import _Handler


@pytest.fixture(scope="session")
def fake_judge():
    _Handler.calls = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", _Handler.calls
    srv.shutdown()
