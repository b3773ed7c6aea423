"""Parsers for judge outputs (REFERENCE §1.1).  They never raise on garbage: they return :class:`Parsed`.

- pointwise: the last ``[Score: N]`` with an integer N in ``[lo, hi]`` (default 0–10);
- pairwise: ``[[A]]`` / ``[[B]]`` (``[[A]]`` checked first, as the benchmark does); none → failure (scored 0);
- best-of-N: ``[[A>B>C]]`` (after stripping ``assistant``, ``:`` and spaces), a permutation of the labels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_SCORE_RE = re.compile(r"\[\s*score\s*[:：]\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]", re.IGNORECASE)
_RANK_RE = re.compile(r"\[\[?([A-Za-z](?:>[A-Za-z])+)\]\]?")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A parse result: ``ok`` with ``value``, or not ok with a short ``error`` reason."""

    ok: bool
    value: T | None = None
    error: str | None = None

    @staticmethod
    def fail(reason: str) -> "Parsed":
        return Parsed(False, None, reason)


def parse_pointwise(text: object, lo: int = 0, hi: int = 10) -> Parsed[int]:
    """``"[Analysis] … [Score: 7]"`` → ``Parsed(True, 7)``.  The last score tag wins."""
    if not isinstance(text, str):
        return Parsed.fail("not a string")
    found = _SCORE_RE.findall(text)
    if not found:
        return Parsed.fail("no [Score: N] tag")
    raw = found[-1]
    try:
        val = float(raw)
    except ValueError:  # pragma: no cover - regex guarantees a number
        return Parsed.fail(f"score {raw!r} is not a number")
    if val != int(val):
        return Parsed.fail(f"score {raw} is not an integer")
    if not lo <= val <= hi:
        return Parsed.fail(f"score {raw} outside [{lo}, {hi}]")
    return Parsed(True, int(val))


def parse_pairwise(text: object, strict: bool = False) -> Parsed[str]:
    """``"… [[A]]"`` → ``Parsed(True, "A")``; ``[[B]]`` → ``"B"``; neither → failure.

    An output holding both verdicts counts as ``A`` by default, exactly as Long-RewardBench scores it (it checks
    the substring ``[[A]]`` first, REFERENCE §1.1); ``strict=True`` makes it a failure instead (what label
    synthesis wants: an ambiguous verdict is no verdict).
    """
    if not isinstance(text, str):
        return Parsed.fail("not a string")
    has_a, has_b = "[[A]]" in text, "[[B]]" in text
    if has_a and has_b and strict:
        return Parsed.fail("both [[A]] and [[B]]")
    if has_a:
        return Parsed(True, "A")
    if has_b:
        return Parsed(True, "B")
    return Parsed.fail("no [[A]] or [[B]] verdict")


def parse_ranking(text: object, n: int) -> Parsed[list[int]]:
    """``"[Ranking] [[C>A>B]]"`` with n=3 → ``Parsed(True, [2, 0, 1])`` (displayed indices, best first).

    Uses the last bracketed ranking; it must name each of the first ``n`` labels exactly once.
    """
    if not isinstance(text, str):
        return Parsed.fail("not a string")
    if n < 2 or n > 26:
        return Parsed.fail(f"cannot rank {n} candidates")
    cleaned = re.sub(r"assistant", "", text, flags=re.IGNORECASE).replace(":", "")
    cleaned = re.sub(r"\s+", "", cleaned)
    found = _RANK_RE.findall(cleaned)
    if not found:
        return Parsed.fail("no [[X>Y>…]] ranking")
    letters = found[-1].upper().split(">")
    labels = [chr(ord("A") + i) for i in range(n)]
    if sorted(letters) != labels:
        return Parsed.fail(f"ranking {'>'.join(letters)} is not a permutation of {''.join(labels)}")
    return Parsed(True, [ord(c) - ord("A") for c in letters])
