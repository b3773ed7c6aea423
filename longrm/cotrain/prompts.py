"""Prompt sets for co-training: verifiable rows ``{"prompt": chat messages, "answer": str}`` (+ optional
``context``).

- ``arithmetic:n=64,seed=0,max=20,ops=+-*`` — a built-in set needing no download: ``n`` questions
  ``What is A op B?`` with 0 ≤ A, B ≤ ``max`` and their exact integer answers (distinct questions while the
  space allows).  The rule scorer verifies them.
- a ``.jsonl`` / ``.parquet`` file or a ``save_to_disk`` folder with a ``prompt`` column (text or chat
  messages) and an ``answer`` column (optional ``context`` and ``rubric`` = ``[{criterion, weight}]``;
  ``question`` is accepted for ``prompt``; every row needs the same optional columns).
"""
from __future__ import annotations

import random

from ..records import load_rows

__all__ = ["arithmetic_rows", "parse_arithmetic_spec", "load_prompt_rows", "INSTRUCTION"]

INSTRUCTION = "Answer with the number only."
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def parse_arithmetic_spec(spec: str) -> dict:
    """``"arithmetic:n=8,seed=1,ops=+-"`` → ``{"n": 8, "seed": 1, "max": 20, "ops": "+-"}`` (defaults filled)."""
    out = {"n": 64, "seed": 0, "max": 20, "ops": "+-*"}
    body = spec.split(":", 1)[1] if ":" in spec else ""
    for part in filter(None, body.split(",")):
        if "=" not in part:
            raise ValueError(f"{spec!r}: expected key=value, got {part!r}")
        k, v = part.split("=", 1)
        if k not in out:
            raise ValueError(f"{spec!r}: unknown key {k!r} (keys: {', '.join(out)})")
        out[k] = v if k == "ops" else int(v)
    if not out["ops"] or any(o not in _OPS for o in out["ops"]):
        raise ValueError(f"{spec!r}: ops must be made of + - *")
    if out["n"] < 1 or out["max"] < 1:
        raise ValueError(f"{spec!r}: n and max must be >= 1")
    return out


def arithmetic_rows(n: int = 64, seed: int = 0, max: int = 20, ops: str = "+-*") -> list[dict]:
    """``n`` rows ``{"prompt": [{"role": "user", "content": "What is 3 + 4? Answer with the number only."}],
    "answer": "7"}`` — seeded, distinct questions while there are enough (then repeats)."""
    rng = random.Random(seed)
    space = (max + 1) ** 2 * len(ops)
    seen: set[tuple] = set()
    rows = []
    while len(rows) < n:
        a, b, op = rng.randint(0, max), rng.randint(0, max), rng.choice(ops)
        if (a, b, op) in seen and len(seen) < space:
            continue
        seen.add((a, b, op))
        q = f"What is {a} {op} {b}? {INSTRUCTION}"
        rows.append({"prompt": [{"role": "user", "content": q}], "answer": str(_OPS[op](a, b))})
    return rows


def _as_messages(p) -> list[dict]:
    if isinstance(p, str):
        return [{"role": "user", "content": p}]
    if isinstance(p, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in p):
        return [{"role": m["role"], "content": m["content"]} for m in p]
    raise ValueError("prompt must be a string or a list of {role, content} messages")


def load_prompt_rows(path: str, split: str | None = "train", limit: int | None = None) -> list[dict]:
    """Rows ``{"prompt": messages, "answer": str | None[, "context": str]}`` from a spec or a file (module doc)."""
    if path.startswith("arithmetic"):
        rows = arithmetic_rows(**parse_arithmetic_spec(path))
    else:
        ds = load_rows(path, split or "train")  # jsonl / json / parquet / a save_to_disk folder
        rows = []
        for i, r in enumerate(ds):
            try:
                prompt = r.get("prompt", r.get("question"))
                if prompt is None:
                    raise ValueError("no 'prompt' (or 'question') field")
                row = {"prompt": _as_messages(prompt),
                       "answer": None if r.get("answer") is None else str(r["answer"])}
                if r.get("context"):
                    row["context"] = str(r["context"])
                if r.get("rubric"):
                    row["rubric"] = [{"criterion": str(c["criterion"]), "weight": float(c.get("weight") or 1)}
                                     for c in r["rubric"]]
            except ValueError as e:
                raise ValueError(f"{path}: row {i}: {e}") from None
            rows.append(row)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise ValueError(f"{path}: no prompts")
    return rows
