"""benchmarks/induction_warmup.py: the copy task's labels are exactly the earlier copy (the experiment's premise),
and a few steps run end to end and save a loadable HF folder."""
import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from longrm.models import resolve_model_path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from induction_warmup import CopyTask, repeat_accuracy, stage_spec  # noqa: E402


def test_labels_are_the_second_copy_of_one_random_span():
    tok = AutoTokenizer.from_pretrained(resolve_model_path("tiny:judge"))
    task = CopyTask(tok)
    rng = random.Random(0)
    for T in (64, 256, 1024):
        ids, lab = task.sample(rng, T, span=(8, 20) if T == 64 else None)
        assert len(ids) == len(lab) == T
        pos = [k for k, v in enumerate(lab) if v != -100]
        assert pos == list(range(pos[0], pos[-1] + 1)) and len(pos) >= 7  # one contiguous run, span − 1 long
        b, R = pos[0] - 1, len(pos) + 1
        rep = ids[b:b + R]
        assert [lab[k] for k in pos] == rep[1:] == ids[b + 1:b + R]
        starts = [a for a in range(0, b - R + 1) if ids[a:a + R] == rep]
        assert starts, "the labelled span must occur earlier in the sequence"


def test_runs_and_saves_a_loadable_base(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "induction_warmup.py"), "--out", str(tmp_path),
           "--stages", "64:2:100", "--publish", str(tmp_path / "pub")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(last["stages"]["64:2:100"]) == {"256", "1024", "4096", "steps", "own"}
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "64"))
    assert model.config.tie_word_embeddings
    published = AutoModelForCausalLM.from_pretrained(str(tmp_path / "pub"))  # the last stage, with its model card
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), published.state_dict().values()))
    assert "| 64:2:100 | 100 |" in (tmp_path / "pub" / "README.md").read_text()


def test_shipped_warm_base_is_this_warmup_of_tiny_judge():
    """``tiny:judge-warm`` (shipped in longrm/assets) is tiny:judge's tokenizer with weights that copy: the
    repeated span is predicted at 256 and 1K tokens, where the random-init tiny:judge predicts none of it."""

    warm, fresh = resolve_model_path("tiny:judge-warm"), resolve_model_path("tiny:judge")
    assert Path(warm).parent.name == "assets" and Path(warm).name == "tiny-judge-warm"  # shipped, not built
    tok_w, tok_f = AutoTokenizer.from_pretrained(warm), AutoTokenizer.from_pretrained(fresh)
    assert tok_w.get_vocab() == tok_f.get_vocab()  # synthesis expands with tiny:judge's tokenizer: same ids
    assert tok_w.chat_template == tok_f.chat_template
    task = CopyTask(tok_f)
    m_w = AutoModelForCausalLM.from_pretrained(warm)
    m_f = AutoModelForCausalLM.from_pretrained(fresh)
    assert m_w.config.to_dict() | {"_name_or_path": ""} == m_f.config.to_dict() | {"_name_or_path": ""}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert repeat_accuracy(m_w, task, 256) > 0.5 and repeat_accuracy(m_w, task, 1024, n=4) > 0.5  # card: 68/67%
        assert repeat_accuracy(m_f, task, 256) < 0.05
    finally:
        torch.set_num_threads(threads)


def test_stage_specs_are_checked_before_training():
    assert stage_spec("64:32:4000:0.6") == ("64:32:4000:0.6", 64, 32, 4000, 0.6)
    assert stage_spec("256:8:1000") == ("256:8:1000", 256, 8, 1000, None)
    for bad in ("64:32", "64:32:100:", "64:32:100:0.5:1", "64:x:100", "64:32:100:60", "0:32:100"):
        with pytest.raises(argparse.ArgumentTypeError, match="stage"):
            stage_spec(bad)
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "induction_warmup.py"), "--out", "unused",
                        "--stages", "64:2:10", "256:8"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2 and "256:8" in r.stderr and "loss" not in r.stdout  # rejected before stage 1 ran
