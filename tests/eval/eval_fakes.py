"""A fake OpenAI-compatible judge on 127.0.0.1 for the eval tests.

It reads the candidates out of the prompt and prefers the longer answer (in the generated sample set the
best answer is the longest), answering in the benchmark's formats; ``/fail`` paths return HTTP 400.
"""
import re
import threading
from http.server import ThreadingHTTPServer

from http_fakes import JSONHandler

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


class _Handler(JSONHandler):
    calls: list = []

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        type(self).calls.append(body)
        if "/fail" in self.path:
            return self.send_json(400, {"error": "prompt too long"})
        text = longest_first_verdict(body["messages"])
        self.send_json(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})


