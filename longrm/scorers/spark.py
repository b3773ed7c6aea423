"""``spark`` scorer: verifiable reward + judge tasks recycled from the rollouts (SPARK, REFERENCE §5).

Reward: the rule verifier's {0, 1} (RLVR).  ``emit_tasks(batch)`` turns each prompt group of the scored batch
into at most one new *verifiable* prompt whose label is known from the verifier, for the same RL loop:

- all rollouts right  → pointwise item on a right answer, label ``Yes``;
- all rollouts wrong  → pointwise item on a random wrong answer, label ``No``;
- mixed               → pointwise (label by the chosen answer's rule score) with probability ``p_pointwise``
  (0.3), else pairwise: one right and one wrong answer shown as (A)/(B) in random order, label = the letter of
  the right one.

Pointwise: question + answer → "Yes"/"No"; pairwise: question, (A), (B) → letter.  Judge tasks are themselves
never recycled, and groups without a reference answer emit nothing.  The co-training loop queues the tasks
and swaps them for whole prompt groups of the next generation batch (:mod:`longrm.cotrain.trainer`).

Not implemented: reflection tasks (question + wrong answer → fixed answer) and SPARK's test-time
answer → self-judge → reflect procedure.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from .base import Sample, UpdateBatch
from .rule import RuleScorer

__all__ = ["SparkScorer", "pointwise_task", "pairwise_task", "spark_tasks", "TASK_MARK"]

TASK_MARK = "[judge task]"  # first line of every emitted prompt: recognises tasks so they are not recycled


def pointwise_task(question: str, answer: str, correct: bool) -> dict:
    """Prompt row asking whether ``answer`` answers ``question`` correctly; label ``Yes`` / ``No``."""
    text = (f"{TASK_MARK}\nQuestion: {question}\nProposed answer: {answer}\n"
            "Is the proposed answer correct? Reply with Yes or No.")
    return {"prompt": [{"role": "user", "content": text}], "answer": "Yes" if correct else "No", "task": "pointwise"}


def pairwise_task(question: str, right: str, wrong: str, right_first: bool) -> dict:
    """Prompt row showing two answers as (A)/(B); label = the letter of the right one."""
    a, b = (right, wrong) if right_first else (wrong, right)
    text = (f"{TASK_MARK}\nQuestion: {question}\n(A) {a}\n(B) {b}\n"
            "Exactly one answer is correct. Reply with the letter of the correct answer.")
    return {"prompt": [{"role": "user", "content": text}], "answer": "A" if right_first else "B", "task": "pairwise"}


def spark_tasks(samples: Sequence[Sample], rule_scores: torch.Tensor, rng: random.Random,
                p_pointwise: float = 0.3) -> list[dict]:
    """[N] scored rollouts (groups contiguous by ``Sample.group``) → ≤ one task row per group (module docstring).

    ``rule_scores``: [N] in {0, 1} or NaN (no reference: the group emits nothing).
    """
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    out = []
    for idx in groups.values():
        q = samples[idx[0]].prompt
        if q.startswith(TASK_MARK) or any(rule_scores[i] != rule_scores[i] for i in idx):
            continue
        right = [i for i in idx if rule_scores[i] >= 0.5]
        wrong = [i for i in idx if rule_scores[i] < 0.5]
        if not wrong:
            out.append(pointwise_task(q, samples[rng.choice(right)].completion, True))
        elif not right:
            out.append(pointwise_task(q, samples[rng.choice(wrong)].completion, False))
        elif rng.random() < p_pointwise:
            i = rng.choice(idx)
            out.append(pointwise_task(q, samples[i].completion, rule_scores[i] >= 0.5))
        else:
            out.append(pairwise_task(q, samples[rng.choice(right)].completion, samples[rng.choice(wrong)].completion,
                                     right_first=rng.random() < 0.5))
    return out


class SparkScorer:
    """Reward = rule verifier; ``emit_tasks`` = SPARK judge tasks from the batch (seeded)."""

    name = "spark"

    def __init__(self, rule: RuleScorer, *, p_pointwise: float = 0.3, seed: int = 0):
        self.rule, self.p_pointwise, self.rng = rule, p_pointwise, random.Random(seed)

    def state_dict(self) -> dict:
        """The task-choice RNG state (for resuming)."""
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        v, inner, gauss = state["rng"]
        self.rng.setstate((v, tuple(inner), gauss))

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] rule scores in {0, 1} (NaN without a reference)."""
        return self.rule.score(samples)

    def emit_tasks(self, batch: UpdateBatch) -> list[dict]:
        """The scored batch → new prompt rows ``{"prompt", "answer", "task"}`` (≤ one per prompt group).

        Data parallel: the ranks' slices are gathered first (:meth:`UpdateBatch.gathered`) and every rank emits
        from the whole batch with its copy of the RNG (same seed, same calls): the same task list on every rank,
        identical to the one-process run on the same batch.
        """
        full = batch.gathered()
        return spark_tasks(full.samples, full.rule_scores, self.rng, self.p_pointwise)
