"""All three stages from the CLI on CPU: official formats read directly, DPO reference cache, DisRM, SFT."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stage_helpers import REPO, TINY, env, metrics

pytestmark = pytest.mark.slow


def test_stages_from_the_cli(tmp_path, tiny_model_dir, official_fixtures):
    sft_dir, off_dir, dpo_dir, rm_dir = (tmp_path / n for n in ("sft", "align_official", "dpo", "disrm"))
    small = ["--data.max_length", "3072", "--train.max_steps", "2"]
    runs = [
        ["sft", ["--config", "configs/sft_tiny.yaml", "--train.output_dir", str(sft_dir), *small,
                 "--data.path", str(official_fixtures / "SFT_Data_Sampled20"), "--data.split", "test",
                 "--data.limit", "4", "--data.eval_path", str(official_fixtures / "SFT_Data_Sampled20"),
                 "--data.eval_split", "eval", "--train.micro_batch_size", "2", "--train.save_every", "0"]],
        ["align", ["--config", "configs/align_tiny.yaml", "--train.output_dir", str(off_dir), "--train.max_steps", "2",
                   "--data.max_length", "6144",
                   "--data.path", str(official_fixtures / "SimPO_Data_Sampled20"), "--data.split", "train",
                   "--data.limit", "4", "--data.eval_path", "null", "--align.num_rejects", "2",
                   "--train.micro_batch_size", "1", "--train.save_every", "0"]],
        ["align", TINY + ["--train.output_dir", str(dpo_dir), "--train.max_steps", "3", "--align.loss", "dpo",
                          "--data.eval_path", "synthetic:n=8,words=40,seed=1"]],
        ["disrm", TINY + ["--train.output_dir", str(rm_dir), "--train.max_steps", "2", "--train.save_every", "1",
                          "--data.eval_path", "synthetic:n=8,words=40,seed=1", "--disrm.num_rejects", "1",
                          "--train.push_checkpoints", "true", "--train.hub_repo", "me/tiny-disrm"]],
    ]
    hub_log = tmp_path / "hub.jsonl"
    e = env()
    e.update(LONGRM_FAKE_HUB_LOG=str(hub_log), HF_TOKEN="hf_do_not_print_me")
    p = subprocess.run([sys.executable, str(Path(__file__).with_name("multi_run.py")), json.dumps(runs)], cwd=REPO,
                       env=e, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    assert "hf_do_not_print_me" not in p.stdout + p.stderr

    for d in (sft_dir, off_dir, dpo_dir, rm_dir):
        assert (d / "final" / "model.safetensors").exists() and (d / "final" / "tokenizer.json").exists()
        assert yaml.safe_load((d / "final" / "resolved_config.yaml").read_text())["train"]["output_dir"] == str(d)
        assert list((d / "tb").glob("events.*"))
        rows = metrics(d)
        assert rows and all(math.isfinite(r["loss"]) for r in rows)
        assert {"lr", "grad_norm", "tokens_per_s"} <= set(rows[-1])
    # SFT: judgement-token NLL of a random model is about ln(vocab)
    assert metrics(sft_dir)[0]["loss"] == pytest.approx(math.log(4096), rel=0.1)
    assert metrics(sft_dir, "eval")[-1]["examples"] >= 1  # the official eval split, read directly
    # official preference rows with V = 2 rejects: accuracy over 2 pairs per example
    assert {"reward_margin", "logps_chosen", "logps_rejected", "accuracy"} <= set(metrics(off_dir)[0])
    # DPO: the policy equals the cached reference at step 1, so the loss is exactly ln 2
    assert metrics(dpo_dir)[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert (dpo_dir / "ref_logps.pt").exists() and (dpo_dir / "ref_logps_eval.pt").exists()
    assert "accuracy" in metrics(dpo_dir, "eval")[-1]
    # DisRM: a seq-cls checkpoint with a scalar head
    cfg = json.loads((rm_dir / "final" / "config.json").read_text())
    assert cfg["architectures"][0].endswith("ForSequenceClassification") and cfg.get("num_labels", 1) == 1
    assert "accuracy" in metrics(rm_dir, "eval")[-1]
    # every saved HF folder was pushed (in the background) to the stage's checkpoint branch
    pushes = [json.loads(x) for x in hub_log.read_text().splitlines()]
    assert [Path(x["folder"]).name for x in pushes] == ["step-00000001", "final"]
    assert all(x["repo"] == "me/tiny-disrm" and x["revision"] == "disrm-checkpoints" for x in pushes)
    assert all({"model.safetensors", "tokenizer.json", "resolved_config.yaml"} <= set(x["files"]) for x in pushes)
