"""A simulated judge for the built-in synthetic tasks (quickstart and tests; not a model).

It reads the gold grades the task builder puts in ``JudgeRequest.hint`` and writes a templated judgement
(when the hint carries the gold ``evidence`` and the responses' ``claims``, the analysis first quotes both, as a
careful judge would, then weighs them; with ``quote="claim"`` a pointwise analysis quotes only the claim, with ``quote="none"`` it states the verdict alone):
pointwise ``[Analysis] … [Score: N]`` with N = grade, off by 1–2 with probability ``noise``; pairwise a verdict
for the better-graded response, flipped with probability ``noise``, or ``[[A]]`` regardless of content with
probability ``position_bias`` (so order-consistency filtering has something to catch).  With probability
``fail_rate`` the judgement has no verdict at all (a parse failure).  With probability ``blind`` the judge
misses the evidence — the error of a weak long-context judge — and guesses on every on-topic response (one that
makes a claim): half the time "correct" (grade 9–10), half the time "invented" (1–3), whatever the response is.
Guessing "correct" with ``quote="evidence"``, its analysis "quotes" the evidence as agreeing with the response
(the gold answer in the evidence sentence replaced by the response's claim: the misreading a judge that did not
find the passage makes, and the one SmolLM2's SFT judge made at 4K); otherwise it writes the sharp judges' format.
Its wrong verdicts — partial and invented answers called correct, correct answers called invented — are outvoted
by consistency voting and become LOGO's rejects, in both directions (a weak judge that only ever said "correct"
taught LOGO to prefer low verdicts everywhere) and in the chosen judgement's own format, so a LOGO pair differs in
the verdict (and the quoted fact), not in the layout.
Deterministic per
``(seed, name, request key, sample)``; a request without gold grades gets a failed judgement.
"""
from __future__ import annotations

import random
import time

from ..synthetic import NO_CLAIM
from .base import Judge, Judgement, JudgeRequest

__all__ = ["OracleJudge"]

_VERDICT = {
    range(9, 11): "answers the question correctly and every step is supported by the tagged evidence",
    range(7, 9): "is mostly correct and grounded in the evidence, with minor gaps",
    range(4, 7): "gets part of the reasoning chain wrong or states a fact the evidence does not support",
    range(1, 4): "invents entities or facts that do not appear in the evidence",
    range(0, 1): "does not address the question at all",
}


def _describe(grade: int) -> str:
    for r, text in _VERDICT.items():
        if grade in r:
            return text
    return "is hard to assess"


def _on_topic(hint: dict, i: int, grade: int) -> bool:
    """Does response ``i`` make a claim (a blind judge cannot tell a wrong claim from a right one)?"""
    claims = hint.get("claims")
    return claims[i] != NO_CLAIM if claims else grade >= 2


class OracleJudge(Judge):
    def __init__(self, name: str = "oracle", *, noise: float = 0.25, fail_rate: float = 0.05,
                 position_bias: float = 0.1, seed: int = 0, delay_s: float = 0.0, quote: str = "evidence",
                 blind: float = 0.0):
        self.name, self.noise, self.fail_rate, self.position_bias, self.seed = name, noise, fail_rate, position_bias, seed
        self.blind = blind
        if quote not in ("evidence", "claim", "none"):
            raise ValueError(f"oracle quote must be 'evidence', 'claim' or 'none', got {quote!r}")
        self.quote = quote
        self.delay_s = delay_s

    def _one(self, req: JudgeRequest, sample: int) -> Judgement:
        rng = random.Random(f"oracle:{self.seed}:{self.name}:{req.key}:{sample}")
        kind = req.hint.get("kind")
        if kind not in ("pointwise", "pairwise"):
            return Judgement(None, "oracle judge needs gold grades (synthetic source)")
        if rng.random() < self.fail_rate:
            return Judgement("[Analysis]\nThe response is difficult to evaluate and I cannot settle on a verdict.")
        blind = self.blind > 0 and rng.random() < self.blind  # no draw when off: runs without it stay identical
        if kind == "pointwise":
            grade = int(req.hint["grade"])
            evidence = req.hint.get("evidence")
            guess = blind and _on_topic(req.hint, 0, grade)
            if guess:  # did not find the evidence: a coin flip between "correct" and "invented"
                says_correct = rng.random() < 0.5
                grade = rng.choice([9, 10]) if says_correct else rng.choice([1, 2, 3])
                ref, claim = req.hint.get("reference"), (req.hint.get("claims") or [None])[0]
                if says_correct and evidence and ref and claim and ref in evidence:
                    evidence = evidence.replace(ref, claim)  # "quotes" the context as saying what the response says
            score = grade
            if not guess and rng.random() < self.noise:
                score = min(10, max(0, grade + rng.choice([-2, -1, 1, 2])))
            verdict = _describe(score)
            if not req.hint.get("evidence"):
                analysis = f"Checking the response against the passages inside the tagged context: it {verdict}."
            elif self.quote == "none":  # the verdict alone, no quote
                analysis = f"Checked against the context, the response {verdict}."
            elif self.quote == "claim":  # the response's claim only
                analysis = f"The response says: {req.hint['claims'][0]}. So it {verdict}."
            else:  # quote the evidence and the claim, then weigh them
                analysis = f"The context says: {evidence} The response says: {req.hint['claims'][0]}. So it {verdict}."
            return Judgement(f"[Analysis]\n{analysis}\n[Score: {score}]")
        ga, gb = (int(g) for g in req.hint["grades"])
        if blind:  # every on-topic response looks correct: a coin flip between two of them
            ga, gb = (rng.choice([9, 10]) if _on_topic(req.hint, i, g) else g for i, g in enumerate((ga, gb)))
        if rng.random() < self.position_bias:
            pick = "A"
        else:
            pick = "A" if ga > gb or (ga == gb and rng.random() < 0.5) else "B"
            if rng.random() < self.noise:
                pick = "B" if pick == "A" else "A"
        better, worse = (ga, gb) if pick == "A" else (gb, ga)
        other = "B" if pick == "A" else "A"
        quote = ""
        if req.hint.get("evidence") and not blind:
            ca, cb = req.hint["claims"]
            quote = f"The context says: {req.hint['evidence']} Assistant A says: {ca}. Assistant B says: {cb}. "
        return Judgement(f"{quote}Assistant {pick}'s answer {_describe(better)}, while Assistant {other}'s answer "
                         f"{_describe(worse)}. Therefore Assistant {pick} is better.\n\n[[{pick}]]")

    def judge(self, requests: list[JudgeRequest], n: int = 1) -> list[list[Judgement]]:
        if self.delay_s:
            time.sleep(self.delay_s)
        return [[self._one(r, s) for s in range(n)] for r in requests]
