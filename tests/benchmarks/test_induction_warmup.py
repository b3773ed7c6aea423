"""benchmarks/induction_warmup.py: the copy task's labels are exactly the earlier copy (the experiment's premise),
and a few steps run end to end and save a loadable HF folder."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from longrm.models import resolve_model_path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from induction_warmup import CopyTask  # noqa: E402


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
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "induction_warmup.py"), "--out", str(tmp_path),
                        "--stages", "64:2:100"], capture_output=True, text=True, cwd=REPO, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(last["stages"]["64:2:100"]) == {"256", "1024", "4096"}
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "64"))
    assert model.config.tie_word_embeddings
