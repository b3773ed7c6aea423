"""How a judge sees a sample, and how its answer becomes a ranking (REFERENCE §1.1, §1.8).

Three modes:

- ``generative`` — one prompt per sample.  Pairwise samples get the MT-Bench-style ``[[A]]``/``[[B]]`` prompt,
  best-of-N samples the ``[Analysis] … [Ranking] [[A>B>C]]`` prompt.  The question is the benchmark's
  ``prompt_template`` contents joined by blank lines (the context is inside it, as in the official code).
  Candidates are shown in an order shuffled by a fixed seed (official: 42) and the parsed verdict is mapped
  back to original indices.  Unlike the official script, whose shuffle depends on the order rows are read
  in, ours is keyed by ``(seed, sample id)`` so it survives resuming, sharding and filtering.
- ``pointwise`` — one ``[Analysis] … [Score: N]`` prompt per candidate, alone (the layout of the official
  training data, §1.9: the joined ``prompt_template`` as ``<context>``, the row's ``question`` as ``<prompt>``);
  candidates are ranked by parsed score, ties counting as wrong; a failed parse scores below any number.
- ``discriminative`` — a reward model scores ``prompt_template + [assistant: candidate]`` per candidate and
  candidates are ranked by reward (ties counting as wrong).

Outputs are parsed after dropping closed ``<think>…</think>`` blocks (the raw text is kept as is).

A sample's per-sample output row holds ``prediction`` (original indices, best first, or ``None``), ``raw``
(the judge's text per request), ``scores`` (per original candidate, score-based modes), ``order`` (display
order), ``score`` (its rank match ratio) and ``parse_ok``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..judging.parsers import parse_pairwise, parse_pointwise, parse_ranking
from ..judging.prompts import best_of_n_messages, pairwise_messages, pointwise_messages, shuffled_order
from .metrics import rank_match_from_scores, rank_match_ratio, ranking_from_scores
from .samples import EvalSample, task_prompt

__all__ = ["Mode", "Plan", "plan", "decide", "decide_scores", "verdict_text", "POINTWISE_DEFAULT_QUESTION"]

Mode = Literal["generative", "pointwise", "discriminative"]

POINTWISE_DEFAULT_QUESTION = "Respond to the request at the end of the context."

_THINK_RE = re.compile(r"<think>.*?</think>", re.S | re.I)


def verdict_text(text: str) -> str:
    """The part of a judge's output to parse: closed ``<think>…</think>`` blocks (reasoning models such as
    Qwen3) are dropped, so a verdict weighed while thinking is not taken for the final one."""
    return _THINK_RE.sub("", text) if isinstance(text, str) else text


@dataclass
class Plan:
    """The requests a judge must answer for one sample.  ``order[i]`` = original index shown at position i."""

    sample: EvalSample
    mode: Mode
    order: list[int]
    requests: list[list[dict]] = field(default_factory=list)


def plan(sample: EvalSample, mode: Mode, seed: int = 42) -> Plan:
    """Build the chat messages a judge answers for ``sample`` under ``mode``."""
    if mode == "generative":
        order = shuffled_order(sample.n, seed, sample.id)
        shown = [sample.candidates[i] for i in order]
        question = task_prompt(sample)
        if sample.tasktype == "PairWise":
            msgs = pairwise_messages(question, shown[0], shown[1])
        else:
            msgs = best_of_n_messages(question, shown)
        return Plan(sample, mode, order, [msgs])
    order = list(range(sample.n))
    if mode == "pointwise":
        ctx, q = task_prompt(sample), sample.question or POINTWISE_DEFAULT_QUESTION
        return Plan(sample, mode, order, [pointwise_messages(ctx, q, c) for c in sample.candidates])
    if mode == "discriminative":
        return Plan(sample, mode, order,
                    [list(sample.prompt) + [{"role": "assistant", "content": c}] for c in sample.candidates])
    raise ValueError(f"unknown eval mode {mode!r}")


def _row(p: Plan, prediction: list[int] | None, score: float, parse_ok: bool, raw: list[str] | None,
         scores: list[float | None] | None, error: str | None) -> dict:
    return {**p.sample.info(), "mode": p.mode, "order": p.order, "prediction": prediction, "score": score,
            "parse_ok": parse_ok, "error": error, "scores": scores, "raw": raw}


def decide(p: Plan, outputs: list[str]) -> dict:
    """Turn the judge's texts (one per request of ``p``) into the per-sample output row."""
    if len(outputs) != len(p.requests):
        raise ValueError(f"{p.sample.id}: {len(outputs)} outputs for {len(p.requests)} requests")
    n = p.sample.n
    if p.mode == "generative":
        text = verdict_text(outputs[0])
        if p.sample.tasktype == "PairWise":
            r = parse_pairwise(text)
            shown = None if not r.ok else ([0, 1] if r.value == "A" else [1, 0])
        else:
            r = parse_ranking(text, n)
            shown = r.value if r.ok else None
        pred = None if shown is None else [p.order[d] for d in shown]
        return _row(p, pred, rank_match_ratio(pred, n), r.ok, list(outputs), None, r.error)
    if p.mode == "pointwise":
        parsed = [parse_pointwise(verdict_text(t)) for t in outputs]
        scores: list[float | None] = [float(r.value) if r.ok else None for r in parsed]
        errors = [f"candidate {i}: {r.error}" for i, r in enumerate(parsed) if not r.ok]
        if errors:  # like an unparsed generative verdict: the sample scores 0 (a failed parse is no "lowest score")
            return _row(p, None, 0.0, False, list(outputs), scores, "; ".join(errors))
        return _row(p, ranking_from_scores(scores), rank_match_from_scores(scores), True, list(outputs), scores, None)
    raise ValueError(f"decide() takes judge texts; use decide_scores() for mode {p.mode!r}")


def decide_scores(p: Plan, scores: list[float]) -> dict:
    """Per-sample row of a score-based judge (a DisRM): one reward per original candidate."""
    if len(scores) != p.sample.n:
        raise ValueError(f"{p.sample.id}: {len(scores)} scores for {p.sample.n} candidates")
    s = [float(x) for x in scores]
    return _row(p, ranking_from_scores(s), rank_match_from_scores(s), True, None, s, None)
