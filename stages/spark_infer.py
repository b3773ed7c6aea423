"""``longrm spark_infer`` — SPARK's test-time procedure (REFERENCE §5): answer, self-judge, reflect if judged wrong.

The policy answers each prompt (``arithmetic:…`` or a jsonl with prompt / answer), judges its own answer(s) with the
training-time pointwise / pairwise judge prompts, and revises an answer it judges wrong (up to
``infer.max_rounds`` times).  Writes ``records.jsonl`` (per prompt: answers, parsed verdicts, revisions, final
answer, whether it reflected) and ``report.json`` (rule-verifier accuracy before vs after reflection) into
``infer.output_dir``.  Wiring only: :mod:`longrm.scorers.spark_infer`.
"""
from __future__ import annotations

from longrm.scorers.spark_infer import SparkInferConfig, run_spark_infer

HELP = ("SPARK test time: the policy answers, self-judges (pointwise / pairwise) and reflects when judged wrong; "
        "rule accuracy before vs after")


class Config(SparkInferConfig):
    pass


def run(cfg: Config) -> int:
    run_spark_infer(cfg)
    return 0
