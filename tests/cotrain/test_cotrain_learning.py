"""benchmarks/cotrain_learning.py --smoke (issue 11 item 6): every scorer's 3-step co-training run from the same warm
start, the before / after evaluation on held-out prompts disjoint from the training prompts, the JSON file and the
closing JSON line; a rerun reuses every finished phase."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCORERS = {"rule", "longrm", "cooper", "hero", "rubric", "spark"}


def test_scripted_rubric_judge():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cotrain_learning import RUBRIC, rubric_verdicts

    from longrm.scorers.base import Sample
    from longrm.scorers.rubric import parse_verdicts, rubric_messages

    def verdicts(completion):
        msg = rubric_messages(Sample("What is 3 + 4? Answer with the number only.", completion), RUBRIC)[-1]["content"]
        return parse_verdicts(rubric_verdicts(msg), len(RUBRIC))

    assert verdicts("7") == [True, True]
    assert verdicts("8") == [False, True]
    assert verdicts("It is 7 or 8.") == [True, False]  # lenient: the sum is among the numbers
    assert verdicts("") == [False, False]


@pytest.mark.slow
def test_cotrain_learning_smoke(tmp_path):
    out = tmp_path / "learn"
    cmd = [sys.executable, "benchmarks/cotrain_learning.py", "--smoke", "--output-dir", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert line["smoke"] and set(line["scorers"]) == SCORERS
    for name, r in line["scorers"].items():
        assert r["steps"] == 3 and r["wall_seconds"] > 0, name
        for split in ("heldout", "train_prompts"):
            for when in ("before", "after"):
                assert all(0 <= r[split][when][m] <= 1 for m in ("greedy", "sampled")), (name, split, when)
            assert r[split]["before"] == line["before"][split], name  # one warm start, evaluated once
    full = json.loads((out / "cotrain_learning.json").read_text())
    lists = full["prompt_lists"]
    assert len(lists["train"]) == 60 and len(lists["heldout"]) == line["prompts"]["heldout"] == 8
    assert not set(lists["heldout"]) & set(lists["train"])  # held out: never a training prompt
    assert set(lists["train_eval"]) <= set(lists["train"])
    for name, run in full["runs"].items():
        assert [r["step"] for r in run["series"]] == [1, 2, 3], name
        assert all(0 <= r["verifier_accuracy"] <= 1 for r in run["series"])
    # same seed, same warm start: the first batch is the same for every scorer but SPARK's (tasks from step 2 on)
    firsts = {name: [s[:2] for s in run["series"][0]["samples"]] for name, run in full["runs"].items()}
    assert len({json.dumps(v) for v in firsts.values()}) == 1
    series = {name: run["series"] for name, run in full["runs"].items()}
    assert all(r["pair_accuracy"] in (None, 1.0) for r in series["rule"])  # the verifier ranks itself right
    assert all(r["rm_pairs"] is None for r in series["longrm"]) and all(r["rm_pairs"] is not None for r in series["cooper"])
    assert all(r["parse_failures"] == 0 for r in series["rubric"])  # the scripted judge always answers JSON
    assert (out / "cooper" / "rm_final").is_dir() and not (out / "longrm" / "rm_final").exists()

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "cotrain (" not in again.stdout  # nothing retrained
    assert json.loads(again.stdout.strip().splitlines()[-1])["scorers"] == line["scorers"]
