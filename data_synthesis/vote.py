"""Consistency majority voting (REFERENCE §1.3).

``k`` votes (one per judge, or per sample of one judge) are integers — a pointwise score 0–10, or for a
pairwise task the index of the preferred response — or ``None``/``-1`` for a judgement that failed (parse
failure, order-inconsistent pairwise verdict, server error).

- identical values form a cluster; ``conf`` lists cluster sizes largest first, each failed vote a cluster of
  its own, e.g. ``[3, 1, 1]`` for scores ``{4, 2, -1, 4, 4}`` as in the official data (§1.9);
- the task is kept only if the largest cluster has at least ``min_agree`` votes (default: strict majority of
  all ``k``, so failures count against consensus);
- equal largest clusters (possible only with a lower ``min_agree``): the cluster holding the best-ranked judge
  wins (§1.3 "ties are resolved by a judge ranking"), or the task is dropped (``tie_break="drop"``);
- ``chosen`` = the best-ranked vote of the majority cluster; ``rejects`` = the other votes, most inconsistent
  first: failures, then by distance from the majority value, then by rank (``rejects="others"``, as in the
  official data where agreeing judgements are also rejects) — or only the dissenting votes
  (``rejects="dissenting"``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Sequence

__all__ = ["VoteResult", "vote", "DROP_REASONS"]

# reasons :func:`vote` can give (the pipeline refines "too_few_valid" by the kind of failure)
DROP_REASONS = ("too_few_valid", "no_consensus", "tie", "no_dissent")


@dataclass
class VoteResult:
    ok: bool
    reason: str | None = None           # why the task was dropped
    winner: int | None = None           # the majority value
    chosen: int | None = None           # index of the chosen vote
    rejects: list[int] = field(default_factory=list)  # indices of rejected votes, most inconsistent first
    conf: list[int] = field(default_factory=list)     # cluster sizes, largest first
    num_valid: int = 0


def _valid(v) -> bool:
    return v is not None and v >= 0


def vote(scores: Sequence[int | None], *, min_agree: int | None = None,
         tie_break: Literal["judge_rank", "drop"] = "judge_rank",
         rejects: Literal["others", "dissenting"] = "others",
         rank: Sequence[int] | None = None) -> VoteResult:
    """Vote over ``scores`` (see the module docstring).  ``rank[i]`` orders the judges (lower is better;
    default: list order)."""
    k = len(scores)
    if k == 0:
        return VoteResult(False, "too_few_valid")
    rank = list(range(k)) if rank is None else list(rank)
    if len(rank) != k:
        raise ValueError(f"rank has {len(rank)} entries for {k} votes")
    threshold = (k // 2 + 1) if min_agree is None else min_agree
    valid = [i for i in range(k) if _valid(scores[i])]
    counts = Counter(scores[i] for i in valid)
    conf = sorted(counts.values(), reverse=True) + [1] * (k - len(valid))
    if len(valid) < threshold or not counts:
        return VoteResult(False, "too_few_valid", conf=conf, num_valid=len(valid))
    top = max(counts.values())
    if top < threshold:
        return VoteResult(False, "no_consensus", conf=conf, num_valid=len(valid))
    leaders = [v for v, c in counts.items() if c == top]
    if len(leaders) > 1:
        if tie_break == "drop":
            return VoteResult(False, "tie", conf=conf, num_valid=len(valid))
        best = min(valid, key=lambda i: (scores[i] not in leaders, rank[i]))
        winner = scores[best]
    else:
        winner = leaders[0]
    members = [i for i in valid if scores[i] == winner]
    chosen = min(members, key=lambda i: rank[i])

    def inconsistency(i: int) -> tuple:
        if not _valid(scores[i]):
            return (0, 0, rank[i])
        return (1, -abs(scores[i] - winner), rank[i])

    others = sorted((i for i in range(k) if i != chosen), key=inconsistency)
    if rejects == "dissenting":
        others = [i for i in others if scores[i] != winner]
        if not others:
            return VoteResult(False, "no_dissent", winner=winner, chosen=chosen, conf=conf, num_valid=len(valid))
    return VoteResult(True, None, winner=winner, chosen=chosen, rejects=others, conf=conf, num_valid=len(valid))
