"""The Scorer seam (ARCHITECTURE.md): a batch of rollouts → one float each, plus optional hooks.

A :class:`Sample` is one policy rollout: the prompt (question text, optionally a long context), the completion
text, the reference answer when the task is verifiable, and its group id (the prompt it was sampled for; GRPO
normalises within a group).  A scorer implements ``score(samples) -> list[float]`` and may add:

- ``group_transform(scores, groups, rule_scores) -> GroupTransform`` — rewrites the rewards of each group and
  optionally returns a per-sample weight that multiplies the GRPO advantages (HERO, REFERENCE §3);
- ``update(batch: UpdateBatch) -> dict`` — trains the scorer on the current batch after the advantages were
  computed and before the policy step (Cooper order, REFERENCE §2); returns metrics to log;
- ``emit_tasks(batch)`` — new prompt rows for the same loop (SPARK, REFERENCE §5);
- ``pick_tasks(queue, k)`` — pops the (up to k) queued rows that replace prompt groups of the next batch
  (default without the hook: the k oldest).

:func:`has_hook` tells whether a scorer really implements an optional hook.

Data parallelism: under several processes ``score`` sees this rank's rollouts only (TRL gathers the rewards),
and so does an :class:`UpdateBatch` — this rank's slice of the batch (whole prompt groups, *global* group ids)
plus a :class:`DataParallel` context (``batch.dp``) with the collectives a hook needs to act on the whole batch.
A hook must leave the scorer identical on every rank (the next ``score`` runs on every rank).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import torch

__all__ = ["Sample", "GroupTransform", "UpdateBatch", "DataParallel", "Scorer", "has_hook", "group_ids", "message_text"]


def message_text(x: Any) -> str:
    """A prompt / completion as the text a scorer reads: a string as is; chat messages → their user turns joined by
    a blank line (every turn's content when there is no user turn); anything else → ``str(x)``."""
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        users = [m.get("content", "") for m in x if isinstance(m, dict) and m.get("role") == "user"]
        parts = users or [m.get("content", "") for m in x if isinstance(m, dict)]
        return "\n\n".join(p for p in parts if isinstance(p, str))
    return str(x)


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


@dataclass(frozen=True)
class DataParallel:
    """The data-parallel processes a scorer hook runs on: created once by the co-training loop and passed down in
    each :class:`UpdateBatch` (no module globals).  ``size`` processes, this one is ``rank``; ``group`` is the
    ``torch.distributed`` process group (None: the default group).  With ``size == 1`` every collective is the
    identity and nothing touches ``torch.distributed``.
    """

    size: int = 1
    rank: int = 0
    group: Any = None

    @classmethod
    def from_torch(cls, group=None) -> "DataParallel":
        """The initialised ``torch.distributed`` world (or ``group``); one process when it is not initialised."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_world_size(group), dist.get_rank(group), group)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks, in place; returns ``t`` (every rank gets the same values)."""
        if self.size > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)
        return t

    def all_gather_objects(self, obj: Any) -> list:
        """``[obj of rank 0, …, obj of rank size-1]`` on every rank (picklable objects)."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def sum_grads(self, params: Iterable[torch.nn.Parameter], bucket: int = 1 << 24) -> None:
        """Sum the ``.grad`` of ``params`` over the ranks, in place, in buckets of ≤ ``bucket`` elements.

        A parameter with a gradient on some rank but none on this one gets zeros first, so the parameters that
        hold a gradient afterwards are the same on every rank (an optimizer then makes the same step everywhere).
        """
        if self.size == 1:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        has = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        self.all_reduce_sum(has)
        live = [p for p, h in zip(params, has.tolist()) if h > 0]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        buckets: list[list[torch.nn.Parameter]] = []
        n = 0
        for p in live:  # consecutive parameters of one dtype and device, up to `bucket` elements each
            if not buckets or n + p.numel() > bucket or (p.grad.dtype, p.grad.device) != (buckets[-1][0].grad.dtype,
                                                                                         buckets[-1][0].grad.device):
                buckets.append([])
                n = 0
            buckets[-1].append(p)
            n += p.numel()
        for b in buckets:
            flat = self.all_reduce_sum(torch.cat([p.grad.reshape(-1) for p in b]))
            for p, part in zip(b, flat.split([p.numel() for p in b])):
                p.grad.copy_(part.view_as(p.grad))


@dataclass
class UpdateBatch:
    """What a scorer's ``update`` / ``emit_tasks`` hook sees: the scored rollouts of one generation batch.

    ``samples``: N samples (groups contiguous); ``scores``: [N] the scores the policy's rewards came from
    (computed by the scorer *before* its update); ``rule_scores``: [N] verifier scores in {0, 1} (NaN where the
    sample has no reference answer); ``advantages``: [N] the GRPO advantages (after any group transform).

    ``dp``: the data-parallel context.  With ``dp.size > 1`` the fields hold this rank's slice only: whole prompt
    groups with their *global* group ids (the group's index in the whole batch); the whole batch is the ranks'
    slices concatenated in rank order (:meth:`gathered`).
    """

    samples: list[Sample]
    scores: torch.Tensor
    rule_scores: torch.Tensor
    advantages: torch.Tensor
    dp: DataParallel = field(default_factory=DataParallel)

    def gathered(self) -> "UpdateBatch":
        """The whole batch on every rank (one process: ``self``).  Collective: every rank must call it.

        Raises ValueError when two ranks hold the same group id (local instead of global ids)."""
        if self.dp.size == 1:
            return self
        parts = self.dp.all_gather_objects((self.samples, self.scores.detach().cpu(), self.rule_scores.detach().cpu(),
                                            self.advantages.detach().cpu()))
        seen: set[int] = set()
        for samples, *_ in parts:
            ids = {s.group for s in samples}
            if ids & seen:
                raise ValueError("UpdateBatch.gathered: ranks share group ids; each rank's samples need global group ids")
            seen |= ids
        return UpdateBatch(samples=[s for p in parts for s in p[0]], scores=torch.cat([p[1] for p in parts]),
                           rule_scores=torch.cat([p[2] for p in parts]), advantages=torch.cat([p[3] for p in parts]),
                           dp=DataParallel())


@runtime_checkable
class Scorer(Protocol):
    """``score(samples) -> list[float]``: one reward per sample, same order (len N → len N)."""

    name: str

    def score(self, samples: Sequence[Sample]) -> list[float]: ...


def has_hook(scorer: object, hook: str) -> bool:
    """True when ``scorer`` defines ``hook`` (``group_transform``, ``update``, ``emit_tasks``, ``pick_tasks``) as a
    callable."""
    return callable(getattr(scorer, hook, None))


def group_ids(n: int, group_size: int) -> torch.Tensor:
    """Group ids of ``n`` rollouts laid out as each prompt's ``group_size`` rollouts in a row: ``[0,0,..,1,1,..]``.

    ``n`` must be a multiple of ``group_size``; returns a [n] long tensor.
    """
    if group_size < 1 or n % group_size:
        raise ValueError(f"{n} rollouts are not whole groups of {group_size}")
    return torch.arange(n) // group_size
