"""A built-in synthetic long-context preference set whose right judgement depends on the context.

Each prompt (official LongRM shape, REFERENCE §1.9: system prompt + a user message with ``<context>``,
``<prompt>``, ``<response>``) hides one fact -- ``the vault code is D`` (D a digit) -- at a random position in a
long filler document, asks for the code, and shows a response that states a code.  Half of the responses are
right.  The chosen judgement says *correct* for a right response and *wrong* for a wrong one; the rejected
judgement says the opposite.  Without reading the context, chosen and rejected are symmetric, so preference
accuracy is 50%; a model has to compare the code in the response with the one in the context to do better,
however long the filler.  ``distractors`` adds codes of other objects (the vault must be told apart).

Used by the "it really trains" test, the tiny configs and the quickstart.  ``data.path: "synthetic:n=512,
words=300,seed=0"`` in a stage config builds the records in memory (keys: ``n``, ``words``, ``seed``,
``distractors``, ``rejects``, ``values``).  ``python -m longrm.data.synthetic OUT.jsonl n=... words=...`` writes them.  ``values`` (default 2) is how many
different codes occur: with 2 a tiny random-init model learns the comparison in a minute on CPU; 10 is harder.
"""
from __future__ import annotations

import random
import sys

from ..records import PreferenceRecord, SFTRecord, write_records

__all__ = ["make_preference_records", "make_sft_records", "parse_spec", "records_from_spec"]

SYSTEM = ("You are a careful judge. Read the document, the question and the response, and say whether the "
          "response answers the question correctly according to the document.")
_WORDS = ["the", "a", "of", "and", "to", "in", "was", "for", "on", "that", "by", "with", "from", "as", "city",
          "river", "born", "year", "capital", "company", "founded", "located", "answer", "question", "evidence",
          "document", "which", "who", "where", "when", "better", "not"]
_OBJECTS = ["vault", "gate", "locker", "safe", "door", "chest"]
RIGHT = "The response is correct."
WRONG = "The response is wrong."


def _filler(rng: random.Random, n_words: int) -> list[str]:
    sents, count = [], 0
    while count < n_words:
        k = rng.randint(6, 14)
        words = [rng.choice(_WORDS) for _ in range(k)]
        sents.append(" ".join(words).capitalize() + ".")
        count += k
    return sents


def _item(rng: random.Random, words: int, distractors: int, values: int, fixed: bool = False):
    digits = list(range(10)) if values >= 10 else sorted(random.Random(values).sample(range(10), values))
    code = rng.choice(digits)
    sents = _filler(rng, words)
    facts = [f"The vault code is {code}."]
    for obj in rng.sample(_OBJECTS[1:], min(distractors, len(_OBJECTS) - 1)):
        facts.append(f"The {obj} code is {rng.choice(digits)}.")
    for f in facts:
        sents.insert(rng.randint(0, len(sents)), f)
    if fixed:  # the response always claims the first code: only the context decides the verdict
        said = digits[0]
        correct = code == said
    else:
        correct = rng.random() < 0.5
        said = code if correct else rng.choice([d for d in digits if d != code])
    question = "What is the vault code?"
    response = f"The vault code is {said}."
    user = (f"<context>\n{' '.join(sents)}\n</context>\n<prompt>{question}</prompt>\n"
            f"<response>{response}</response>")
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    return prompt, question, response, code, correct


def make_preference_records(n: int, words: int = 300, seed: int = 0, distractors: int = 0, rejects: int = 1,
                            values: int = 2, fixed: int = 0) -> list[PreferenceRecord]:
    """``n`` records with ~``words`` filler words each, codes drawn from ``values`` digits (2 = easiest, 10),
    and ``rejects`` (V) rejected judgements per record (the wrong verdict, reworded after the first)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt, q, resp, code, correct = _item(rng, words, distractors, values, bool(fixed))
        chosen, rejected = (RIGHT, WRONG) if correct else (WRONG, RIGHT)
        alt = [rejected] + [f"{rejected} I am sure."] * (rejects - 1)
        out.append(PreferenceRecord(prompt=prompt, chosen=chosen, rejected=alt, id=f"synthetic-{seed}-{i}",
                                    question=q, responses=[resp], reference=str(code),
                                    metadata={"correct": correct, "synthetic": True}))
    return out


def make_sft_records(n: int, words: int = 300, seed: int = 0, distractors: int = 0, values: int = 2,
                     fixed: int = 0) -> list[SFTRecord]:
    """SFT view of the same task: the target is the right judgement."""
    return [SFTRecord(prompt=r.prompt, target=r.chosen, id=r.id, metadata=r.metadata)
            for r in make_preference_records(n, words, seed, distractors, values=values, fixed=fixed)]


def parse_spec(spec: str) -> dict:
    """``"synthetic:n=64,words=200,seed=1"`` -> ``{"n": 64, "words": 200, "seed": 1}``."""
    if not spec.startswith("synthetic:"):
        raise ValueError(f"not a synthetic spec: {spec!r}")
    out: dict = {}
    body = spec.split(":", 1)[1]
    for part in filter(None, body.split(",")):
        k, _, v = part.partition("=")
        if k not in ("n", "words", "seed", "distractors", "rejects", "values", "fixed"):
            raise ValueError(f"{spec!r}: unknown key {k!r} (n, words, seed, distractors, rejects, values, fixed)")
        out[k] = int(v)
    return out


def records_from_spec(spec: str, kind: str = "preference"):
    p = parse_spec(spec)
    p.setdefault("n", 256)
    if kind == "sft":
        p.pop("rejects", None)
        return make_sft_records(**p)
    return make_preference_records(**p)


if __name__ == "__main__":  # python -m longrm.data.synthetic OUT.jsonl n=512 words=300 seed=0
    kw = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])}
    print(write_records(make_preference_records(**kw), sys.argv[1]))
