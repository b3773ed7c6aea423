"""``longrm eval``: Long-RewardBench-format evaluation (wiring only; see :mod:`longrm.eval.pipeline`)."""
from __future__ import annotations

from longrm.eval.pipeline import EvalConfig, run_eval

HELP = ("evaluate a judge or reward model in the Long-RewardBench format (pairwise + best-of-N; generative, "
        "pointwise or discriminative; local or server) -> predictions, metrics, table, plot")


class Config(EvalConfig):
    pass


def run(cfg: Config) -> int:
    run_eval(cfg)
    return 0
