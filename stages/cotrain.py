"""``longrm cotrain`` — policy/reward co-training: GRPO on the policy with one configurable scorer.

prompts ─► policy rollouts ─► scorer (rule | longrm | hero | rubric | spark) ─► group transform ─► advantages
─► scorer update ─► policy step.  REFERENCE §2 (Cooper order of the RM update), §3 (HERO), §4 (rubric rewards),
§5 (verifiable reward).  Wiring only: config sections and the run in :mod:`longrm.cotrain.run`, the GRPO glue in
:mod:`longrm.cotrain.trainer`, scorers in :mod:`longrm.scorers`.
"""
from __future__ import annotations

from longrm.cotrain.run import CotrainConfig, run_cotrain

HELP = "policy/reward co-training: GRPO (TRL) with a rule, longrm, hero, rubric or spark scorer; online RM update, judge tasks"


class Config(CotrainConfig):
    pass


def run(cfg: Config) -> int:
    run_cotrain(cfg)
    return 0
