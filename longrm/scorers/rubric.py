"""``rubric`` scorer: weighted binary criteria checked by an LLM judge (REFERENCE §4, "Chasing the Tail").

A rubric is a list of criteria ``{"criterion": text, "weight": 1–3}`` with ids c1, c2, ….  The judge sees the
prompt, the response and the whole rubric in one call and returns JSON ``{"c1": "yes", "c2": "no", …}``:

    r(x, y) = Σ_i w_i·V(x, y, c_i) / Σ_i w_i,    V ∈ {0, 1}

A criterion missing from the JSON counts as "no" and keeps its weight in the denominator.  When the output holds
no JSON object, the judge is asked once more at ``retry_temperature``; if that also fails every criterion is "no"
(reward 0) and the failure is counted.  The rubric of a sample is its ``rubric`` field (a ``rubric`` column of
the prompt set), else the config's default ``criteria``.

The judge is a local chat LM or an OpenAI-compatible server (``scorer.rubric.backend``).  Refinement through
differentiation (§4, a proposer rewriting the rubric from two high-scoring responses): :mod:`.rubric_refine`.
"""
from __future__ import annotations

import json
import re
from typing import Sequence

from .base import Sample
from .sampling import LocalSampler

__all__ = ["RubricScorer", "rubric_messages", "parse_verdicts", "rubric_reward", "LocalSampler", "validate_rubric"]

RUBRIC_SYSTEM = (
    "You are a strict grader. You will receive a user prompt, a response and a rubric of numbered criteria. "
    "For every criterion decide whether the response satisfies it. Reply with a single JSON object mapping each "
    'criterion id to "yes" or "no", for example {"c1": "yes", "c2": "no"}, and nothing else.'
)
_JSON_OBJ = re.compile(r"\{[^{}]*\}", re.S)


def validate_rubric(rubric: object) -> list[dict]:
    """A list of ``{"criterion": non-empty str, "weight": number > 0}`` (weight defaults to 1) or ValueError."""
    if not isinstance(rubric, list) or not rubric:
        raise ValueError("a rubric is a non-empty list of {criterion, weight}")
    out = []
    for i, c in enumerate(rubric):
        if not isinstance(c, dict) or not isinstance(c.get("criterion"), str) or not c["criterion"].strip():
            raise ValueError(f"rubric item {i}: needs a non-empty 'criterion' string")
        w = c.get("weight", 1)
        if w is None:
            w = 1
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
            raise ValueError(f"rubric item {i}: weight must be a positive number, got {w!r}")
        out.append({"criterion": c["criterion"].strip(), "weight": float(w)})
    return out


def rubric_messages(s: Sample, rubric: list[dict]) -> list[dict]:
    """System + user messages: the prompt (and context), the response and the criteria ``c1 (weight w): text``."""
    crit = "\n".join(f"c{i + 1} (weight {c['weight']:g}): {c['criterion']}" for i, c in enumerate(rubric))
    ctx = f"[Context]\n{s.context}\n[End of Context]\n\n" if s.context else ""
    user = (f"{ctx}[User Prompt]\n{s.prompt}\n\n[Response]\n{s.completion}\n[End of Response]\n\n[Rubric]\n{crit}\n\n"
            "Answer with the JSON object only.")
    return [{"role": "system", "content": RUBRIC_SYSTEM}, {"role": "user", "content": user}]


def parse_verdicts(text: object, n: int) -> list[bool] | None:
    """Judge output → [n] booleans (criterion c_i said "yes"); None when the output holds no JSON object.

    The last ``{…}`` that parses as a JSON object is used; a value counts as yes when it is ``"yes"``/``"y"``/
    ``true``/``1`` (case-insensitive); missing or other values are "no".
    """
    if not isinstance(text, str):
        return None
    obj = None
    for m in reversed(_JSON_OBJ.findall(text)):
        try:
            cand = json.loads(m)
        except ValueError:
            continue
        if isinstance(cand, dict):
            obj = cand
            break
    if obj is None:
        return None
    lower = {str(k).strip().lower(): v for k, v in obj.items()}

    def yes(v) -> bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v == 1
        return isinstance(v, str) and v.strip().lower() in ("yes", "y", "true", "1")

    return [yes(lower.get(f"c{i + 1}")) for i in range(n)]


def rubric_reward(verdicts: Sequence[bool], weights: Sequence[float]) -> float:
    """r = Σ w_i·V_i / Σ w_i (REFERENCE §4); ``verdicts`` and ``weights`` have one entry per criterion."""
    total = float(sum(weights))
    return float(sum(w for v, w in zip(verdicts, weights) if v)) / total


class RubricScorer:
    """Rubric reward in [0, 1] from one judge call per rollout (+ one retry on a parse failure)."""

    name = "rubric"

    def __init__(self, judge, *, criteria: list[dict] | None = None, temperature: float = 0.0,
                 retry_temperature: float = 0.7):
        self.judge = judge
        self.default = validate_rubric(criteria) if criteria else None
        self.temperature, self.retry_temperature = temperature, retry_temperature
        self.retries = 0
        self.parse_failures = 0

    def _rubric(self, s: Sample) -> list[dict]:
        if s.rubric:
            return validate_rubric(s.rubric)
        if self.default is None:
            raise ValueError("rubric scorer: the sample has no 'rubric' and scorer.rubric.criteria is empty")
        return self.default

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] rewards Σ w_i·V_i / Σ w_i (module docstring); judge calls are batched per attempt."""
        rubrics = [self._rubric(s) for s in samples]
        convs = [rubric_messages(s, r) for s, r in zip(samples, rubrics)]
        texts = self.judge.generate(convs, temperature=self.temperature)
        verdicts = [parse_verdicts(t, len(r)) for t, r in zip(texts, rubrics)]
        again = [i for i, v in enumerate(verdicts) if v is None]
        if again:
            self.retries += len(again)
            texts2 = self.judge.generate([convs[i] for i in again], temperature=self.retry_temperature)
            for i, t in zip(again, texts2):
                verdicts[i] = parse_verdicts(t, len(rubrics[i]))
        out = []
        for v, r in zip(verdicts, rubrics):
            if v is None:
                self.parse_failures += 1
                v = [False] * len(r)
            out.append(rubric_reward(v, [c["weight"] for c in r]))
        return out
