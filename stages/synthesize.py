"""``longrm synthesize``: short-to-long expansion + k judges + consistency majority voting → preference data.

Wiring only; the work is in :mod:`data_synthesis` (see ``docs/synthesis.md``).  SLURM arrays:
``--run.num_shards N --run.shard_index $SLURM_ARRAY_TASK_ID --run.action process``, then one
``--run.action merge`` (``slurm/synthesize.sbatch``).
"""
from __future__ import annotations

import json

from data_synthesis.config import SynthesizeConfig as Config
from data_synthesis.pipeline import run_synthesis

HELP = "short-to-long synthesis: expand short QA to 4K-128K, k judges, majority voting -> preference data"

__all__ = ["Config", "run", "HELP"]


def run(cfg: Config) -> int:
    out = run_synthesis(cfg)
    if "report" in out:
        print(json.dumps(out["report"], indent=2))
    return 0
