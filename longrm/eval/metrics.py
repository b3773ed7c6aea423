"""Long-RewardBench metrics, exactly as the benchmark defines them (REFERENCE §1.8).

Per sample, the **rank match ratio**: the fraction of positions where the predicted order of the candidates
equals the gold order.  A prediction is a list of *original* candidate indices, best first, and the gold
order is ``[0, 1, …, n-1]`` (candidates are stored best first), so the ratio is
``mean(prediction[k] == k)``; pairwise samples score 0 or 1, a failed parse (no prediction) scores 0.

(The official script compares the shuffled display order with the parsed order position by position; with
the parse expressed as "which gold rank sits at each displayed position" that is the same count, and it is
what this module computes after mapping the shuffle back.)

Aggregates, as in the official table and in its column order (values in [0, 1]):

- one column per task (``LongQA``, ``Summ``, ``Safety``, ``ICL``, ``Cite``, ``Code``, ``Math``, then any other
  ``source`` met in the data): accuracy over that task's **pairwise** samples;
- ``Same.`` (pairwise, ``subtype == "same"``), ``Diff.`` (pairwise, any other subtype), ``PairWise Avg.``;
- ``Rank2`` ``Rank3`` ``Rank4`` (best-of-N by number of candidates, i.e. ``subtype``), ``Rank Avg.``;
- ``4k`` … ``128k``: pairwise accuracy per length bucket;
- ``AVG.``: the mean over **all** samples (pairwise and best-of-N alike).

Group averages are sample-weighted (sum of ratios / count), as the official script does.  Where the official
script writes 0 for an empty group we write ``None`` (shown as "–"), so a missing task is not mistaken for
a bad one.  We also report the parse-failure rate and, as an extra, the all-sample average per length.

Score-based rankings (pointwise judges, DisRMs): a candidate's position counts as matched only if its score
is strictly ordered against every other candidate's — **ties count as wrong** (a pairwise tie scores 0).
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

from .samples import LENGTHS, TASKS

__all__ = ["rank_match_ratio", "ranking_from_scores", "rank_match_from_scores", "compute_metrics", "wilson_interval",
           "format_interval", "COLUMN_GROUPS"]

# Column groups of the benchmark table, in order; task and length groups may grow with the data.
COLUMN_GROUPS = ("tasks", "pairwise", "rank", "length", "overall")


def rank_match_ratio(prediction: Sequence[int] | None, n: int) -> float:
    """Fraction of positions ``k`` with ``prediction[k] == k`` (gold order is ``0..n-1``); ``None`` → 0.

    A prediction that is not a permutation of ``range(n)`` scores 0 (it cannot be a ranking).
    """
    if prediction is None or n <= 0:
        return 0.0
    pred = list(prediction)
    if sorted(pred) != list(range(n)):
        return 0.0
    return sum(int(p == k) for k, p in enumerate(pred)) / n


def _key(s: float | None) -> float:
    return -math.inf if s is None or (isinstance(s, float) and math.isnan(s)) else float(s)


def ranking_from_scores(scores: Sequence[float | None]) -> list[int]:
    """Original indices sorted by score, highest first (stable; ``None``/NaN — a failed parse — last)."""
    return sorted(range(len(scores)), key=lambda i: -_key(scores[i]))


def rank_match_from_scores(scores: Sequence[float | None]) -> float:
    """Rank match ratio of the ranking by ``scores`` (candidates in gold order), ties counting as wrong.

    Candidate ``k`` is matched when exactly ``k`` candidates score strictly higher and none scores the same.
    ``None`` (failed parse) ranks below every number and ties with other ``None``.
    """
    keys = [_key(s) for s in scores]
    n = len(keys)
    if n == 0:
        return 0.0
    hits = 0
    for k, s in enumerate(keys):
        higher = sum(1 for t in keys if t > s)
        same = sum(1 for t in keys if t == s) - 1
        hits += int(higher == k and same == 0)
    return hits / n


def wilson_interval(p: float | None, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``p`` measured on ``n`` samples (95% at the default ``z``):
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.  Held-out sets are small (45 pairs: about ±13
    points), so every headline accuracy carries one."""
    if p is None or n <= 0:
        return None
    d = 1 + z * z / n
    center = (p + z * z / (2 * n)) / d
    half = z / d * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def format_interval(ci: Sequence[float] | None) -> str:
    """``(0.712, 0.923)`` → ``"71–92"`` (percent, whole numbers); ``"–"`` when there is none."""
    return f"{100 * ci[0]:.0f}–{100 * ci[1]:.0f}" if ci else "–"


def _mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None


def _col(vals: list[float]) -> dict:
    return {"value": _mean(vals), "n": len(vals)}


def compute_metrics(rows: Iterable[dict]) -> dict:
    """Aggregate per-sample rows (``source``, ``tasktype``, ``subtype``, ``ctx_length``, ``score``, ``parse_ok``).

    Returns ``{"columns": {name: {"value", "n"}, ...}, "groups": {group: [names]}, "n_samples",
    "n_pairwise", "n_best_of_n", "parse_failures", "parse_failure_rate", "by_length_all"}``.
    """
    rows = list(rows)
    pw = [r for r in rows if r["tasktype"] == "PairWise"]
    bon = [r for r in rows if r["tasktype"] == "BestOfN"]
    score = lambda rs: [float(r["score"]) for r in rs]  # noqa: E731

    by_task: dict[str, list[float]] = defaultdict(list)
    for r in pw:
        by_task[r["source"]].append(float(r["score"]))
    tasks = list(TASKS) + sorted(t for t in {r["source"] for r in rows} if t not in TASKS)
    by_rank: dict[str, list[float]] = defaultdict(list)
    for r in bon:
        by_rank[str(r["subtype"])].append(float(r["score"]))
    extra_ranks = sorted((k for k in by_rank if k not in ("2", "3", "4")), key=lambda k: (len(k), k))
    ranks = ["2", "3", "4"] + extra_ranks
    lengths = list(LENGTHS) + sorted({r["ctx_length"] for r in rows} - set(LENGTHS) - {""})
    by_len: dict[str, list[float]] = defaultdict(list)
    by_len_all: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_len_all[r["ctx_length"]].append(float(r["score"]))
        if r["tasktype"] == "PairWise":
            by_len[r["ctx_length"]].append(float(r["score"]))

    columns: dict[str, dict] = {}
    groups: dict[str, list[str]] = {g: [] for g in COLUMN_GROUPS}
    for t in tasks:
        columns[t] = _col(by_task.get(t, []))
        groups["tasks"].append(t)
    columns["Same."] = _col(score([r for r in pw if str(r["subtype"]) == "same"]))
    columns["Diff."] = _col(score([r for r in pw if str(r["subtype"]) != "same"]))
    columns["PairWise Avg."] = _col(score(pw))
    columns["PairWise Avg."]["ci95"] = wilson_interval(columns["PairWise Avg."]["value"], len(pw))
    groups["pairwise"] = ["Same.", "Diff.", "PairWise Avg."]
    for k in ranks:
        columns[f"Rank{k}"] = _col(by_rank.get(k, []))
        groups["rank"].append(f"Rank{k}")
    columns["Rank Avg."] = _col(score(bon))
    groups["rank"].append("Rank Avg.")
    for L in lengths:
        columns[L] = _col(by_len.get(L, []))
        groups["length"].append(L)
    columns["AVG."] = _col(score(rows))
    groups["overall"] = ["AVG."]

    failures = sum(1 for r in rows if not r.get("parse_ok", True))
    return {
        "columns": columns,
        "groups": groups,
        "n_samples": len(rows),
        "n_pairwise": len(pw),
        "n_best_of_n": len(bon),
        "parse_failures": failures,
        "parse_failure_rate": failures / len(rows) if rows else None,
        "by_length_all": {L: _col(by_len_all.get(L, [])) for L in lengths},
    }
