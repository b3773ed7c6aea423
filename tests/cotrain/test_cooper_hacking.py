"""benchmarks/cooper_hacking.py --smoke (REFERENCE §2): VerifyRM pre-training through the scripted judge server, the
warm start and three 3-step GRPO runs (static RM, Cooper, rule), the JSON, the plot and the closing JSON line; a
rerun reuses every finished phase."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cooper_hacking_smoke(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cooper_hacking import lenient_verdict

    assert lenient_verdict("[Reference Answer]\n7\n\n[Response]\nIt is 7 or 8.\n\nIs the response x") == "Yes"
    assert lenient_verdict("[Reference Answer]\n7\n\n[Response]\n17\n\nIs the response x") == "No"

    out = tmp_path / "hack"
    cmd = [sys.executable, "benchmarks/cooper_hacking.py", "--smoke", "--output-dir", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert line["smoke"] and set(line["summary"]) == {"static", "cooper", "rule"}
    ann = line["rm_pretraining"]["annotation"]["train"]
    assert ann["kept"] + ann["disagreed"] + ann["judge_unparsed"] == ann["total"] > 0 and ann["kept_by_label"]["0"] > 0
    assert 0 <= line["rm_pretraining"]["heldout"]["accuracy"] <= 1
    full = json.loads((out / "cooper_hacking.json").read_text())
    for kind, rows in full["steps"].items():
        assert [r["step"] for r in rows] == [1, 2, 3], kind
        assert all(0 <= r["verifier_accuracy"] <= 1 and len(r["samples"]) == 2 for r in rows)
        assert all(r["pair_accuracy"] is None or 0 <= r["pair_accuracy"] <= 1 for r in rows)
    assert all(r["pair_accuracy"] in (None, 1.0) for r in full["steps"]["rule"])  # the verifier ranks itself right
    # static and Cooper start from the same RM and policy with the same seed: the first batch is the same
    assert full["steps"]["static"][0]["samples"] == full["steps"]["cooper"][0]["samples"]
    assert all(r["rm_loss"] is None for r in full["steps"]["static"])
    assert (out / "cooper_hacking.png").stat().st_size > 10_000 and (out / "cooper" / "rm_final").is_dir()
    assert set(line["greedy_accuracy"]) == {"warm_start", "static", "cooper", "rule"}

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "cotrain (" not in again.stdout  # nothing retrained
    assert json.loads(again.stdout.strip().splitlines()[-1])["summary"] == line["summary"]
