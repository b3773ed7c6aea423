"""End-to-end `longrm eval` on the tiny models and the tiny generated sample set: all four outputs."""
import json
from pathlib import Path

import torch

from longrm.cli import main as cli_main
from longrm.config import ModelConfig
from longrm.eval.pipeline import EvalConfig, run_eval

ROOT = Path(__file__).resolve().parents[2]
TINY = {"name_or_path": "tiny:qwen2", "dtype": "float32", "attn_implementation": "sdpa",
        "gradient_checkpointing": False}


def _check_outputs(out, n):
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n
    for r in rows:
        assert {"id", "prediction", "raw", "score", "parse_ok", "scores"} <= set(r)
        assert 0.0 <= r["score"] <= 1.0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_samples"] == n and list(m["columns"])[-1] == "AVG."
    md = (out / "results.md").read_text()
    assert "| Model |" in md and "PairWise Avg." in md and "Rank Avg." in md
    assert (out / "accuracy_vs_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return rows, m


def test_generative_tiny_model_through_the_cli(tmp_path):
    out = tmp_path / "gen"
    rc = cli_main(["eval", "--config", str(ROOT / "configs" / "eval_tiny.yaml"), "--output.dir", str(out),
                   "--data.synthetic_pairwise", "6", "--data.synthetic_best_of_n", "3",
                   "--judge.max_new_tokens", "6", "--output.progress", "false"])
    assert rc == 0
    rows, m = _check_outputs(out, 9)
    assert all(isinstance(r["raw"], list) and len(r["raw"]) == 1 for r in rows)
    # a random tiny model does not follow the format: failures are counted and score 0
    assert m["parse_failures"] == sum(not r["parse_ok"] for r in rows)
    assert all(r["score"] == 0.0 for r in rows if not r["parse_ok"])
    assert (out / "samples.jsonl").exists() and (out / "resolved_config.yaml").exists()


def test_pointwise_tiny_model(tmp_path):
    cfg = EvalConfig.model_validate({
        "model": TINY, "data": {"path": "synthetic", "synthetic_pairwise": 2, "synthetic_best_of_n": 1},
        "judge": {"mode": "pointwise", "max_new_tokens": 4, "batch_size": 4},
        "output": {"dir": str(tmp_path / "pt"), "progress": False}})
    run_eval(cfg)
    rows, _ = _check_outputs(tmp_path / "pt", 3)
    assert [len(r["raw"]) for r in rows] == [2, 2, 2]


def test_discriminative_tiny_seq_cls(tmp_path):
    from longrm.models import load_seq_cls, load_tokenizer

    torch.manual_seed(0)
    mc = ModelConfig(**TINY)
    rm_dir = tmp_path / "tiny-rm"
    load_seq_cls(mc).save_pretrained(rm_dir)   # fixes the randomly initialised score head
    load_tokenizer(mc).save_pretrained(rm_dir)
    cfg = EvalConfig.model_validate({
        "model": {**TINY, "name_or_path": str(rm_dir)},
        "data": {"path": "synthetic", "synthetic_pairwise": 4, "synthetic_best_of_n": 3},
        "judge": {"mode": "discriminative", "batch_size": 4},
        "output": {"dir": str(tmp_path / "rm"), "progress": False}})
    m = run_eval(cfg)
    rows, _ = _check_outputs(tmp_path / "rm", 7)
    for r in rows:
        assert r["parse_ok"] and len(r["scores"]) == r["n"] and sorted(r["prediction"]) == list(range(r["n"]))
    assert m["parse_failure_rate"] == 0
    # a rerun resumes: nothing left to judge, same metrics
    m2 = run_eval(cfg)
    assert m2["columns"] == m["columns"]
