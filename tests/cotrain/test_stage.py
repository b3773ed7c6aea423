"""``longrm cotrain``: configs validate, --help lists the keys, the tiny config runs through slurm/cotrain.sbatch
(outside SLURM: the script's torchrun launch, world size 1) and a rerun resumes from the last checkpoint, the
scorer's state (HERO's running σ̄, the online RM) included."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from longrm.cli import discover_stages, main
from longrm.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_configs_validate_and_help(capsys):
    mod = discover_stages()["cotrain"]
    tiny = load_config(mod.Config, REPO / "configs" / "cotrain_tiny.yaml")
    assert tiny.scorer.name == "hero" and tiny.scorer.longrm.update and tiny.model.name_or_path == "tiny:qwen2"
    full = load_config(mod.Config, REPO / "configs" / "cotrain.yaml")
    # Cooper's policy settings (REFERENCE §2), HERO's verifiable-data constants (§3)
    assert (full.train.lr, full.grpo.beta, full.grpo.num_generations) == (1e-6, 0.001, 16)
    assert (full.scorer.hero.alpha, full.scorer.hero.beta) == (0.05, 0.05) and full.train.bf16
    assert main(["cotrain", "--help"]) == 0
    out = capsys.readouterr().out
    for key in ("scorer.name", "scorer.longrm.mode", "scorer.longrm.update", "scorer.hero.w_max", "grpo.num_generations",
                "grpo.scale_rewards", "data.path", "train.max_steps"):
        assert key in out, key
    assert main(["cotrain", "--config", str(REPO / "configs" / "cotrain_tiny.yaml"), "--scorer.name", "nonexistent"]) == 2
    assert "scorer.name" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_config_runs_via_sbatch_script_and_resumes(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", NPROC="1", LONGRM_ROOT=str(REPO), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", LONGRM_CACHE=str(tiny_model_dir.parent))
    args = ["bash", str(REPO / "slurm" / "cotrain.sbatch"), str(REPO / "configs" / "cotrain_tiny.yaml"),
            "--train.output_dir", str(out), "--train.save_every", "1"]
    p = subprocess.run(args + ["--train.max_steps", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    assert "cotrain (hero): 2 steps" in p.stdout
    resolved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert resolved["scorer"]["name"] == "hero" and resolved["train"]["max_steps"] == 2
    assert (out / "checkpoint-2").is_dir() and (out / "final" / "model.safetensors").exists()
    assert (out / "rm_final" / "model.safetensors").exists()
    assert (out / "checkpoint-2" / "scorer_state.pt").exists()
    p = subprocess.run(args + ["--train.max_steps", "3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    assert "scorer state restored from" in p.stdout and "checkpoint-2" in p.stdout
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "reward" in json.loads(x)]
    assert [r["step"] for r in rows] == [1, 2, 3]  # the rerun continued from checkpoint-2 and ran step 3 only
    assert all("hero/sigma_bar" in r and "rewards/rule/mean" in r and "rm/pairs" in r for r in rows)
    # HERO's running σ̄ continued across the restart: σ̄_3 = 0.9·σ̄_2 + 0.1·σ_u(step 3), not a fresh σ_u(step 3)
    r2, r3 = rows[1], rows[2]
    assert r3["hero/sigma_bar"] == pytest.approx(0.9 * r2["hero/sigma_bar"] + 0.1 * r3["hero/sigma_u"], rel=1e-4)
    assert r3["hero/sigma_bar"] != pytest.approx(r3["hero/sigma_u"], rel=1e-3)
