"""A fake OpenAI-compatible judge on 127.0.0.1 for the eval tests.

It reads the candidates out of the prompt and prefers the longer answer (in the generated sample set the
best answer is the longest), answering in the benchmark's formats; ``/fail`` paths return HTTP 400.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER_RE = re.compile(r"\[The Start of Assistant ([A-Z])'s Answer\]\n(.*?)\n\[The End of Assistant", re.S)


def longest_first_verdict(messages):
    user = messages[-1]["content"]
    if "<response>" in user:
        resp = user.split("<response>\n", 1)[1].split("\n</response>", 1)[0]
        return f"[Analysis]\nlength {len(resp)}\n[Score: {min(10, len(resp) // 6)}]"
    found = ANSWER_RE.findall(user)
    ranked = sorted(found, key=lambda la: -len(la[1]))
    if "[Ranking]" not in messages[0]["content"]:
        return f"Explanation.\n[[{ranked[0][0]}]]"
    return "[Analysis]\nby length\n[Ranking]\n[[" + ">".join(lab for lab, _ in ranked) + "]]"


class _Handler(BaseHTTPRequestHandler):
    calls: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        if "/fail" in self.path:
            payload, code = b'{"error": "prompt too long"}', 400
        else:
            text = longest_first_verdict(body["messages"])
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            code = 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *a):
        pass


