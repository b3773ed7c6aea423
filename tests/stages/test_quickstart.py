"""The README's main job: configs/quickstart.yaml run end to end (with fewer optimizer steps per stage)."""
import json
import subprocess
import sys

import pytest
import yaml

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_pipeline_end_to_end(tmp_path, tiny_model_dir):
    cfg = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    for step in cfg["pipeline"]["steps"]:
        if step["stage"] in ("sft", "align", "disrm", "cotrain"):
            step["overrides"] += ["--train.max_steps", "2", "--train.save_every", "0"]
    cfg["pipeline"]["output_dir"] = str(tmp_path / "qs")
    f = tmp_path / "quickstart.yaml"
    f.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "longrm", "pipeline", "--config", str(f)], cwd=REPO,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    qs = tmp_path / "qs"
    state = json.loads((qs / "pipeline_state.json").read_text())
    assert all(v["done"] for v in state.values()) and len(state) == len(cfg["pipeline"]["steps"])
    for stage in ("sft", "align", "disrm", "cotrain"):
        assert (qs / stage / "final" / "model.safetensors").exists()
    logged = [json.loads(x) for x in (qs / "cotrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "reward" in r] == [1, 2]  # the policy's reward, logged every step
    for run in ("align", "disrm"):
        m = json.loads((qs / "eval" / run / "metrics.json").read_text())
        assert m["n_samples"] == m["n_pairwise"] + m["n_best_of_n"] > 0 and m["mode"]
        assert (qs / "eval" / run / "accuracy_vs_length.png").exists()
    assert "Long-RewardBench comparison" in (qs / "eval" / "disrm" / "comparison.md").read_text()
    # a rerun of the same command skips every finished step
    again = subprocess.run([sys.executable, "-m", "longrm", "pipeline", "--config", str(f)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == len(state)
