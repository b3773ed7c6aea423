"""The OpenAI-compatible judge client against a real HTTP server on 127.0.0.1 started here."""
import json
import logging
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_synthesis.judges.base import JudgeRequest
from data_synthesis.judges.http import HTTPJudge

SECRET = "sk-test-secret-do-not-log"


class _Handler(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    auth: list = []
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        case = body["messages"][-1]["content"]
        with cls.lock:
            cls.hits[case] += 1
            n_hit = cls.hits[case]
            cls.auth.append(self.headers.get("Authorization"))
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            n = body.get("n", 1)
            ok = {"choices": [{"index": i, "message": {"role": "assistant",
                                                       "content": f"[Analysis] fine [Score: {7 + i % 2}]"}}
                              for i in range(n)]}
            if case == "ok":
                time.sleep(0.05)
                self._send(200, ok)
            elif case == "slow-once" and n_hit == 1:
                time.sleep(1.5)                      # longer than the client timeout
                self._send(200, ok)
            elif case == "500-once" and n_hit == 1:
                self._send(500, {"error": "boom"})
            elif case == "429-once" and n_hit == 1:
                self._send(429, {"error": "slow down"}, {"Retry-After": "0.05"})
            elif case == "malformed-once" and n_hit == 1:
                self._send(200, b"{not json")
            elif case == "no-choices-once" and n_hit == 1:
                self._send(200, {"object": "chat.completion"})
            elif case == "always-503":
                self._send(503, {"error": "down"})
            elif case == "bad-request":
                self._send(400, {"error": "context too long"})
            elif case == "one-choice":                # ignores n
                self._send(200, {"choices": ok["choices"][:1]})
            else:
                self._send(200, ok)
        finally:
            with cls.lock:
                cls.in_flight -= 1


@pytest.fixture
def server():
    _Handler.hits = Counter()
    _Handler.auth = []
    _Handler.max_in_flight = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _judge(url, **kw):
    args = dict(api_key_env="LONGRM_TEST_KEY", timeout=0.5, max_retries=2, backoff=0.01, max_backoff=0.1,
                concurrency=4)
    args.update(kw)
    return HTTPJudge(url, "judge-model", **args)


def _req(case):
    return JudgeRequest([{"role": "system", "content": "s"}, {"role": "user", "content": case}], key=case)


def test_retries_on_slow_failing_and_malformed(server, monkeypatch, caplog):
    monkeypatch.setenv("LONGRM_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    judge = _judge(server)
    cases = ["ok", "slow-once", "500-once", "429-once", "malformed-once", "no-choices-once"]
    out = judge.judge([_req(c) for c in cases], n=2)
    for case, js in zip(cases, out):
        assert [j.text for j in js] == ["[Analysis] fine [Score: 7]", "[Analysis] fine [Score: 8]"], case
    assert _Handler.hits["ok"] == 1
    for case in cases[1:]:
        assert _Handler.hits[case] == 2, case
    assert judge.stats["retries"] == 5
    assert set(_Handler.auth) == {f"Bearer {SECRET}"}
    assert SECRET not in caplog.text and SECRET not in repr(judge)


def test_permanent_failures_become_failed_judgements(server):
    judge = _judge(server)
    out = judge.judge([_req("always-503"), _req("bad-request"), _req("ok")], n=1)
    assert out[0][0].text is None and "503" in out[0][0].error
    assert _Handler.hits["always-503"] == 3          # 1 + max_retries
    assert out[1][0].text is None and "400" in out[1][0].error
    assert _Handler.hits["bad-request"] == 1         # client errors are not retried
    assert out[2][0].text is not None
    assert _Handler.auth[0] is None                  # no key in the environment: no header


def test_missing_choices_are_fetched_and_separate_requests(server):
    judge = _judge(server)
    out = judge.judge([_req("one-choice")], n=3)
    assert len(out[0]) == 3 and all(j.text for j in out[0])
    assert _Handler.hits["one-choice"] == 3
    judge = _judge(server, n_per_request=False)
    out = judge.judge([_req("other")], n=3)
    assert len(out[0]) == 3 and _Handler.hits["other"] == 3


def test_concurrency_limit(server):
    judge = _judge(server, concurrency=2)
    t0 = time.time()
    out = judge.judge([_req("ok") for _ in range(8)], n=1)
    assert all(js[0].text for js in out)
    assert _Handler.max_in_flight <= 2
    assert time.time() - t0 >= 0.15                   # 8 requests of 50 ms, 2 at a time


def test_unreachable_server_fails_fast():
    judge = HTTPJudge("http://127.0.0.1:9/v1", "m", max_retries=1, backoff=0.01, timeout=0.5)
    out = judge.judge([_req("ok")], n=2)
    assert [j.text for j in out[0]] == [None, None] and "connection" in out[0][0].error
