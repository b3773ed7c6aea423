"""``rule`` scorer: a verifiable-answer check → {0, 1} (the verifiable reward of Cooper §2, HERO §3, SPARK §5).

r_rule(completion, answer) = 1 if the completion's final answer equals the reference answer, else 0.

Two checkers:

- ``math_verify`` — HuggingFace ``math-verify``: ``verify(parse(gold), parse(completion))`` (argument order
  gold first; equivalent forms match: ``\\frac{1}{2}`` = ``0.5``, ``\\boxed{42}`` = ``42``).  Its timeouts use
  ``signal.alarm``, which only works on the main thread; elsewhere they are turned off.
- ``exact`` — plain normalised exact match, no dependency: the completion's final answer is the content of
  its last ``\\boxed{…}``, else the text after the last ``answer is`` / ``answer:``, else its last number;
  both sides are lower-cased, stripped of spaces, ``$`` and trailing punctuation, and numbers compare as
  numbers (``7.0`` = ``7``, ``1,000`` = ``1000``).

A one-word reference answer (``Yes``, ``No``, ``B`` — SPARK's judge tasks, REFERENCE §5) is always checked by
exact match, against the completion's last ``\\boxed{}`` / "answer is" text, else its last word.

``mode="auto"`` uses math-verify when installed, else ``exact``.  A sample without a reference answer has no
rule score: ``score`` returns NaN for it (the co-training loop logs rule accuracy over the others).
"""
from __future__ import annotations

import math
import re
import threading
from typing import Literal, Sequence

from .base import Sample

__all__ = ["RuleScorer", "extract_final_answer", "is_word_answer", "normalize_answer", "exact_match", "math_verify_available"]

_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_WORD = re.compile(r"[A-Za-z]+")
_WORD_ANSWER = re.compile(r"\s*[A-Za-z]+\s*\.?\s*")


def math_verify_available() -> bool:
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return False
    return True


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def is_word_answer(answer: str) -> bool:
    """True for a one-word reference answer such as ``Yes``, ``no`` or ``B`` (checked by word, not as math)."""
    return bool(_WORD_ANSWER.fullmatch(answer))


def extract_final_answer(text: str, word: bool = False) -> str | None:
    """The final answer of a completion: last ``\\boxed{}``, else after the last "answer is", else the last number
    (``word=True``: the last word).

    ``"3 + 4 = 7. The answer is 7."`` → ``"7."``; ``"so x = \\boxed{12}"`` → ``"12"``; no candidate → None.
    With ``word=True`` the "answer is" text is reduced to its first word: ``"The answer is B."`` → ``"B"``.
    """
    if not isinstance(text, str):
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    found = list(_ANSWER_IS.finditer(text))
    if found:
        rest = text[found[-1].end():].strip()
        line = rest.splitlines()[0] if rest else ""
        if word:
            first = _WORD.findall(line)
            if first:
                return first[0]
        elif line:
            return line
    if word:
        words = _WORD.findall(text)
        return words[-1] if words else None
    nums = _NUMBER.findall(text)
    return nums[-1] if nums else None


def normalize_answer(text: str) -> str:
    """Lower-case, drop spaces, ``$``, ``\\!`` and trailing ``.``/``,``/``;``; numbers → canonical number text."""
    s = text.strip().lower().replace("$", "").replace("\\!", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".,;:!")
    num = s.replace(",", "")
    try:
        v = float(num)
    except ValueError:
        return s
    if math.isfinite(v) and v == int(v):
        return str(int(v))
    return repr(v)


def exact_match(completion: str, answer: str) -> bool:
    """Normalised exact match of the completion's final answer (:func:`extract_final_answer`) and ``answer``."""
    word = is_word_answer(answer)
    pred = extract_final_answer(completion, word=word)
    if pred is None:
        return False
    gold = extract_final_answer(answer) if _last_boxed(answer) is not None else answer
    return normalize_answer(pred) == normalize_answer(gold)


class RuleScorer:
    """Verifier reward in {0, 1} (NaN without a reference answer). See the module docstring for the checkers."""

    name = "rule"

    def __init__(self, mode: Literal["auto", "math_verify", "exact"] = "auto"):
        if mode == "auto":
            mode = "math_verify" if math_verify_available() else "exact"
        if mode == "math_verify" and not math_verify_available():
            raise ImportError("scorer.rule.mode=math_verify needs the 'math-verify' package (pip install math-verify)")
        self.mode = mode

    def check(self, completion: str, answer: str) -> bool:
        """True when ``completion`` answers ``answer`` (math-verify, falling back to exact match when it parses
        nothing from the completion)."""
        if self.mode == "exact" or is_word_answer(answer):
            return exact_match(completion, answer)
        from math_verify import parse, verify

        main = threading.current_thread() is threading.main_thread()
        kw_p = {} if main else {"parsing_timeout": None}
        kw_v = {} if main else {"timeout_seconds": None}
        gold = parse(answer if _last_boxed(answer) is not None else f"${answer}$", **kw_p) or parse(answer, **kw_p)
        pred = parse(completion, **kw_p)
        if gold and pred:
            return bool(verify(gold, pred, **kw_v))
        return exact_match(completion, answer)

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] scores: 1.0 match, 0.0 no match, NaN when the sample has no ``answer``."""
        return [float("nan") if s.answer is None else float(self.check(s.completion, s.answer)) for s in samples]
