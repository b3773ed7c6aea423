"""Benchmark: reward quality of the judges the pipeline trains, on held-out rows, before and after training.

Runs ``longrm pipeline`` on a pipeline config that has a ``quality`` section (default: the quickstart,
``configs/quickstart.yaml``: held-out Long-RewardBench rows from another seed; generative judge before / after
SFT / after SFT+LOGO, DisRM before / after) in its own output folder, then prints the accuracies as one JSON
object on the last line.  Resumable like the pipeline: rerun the same command after an interruption.
``--smoke`` shrinks every training stage to 2 steps and the held-out set to 8 rows (what CI runs: it checks
the wiring, not the numbers).

    python benchmarks/reward_quality.py [--config configs/quickstart.yaml] [--output-dir DIR] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ("sft", "align", "disrm", "cotrain")


def smoke(cfg: dict) -> dict:
    """The same pipeline with 2 optimizer steps per training stage and 8 held-out rows."""
    for step in cfg["pipeline"]["steps"]:
        if step["stage"] in TRAINING:
            step["overrides"] = list(step.get("overrides", [])) + ["--train.max_steps", "2", "--train.save_every", "0"]
        if step["stage"] == "synthesize":
            step["overrides"] = list(step.get("overrides", [])) + ["--heldout.num_examples", "8",
                                                                   "--source.synthetic.num_examples", "48"]
    return cfg


def headline(line: dict) -> dict:
    """Pairwise accuracy, best-of-N rank match and parse-failure rate per judge and stage (fractions)."""
    out = {}
    for judge, stages in line.get("quality", {}).items():
        out[judge] = {stage: None if n is None else {k: n[k] for k in ("pairwise", "by_length", "best_of_n",
                                                                      "parse_failure_rate", "n_pairwise")}
                      for stage, n in stages.items()}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    ap.add_argument("--output-dir", default=None, help="default: outputs/reward_quality[_smoke]")
    ap.add_argument("--smoke", action="store_true", help="2 steps per training stage, 8 held-out rows (CI)")
    args = ap.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    if not cfg.get("pipeline", {}).get("quality"):
        raise SystemExit(f"{args.config}: no pipeline.quality section (nothing to measure)")
    if args.smoke:
        cfg = smoke(cfg)
    out = args.output_dir or str(ROOT / "outputs" / ("reward_quality_smoke" if args.smoke else "reward_quality"))
    cfg["pipeline"]["output_dir"] = out
    Path(out).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=out, delete=False) as f:
        yaml.safe_dump(cfg, f)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "longrm", "pipeline", "--config", f.name], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, text=True)
    os.unlink(f.name)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"longrm pipeline failed with exit code {proc.returncode}; rerun to resume")
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"benchmark": "reward_quality", "config": args.config, "smoke": args.smoke, "output_dir": out,
              "wall_seconds": round(time.time() - t0, 1), "pipeline_steps_seconds": line.get("steps_seconds"),
              "quality": headline(line), "table": line.get("paths", {}).get("quality_table")}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
