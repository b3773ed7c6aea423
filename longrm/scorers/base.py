"""The Scorer seam (ARCHITECTURE.md): a batch of rollouts → one float each, plus optional hooks.

A :class:`Sample` is one policy rollout: the prompt (question text, optionally a long context), the completion
text, the reference answer when the task is verifiable, and its group id (the prompt it was sampled for; GRPO
normalises within a group).  A scorer implements ``score(samples) -> list[float]`` and may add:

- ``group_transform(scores, groups, rule_scores) -> GroupTransform`` — rewrites the rewards of each group and
  optionally returns a per-sample weight that multiplies the GRPO advantages (HERO, REFERENCE §3);
- ``update(batch: UpdateBatch) -> dict`` — trains the scorer on the current batch after the advantages were
  computed and before the policy step (Cooper order, REFERENCE §2); returns metrics to log;
- ``emit_tasks(batch)`` — new prompts for the same loop (SPARK, REFERENCE §5).  Not implemented by any scorer
  yet; the co-training loop does not call it.

:func:`has_hook` tells whether a scorer really implements an optional hook.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import torch

__all__ = ["Sample", "GroupTransform", "UpdateBatch", "Scorer", "has_hook", "group_ids"]


@dataclass
class Sample:
    """One rollout to score.

    ``prompt``: the question as plain text; ``completion``: the policy's answer text; ``answer``: the reference
    (golden) answer of a verifiable task, else None; ``group``: id of the prompt group (rollouts of the same
    prompt share it); ``context``: an optional long context the question is about (judged by the ``longrm``
    scorer); ``messages``: the prompt as chat messages when the data is conversational; ``rubric``: the
    prompt's rubric criteria ``[{"criterion", "weight"}]`` (the ``rubric`` scorer).
    """

    prompt: str
    completion: str
    answer: str | None = None
    group: int = 0
    context: str | None = None
    messages: list[dict] | None = None
    rubric: list[dict] | None = None


@dataclass
class GroupTransform:
    """Result of a group transform over N samples.

    ``rewards``: [N] float tensor that replaces the scores as the GRPO reward;
    ``advantage_weight``: [N] float tensor multiplying the GRPO advantages (None: no change);
    ``metrics``: scalars to log (e.g. the running σ̄ of HERO).
    """

    rewards: torch.Tensor
    advantage_weight: torch.Tensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class UpdateBatch:
    """What a scorer's ``update`` hook sees: the scored rollouts of one generation batch.

    ``samples``: N samples (groups contiguous); ``scores``: [N] the scores the policy's rewards came from
    (computed by the scorer *before* its update); ``rule_scores``: [N] verifier scores in {0, 1} (NaN where the
    sample has no reference answer); ``advantages``: [N] the GRPO advantages (after any group transform).
    """

    samples: list[Sample]
    scores: torch.Tensor
    rule_scores: torch.Tensor
    advantages: torch.Tensor


@runtime_checkable
class Scorer(Protocol):
    """``score(samples) -> list[float]``: one reward per sample, same order (len N → len N)."""

    name: str

    def score(self, samples: Sequence[Sample]) -> list[float]: ...


def has_hook(scorer: object, hook: str) -> bool:
    """True when ``scorer`` defines ``hook`` (``group_transform``, ``update`` or ``emit_tasks``) as a callable."""
    return callable(getattr(scorer, hook, None))


def group_ids(n: int, group_size: int) -> torch.Tensor:
    """Group ids of ``n`` rollouts laid out as each prompt's ``group_size`` rollouts in a row: ``[0,0,..,1,1,..]``.

    ``n`` must be a multiple of ``group_size``; returns a [n] long tensor.
    """
    if group_size < 1 or n % group_size:
        raise ValueError(f"{n} rollouts are not whole groups of {group_size}")
    return torch.arange(n) // group_size
