"""A tiny, deterministic, Long-RewardBench-shaped sample set for tests and the quickstart (no download).

Rows have every field of the real benchmark (REFERENCE §1.8): ``prompt_template``, ``chosen``/``rejected``
or ``candidates`` (gold order), ``source`` (one of the seven tasks), ``ctx_length_for_length``, ``tasktype``,
``subtype``, ``id``, ``question``, ``subtask``.  Each context hides one fact among filler sentences; the
context grows with the length label (``base_words · 2^bucket``), so the "128k" rows are longer than the
"4k" ones but still tiny.  The chosen answer states the fact, rejected answers get it wrong or dodge it.

``python -m longrm.eval.synthetic OUT.jsonl [--pairwise N] [--best-of-n N] [--seed S]`` writes a file.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ..config import atomic_write_text
from .samples import LENGTHS, TASKS

__all__ = ["make_rows", "write_rows"]

_NAMES = ["Ada", "Bram", "Cleo", "Dmitri", "Esme", "Farid", "Gwen", "Hugo", "Ines", "Jun", "Kofi", "Lena"]
_PLACES = ["the harbour", "the library", "the orchard", "the observatory", "the market", "the mill", "the bridge"]
_THINGS = ["a brass key", "a red lantern", "an old map", "a silver coin", "a wooden flute", "a glass bead"]
_FILLER = ["The weather stayed mild all week.", "A cart rolled past the square.", "Bells rang at noon.",
           "The river ran high after the rain.", "Someone painted the fence green.", "Gulls circled the roofs.",
           "The baker opened early.", "A letter arrived without a stamp.", "Lamps were lit at dusk."]


def _context(rng: random.Random, fact: str, n_words: int) -> str:
    sents: list[str] = []
    while sum(len(s.split()) for s in sents) < n_words:
        sents.append(rng.choice(_FILLER))
    sents.insert(rng.randint(0, len(sents)), fact)
    return " ".join(sents)


def _item(rng: random.Random, bucket: int, base_words: int) -> tuple[list[dict], str, list[str]]:
    who, where, what = rng.choice(_NAMES), rng.choice(_PLACES), rng.choice(_THINGS)
    other_place = rng.choice([p for p in _PLACES if p != where])
    fact = f"{who} left {what} at {where}."
    question = f"Where did {who} leave {what}?"
    ctx = _context(rng, fact, base_words * 2 ** bucket)
    prompt = [{"role": "system", "content": "Answer the question using the document."},
              {"role": "user", "content": f"Document:\n{ctx}\n\nQuestion: {question}"}]
    answers = [f"{who} left {what} at {where}, as the document states.",     # best: right and grounded
               f"At {where}.",                                             # right but bare
               f"{who} left it at {other_place}.",                          # wrong place
               "The document does not say."]                               # dodges
    return prompt, question, answers


def make_rows(n_pairwise: int = 14, n_best_of_n: int = 9, seed: int = 0, base_words: int = 8) -> list[dict]:
    """``n_pairwise`` PairWise rows (alternating subtype same/diff) and ``n_best_of_n`` BestOfN rows (2, 3, 4
    candidates in turn), cycling over the seven tasks and six length labels."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for i in range(n_pairwise):
        bucket = i % len(LENGTHS)
        prompt, question, answers = _item(rng, bucket, base_words)
        rows.append({"id": f"pw-{i:04d}", "prompt_template": prompt, "question": question,
                     "chosen": answers[0], "rejected": answers[2 + i % 2],
                     "source": TASKS[i % len(TASKS)], "ctx_length_for_length": LENGTHS[bucket],
                     "tasktype": "PairWise", "subtype": "same" if i % 2 == 0 else "diff", "subtask": "synthetic"})
    for i in range(n_best_of_n):
        bucket = i % len(LENGTHS)
        k = 2 + i % 3
        prompt, question, answers = _item(rng, bucket, base_words)
        rows.append({"id": f"bon-{i:04d}", "prompt_template": prompt, "question": question,
                     "candidates": answers[:k] if k < 4 else answers,
                     "source": TASKS[i % len(TASKS)], "ctx_length_for_length": LENGTHS[bucket],
                     "tasktype": "BestOfN", "subtype": k, "subtask": "synthetic"})
    return rows


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """Write rows as jsonl (atomically)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--pairwise", type=int, default=14)
    ap.add_argument("--best-of-n", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-words", type=int, default=8)
    a = ap.parse_args(argv)
    p = write_rows(make_rows(a.pairwise, a.best_of_n, a.seed, a.base_words), a.out)
    print(f"wrote {a.pairwise + a.best_of_n} rows to {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
