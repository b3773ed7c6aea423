"""The README's main job: configs/quickstart.yaml run end to end through benchmarks/reward_quality.py --smoke
(2 optimizer steps per training stage, 8 held-out rows): every stage, every before/after eval, the quality
table and the closing JSON line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_pipeline_end_to_end(tmp_path):
    qs = tmp_path / "qs"
    cmd = [sys.executable, "benchmarks/reward_quality.py", "--smoke", "--output-dir", str(qs)]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    state = json.loads((qs / "pipeline_state.json").read_text())
    assert all(v["done"] for v in state.values()) and len(state) == 10
    for stage in ("sft", "align", "disrm", "cotrain"):
        assert (qs / stage / "final" / "model.safetensors").exists()
    logged = [json.loads(x) for x in (qs / "cotrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "reward" in r] == [1, 2]  # the policy's reward, logged every step
    for run in ("base", "sft", "logo", "disrm_base", "disrm"):
        m = json.loads((qs / "eval" / run / "metrics.json").read_text())
        assert m["n_samples"] == m["n_pairwise"] + m["n_best_of_n"] == 8 and m["mode"]
    assert "Long-RewardBench comparison" in (qs / "eval" / "logo" / "comparison.md").read_text()
    # the generative judge starts from the trained DisRM's backbone (the DisRM step runs first)
    order = list(state)
    assert order.index("disrm") < order.index("sft")
    sft_cfg = (qs / "sft" / "resolved_config.yaml").read_text()
    assert str(qs / "disrm" / "final") in sft_cfg
    # the before/after table and the JSON line carry the same numbers as the eval runs
    q = result["quality"]
    assert set(q) == {"generative judge (pointwise)", "discriminative RM"}
    assert set(q["generative judge (pointwise)"]) == {"before", "sft", "sft+logo"}
    logo = json.loads((qs / "eval" / "logo" / "metrics.json").read_text())
    assert q["generative judge (pointwise)"]["sft+logo"]["pairwise"] == logo["columns"]["PairWise Avg."]["value"]
    assert q["discriminative RM"]["after"]["parse_failure_rate"] == 0.0
    assert "| discriminative RM | after |" in (qs / "quality.md").read_text()
    assert result["smoke"] and result["wall_seconds"] > 0
    # a rerun of the same command skips every finished step and prints the same summary
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == len(state)
    assert json.loads(again.stdout.strip().splitlines()[-1])["quality"] == q
