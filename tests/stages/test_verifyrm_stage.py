"""``longrm verifyrm`` (REFERENCE §2): hybrid annotation through a fake OpenAI-compatible judge, BCE pre-training, and
the trained VerifyRM's held-out accuracy measured independently through the co-training scorer."""
import json
import re
import threading
from http.server import ThreadingHTTPServer

import pytest
import torch

from http_fakes import JSONHandler
from longrm.cli import discover_stages
from longrm.config import ModelConfig, load_config
from longrm.scorers.verifyrm import arithmetic_verify_rows
from stage_helpers import REPO, run

TRAIN = "arithmetic-verify:n=50,seed=0,max=9,ops=+,k=8,long_right=0.9,long_wrong=0.1,hedge=0.1"
HELD = dict(n=100, seed=1, max=9, ops="+", k=2, long_right=0.9, long_wrong=0.1)


def lenient(user: str) -> str:
    """The fake judge: Yes when the reference number appears anywhere in the response."""
    ref = re.search(r"\[Reference Answer\]\n(.*?)\n\n\[Response\]", user, re.S).group(1)
    resp = re.search(r"\[Response\]\n(.*?)\n\nIs the response", user, re.S).group(1)
    return "Yes" if ref in re.findall(r"\d+", resp) else "No"


class _Judge(JSONHandler):
    calls: list = []

    def do_POST(self):  # noqa: N802
        body = self.read_json()
        type(self).calls.append(body)
        text = lenient(body["messages"][-1]["content"])
        self.send_json(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


def truth(question: str, response: str) -> int:
    """Independent label: the response's last integer equals a + b of the question."""
    a, b = map(int, re.match(r"What is (\d+) \+ (\d+)\?", question).groups())
    nums = re.findall(r"-?\d+", response)
    return int(bool(nums) and int(nums[-1]) == a + b)


def test_config_validates_and_help_lists_keys(capsys):
    from longrm.cli import main

    mod = discover_stages()["verifyrm"]
    cfg = load_config(mod.Config, REPO / "configs" / "verifyrm_tiny.yaml")
    assert cfg.verifyrm.annotate and cfg.verifyrm.judge_backend == "server" and cfg.data.path.startswith("arithmetic-verify:")
    assert main(["verifyrm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verifyrm.judge_server.base_url" in out and "verifyrm.annotate" in out


@pytest.mark.slow
def test_annotate_train_and_heldout_accuracy_rises(tmp_path, tiny_model_dir):
    from longrm.scorers.longrm_rm import LongRMScorer

    _Judge.calls = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    out = tmp_path / "vrm"
    args = ["--config", "configs/verifyrm_tiny.yaml", "--model.name_or_path", str(tiny_model_dir),
            "--data.path", TRAIN, "--data.eval_path", "null", "--train.output_dir", str(out),
            "--train.max_steps", "60", "--train.save_every", "30", "--train.eval_every", "0",
            "--verifyrm.judge_server.base_url", f"http://127.0.0.1:{srv.server_address[1]}/v1"]
    try:
        run("verifyrm", args)
        n_calls = len(_Judge.calls)
        again = run("verifyrm", args)  # a rerun reuses the annotation and the finished training
    finally:
        srv.shutdown()

    # annotation: every row asked once, greedily, of the configured model; counts = an independent recount
    rows = arithmetic_verify_rows(n=50, seed=0, max=9, ops="+", k=8, long_right=0.9, long_wrong=0.1, hedge=0.1)
    assert n_calls == len(rows) == 400 and len(_Judge.calls) == n_calls
    assert all(c["model"] == "judge" and c["temperature"] == 0.0 for c in _Judge.calls)
    rep = json.loads((out / "annotated" / "report.json").read_text())["train"]
    rule = [truth(r.question, r.response) for r in rows]
    judge = [int(r.reference in re.findall(r"\d+", r.response)) for r in rows]
    agree = [i for i in range(len(rows)) if rule[i] == judge[i]]
    assert rep["total"] == 400 and rep["kept"] == len(agree) and rep["disagreed"] == 400 - len(agree) > 0
    assert rep["kept_by_label"] == {"1": sum(rule[i] for i in agree), "0": sum(1 - rule[i] for i in agree)}
    assert rep["disagreed_by_rule_label"]["1"] == 0  # the lenient judge only ever says Yes where the rule says No
    kept = [json.loads(x) for x in (out / "annotated" / "train.jsonl").read_text().splitlines()]
    assert [k["id"] for k in kept] == [rows[i].id for i in agree]
    assert all(k["label"] == truth(k["question"], k["response"]) for k in kept)  # kept labels are right
    assert all(k["style"] != "hedge" or k["label"] == 1 for k in (dict(k, **k["meta"]) for k in kept))
    assert len((out / "annotated" / "train_all.jsonl").read_text().splitlines()) == 400
    assert "verifyrm: 60 steps" in again.stdout

    # held-out rows of another seed, labels computed here; the VerifyRM read by the co-training scorer
    held = arithmetic_verify_rows(**HELD)
    labels = torch.tensor([truth(r.question, r.response) for r in held])

    def accuracy(path) -> float:
        torch.manual_seed(0)
        sc = LongRMScorer(ModelConfig(name_or_path=str(path), dtype="float32", gradient_checkpointing=False),
                          mode="discriminative", input_format="verify", device="cpu", batch_size=64)
        s = torch.tensor(sc.score([r.sample() for r in held]))
        return float(((s > 0).long() == labels).float().mean())

    before, after = accuracy(tiny_model_dir), accuracy(out / "final")
    print("held-out accuracy before / after", before, after)
    assert after > 0.8 and after > before + 0.2, (before, after)
