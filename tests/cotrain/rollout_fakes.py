"""A fake OpenAI-compatible rollout server on 127.0.0.1 (the eval tests' fake-judge pattern: ThreadingHTTPServer).

Deterministic: sample j of a prompt ``What is a + b? ...`` is ``str(a + b)`` for even j and ``str(a + b + j)`` for
odd j (so every group of G ≥ 2 holds right and wrong answers).  ``/v1/completions`` takes the prompt as token ids (or
text), ``/v1/chat/completions`` the messages; ``n`` choices per request (``max_n`` caps them, like a server that
ignores ``n``).  With ``return_token_ids`` a choice carries the token ids (tokenized text + EOS, vLLM style); with
``logprobs`` each token gets log-prob ``-0.1·(k+1)``.  ``POST /update_weights_from_disk {model_path}`` loads the
folder's safetensors and records their total (as a server reloading would read them).  ``calls`` records every
request body with its path; ``fail_after`` answers HTTP 503 from that request on.
"""
from __future__ import annotations

import re
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from http_fakes import JSONHandler

QUESTION = re.compile(r"What is (\d+) ([-+*]) (\d+)\?")


def answer_of(text: str) -> int:
    a, op, b = QUESTION.search(text).groups()
    a, b = int(a), int(b)
    return a + b if op == "+" else a - b if op == "-" else a * b


def sample_text(prompt_text: str, j: int) -> str:
    """The fake's j-th sample for a prompt: right for even j, off by j for odd j."""
    ans = answer_of(prompt_text)
    return str(ans if j % 2 == 0 else ans + j)


def weights_total(folder: str | Path) -> float:
    """Sum of every tensor in the folder's safetensors files (float64)."""
    from safetensors.torch import load_file

    return sum(float(t.double().sum()) for f in sorted(Path(folder).glob("*.safetensors")) for t in load_file(f).values())


class FakeRolloutServer:
    def __init__(self, tokenizer, eos_id: int, *, max_n: int | None = None, fail_after: int | None = None,
                 reload: bool = True):
        self.tok, self.eos_id, self.max_n, self.fail_after, self.reload = tokenizer, eos_id, max_n, fail_after, reload
        self.calls: list[tuple[str, dict]] = []
        self.syncs: list[tuple[str, float]] = []
        self.served: list[tuple[str, int, str]] = []  # (prompt text, sample index, text), in answer order
        self.lock = threading.Lock()
        fake = self

        class Handler(JSONHandler):
            def do_GET(self):  # noqa: N802
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake-policy", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):  # noqa: N802
                body = self.read_json()
                with fake.lock:
                    fake.calls.append((self.path, body))
                    k = len(fake.calls)
                if fake.fail_after is not None and k > fake.fail_after:
                    return self._send(503, {"error": "overloaded"})
                if self.path == "/update_weights_from_disk":
                    if not fake.reload:
                        return self._send(404, {"detail": "Not Found"})
                    with fake.lock:
                        fake.syncs.append((body["model_path"], weights_total(body["model_path"])))
                    return self._send(200, {"success": True, "message": "Succeeded to update model weights."})
                if self.path == "/v1/completions":
                    p = body["prompt"]
                    text = fake.tok.decode(p) if isinstance(p, list) else p
                    return self._send(200, fake.answer(text, body, chat=False))
                if self.path == "/v1/chat/completions":
                    text = "\n".join(m["content"] for m in body["messages"])
                    return self._send(200, fake.answer(text, body, chat=True))
                self._send(404, {"error": "not found"})

            def _send(self, code, obj):
                self.send_json(code, obj)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def answer(self, prompt_text: str, body: dict, chat: bool) -> dict:
        n = body.get("n", 1)
        with self.lock:  # samples already served for this prompt continue the index (a server ignoring n)
            start = sum(1 for p, _, _ in self.served if p == prompt_text and self.max_n is not None)
            n = min(n, self.max_n) if self.max_n is not None else n
            choices = []
            for i in range(n):
                j = start + i
                text = sample_text(prompt_text, j)
                self.served.append((prompt_text, j, text))
                ids = self.tok(text, add_special_tokens=False)["input_ids"]
                c = {"index": i, "finish_reason": "stop"}
                if chat:
                    c["message"] = {"role": "assistant", "content": text}
                else:
                    c["text"] = text
                if body.get("return_token_ids"):
                    ids = ids + [self.eos_id]
                    c["token_ids"] = ids
                if body.get("logprobs"):
                    lps = [-0.1 * (t + 1) for t in range(len(ids))]
                    if chat:
                        c["logprobs"] = {"content": [{"token": f"token_id:{x}", "logprob": v} for x, v in zip(ids, lps)]}
                    else:
                        c["logprobs"] = {"tokens": [f"token_id:{x}" for x in ids], "token_logprobs": lps}
                choices.append(c)
        return {"id": "cmpl-fake", "object": "chat.completion" if chat else "text_completion", "choices": choices}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.srv.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()
