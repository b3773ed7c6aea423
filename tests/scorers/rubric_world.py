"""A synthetic world for rubric refinement tests: keyword facts with hidden weights, a keyword-checking rubric judge
and a scripted proposer with oracle knowledge of the hidden weights.

Prompt: "Why is the sky blue?".  A response is a baseline sentence ("The sky is blue because sunlight scatters in
the air.") plus one sentence per *fact* it contains, and some filler; its hidden quality is the sum of its facts'
weights.  Facts come in two tiers, built so that what separates the best responses differs from what separates the
rest (the situation §4's "chasing the tail" is about): a *strong* response (probability 0.4) has all three basic
facts and each advanced fact with probability ½; a *weak* one has each basic fact with probability 0.4 and no
advanced fact.  The initial rubric (``Mentions scatters``, ``Mentions sky``) is met by every response, so it ties
everything — a coarse rubric in the high-reward tail.

The judge (:func:`keyword_judge`) answers the rubric scorer's real prompt: criterion ``Mentions X`` is "yes" iff X
occurs in the response (case-insensitive); any other criterion is "no".  The proposer (:func:`scripted_proposer`)
reads the real proposer prompt, calls the response with the higher hidden quality the better one and adds
``Mentions F`` for the heaviest fact F the better response has, the other lacks and the rubric does not check yet
(weight 3 / 2 / 1 for hidden weight ≥ 2 / ≥ 1 / less); with no such fact it returns the rubric unchanged.

What this measures is therefore the loop (pair choice, exclusion, parsing, k rounds) and the held-out metric with an
oracle-informed proposer in a toy world — not whether an LLM proposer writes better rubrics.
"""
from __future__ import annotations

import json
import random
import re

PROMPT = "Why is the sky blue?"
BASE = "The sky is blue because sunlight scatters in the air."
BASIC = {  # keyword: (hidden weight, sentence containing it and no other keyword)
    "Rayleigh": (3.0, "This is called Rayleigh scattering."),
    "wavelength": (2.5, "Blue light has a shorter wavelength than red light."),
    "sunset": (1.5, "That is also why a sunset looks red."),
}
ADVANCED = {
    "fourth power": (2.0, "Scattering grows with the fourth power of the frequency."),
    "violet": (1.2, "Violet light is scattered even more, but sunlight holds less of it."),
    "molecules": (1.0, "Nitrogen and oxygen molecules do most of it."),
    "cone cells": (0.8, "Our cone cells respond most strongly to blue."),
    "ozone": (0.3, "Ozone adds a little blue as well."),
}
FACTS = {**BASIC, **ADVANCED}
FILLER = ["Clouds look white for a different reason.", "The ocean partly reflects the sky.",
          "Space looks black from orbit.", "Photographers love the blue hour.", "It is a common question."]
INITIAL = [{"criterion": "Mentions scatters", "weight": 3}, {"criterion": "Mentions sky", "weight": 1}]


def quality(text: str) -> float:
    return sum(w for k, (w, _) in FACTS.items() if k.lower() in text.lower())


def response(rng: random.Random, p_strong: float = 0.4) -> str:
    if rng.random() < p_strong:
        facts = list(BASIC) + [k for k in ADVANCED if rng.random() < 0.5]
    else:
        facts = [k for k in BASIC if rng.random() < 0.4]
    parts = [FACTS[k][1] for k in facts] + rng.sample(FILLER, rng.randint(0, 2))
    rng.shuffle(parts)
    return " ".join([BASE] + parts)


def world(seed: int, n_candidates: int = 16, n_heldout: int = 60, tail: float = 0.25):
    """(candidates, held-out (better, worse) pairs among the top ``tail`` of fresh responses by hidden quality)."""
    rng = random.Random(seed)
    cands = [response(rng) for _ in range(n_candidates)]
    held = sorted({response(rng) for _ in range(n_heldout)}, key=lambda t: (-quality(t), t))
    top = held[:max(2, int(len(held) * tail))]
    pairs = [(a, b) if quality(a) > quality(b) else (b, a) for i, a in enumerate(top) for b in top[i + 1:]
             if quality(a) != quality(b)]
    return cands, pairs


def keyword_judge_answer(user: str) -> str:
    resp = user.split("[Response]\n", 1)[1].split("\n[End of Response]", 1)[0].lower()
    out = {}
    for cid, text in re.findall(r"^(c\d+) \(weight [^)]*\): (.*)$", user, re.M):
        m = re.match(r"Mentions (.+)$", text.strip())
        out[cid] = "yes" if m and m.group(1).lower() in resp else "no"
    return json.dumps(out)


def scripted_proposer_answer(user: str) -> str:
    rubric = json.loads(user.split("[Current Rubric]\n", 1)[1].split("\n\n[Response A]", 1)[0])
    a = user.split("[Response A]\n", 1)[1].split("\n[End of Response A]", 1)[0]
    b = user.split("[Response B]\n", 1)[1].split("\n[End of Response B]", 1)[0]
    better, worse = (a, b) if quality(a) >= quality(b) else (b, a)
    checked = {c["criterion"].lower() for c in rubric}
    missing = [k for k in FACTS if k.lower() in better.lower() and k.lower() not in worse.lower()
               and f"mentions {k.lower()}" not in checked]
    if missing:
        k = max(missing, key=lambda k: FACTS[k][0])
        w = FACTS[k][0]
        rubric = rubric + [{"criterion": f"Mentions {k}", "weight": 3 if w >= 2 else 2 if w >= 1 else 1}]
    label = "A" if better == a else "B"
    return f"Response {label} is better.\nRevised rubric:\n{json.dumps(rubric)}"


class Scripted:
    """``generate(convs, temperature)`` dispatching on the system prompt: the rubric judge or the proposer.
    ``garbage``: the first this-many proposer calls answer unparsable text.  Records (kind, temperature)."""

    def __init__(self, garbage: int = 0):
        self.garbage, self.calls = garbage, []

    def generate(self, convs, temperature=0.0):
        from longrm.scorers.rubric_refine import PROPOSER_SYSTEM

        out = []
        for c in convs:
            kind = "proposer" if c[0]["content"] == PROPOSER_SYSTEM else "judge"
            self.calls.append((kind, temperature, c))
            if kind == "proposer" and self.garbage > 0:
                self.garbage -= 1
                out.append("I would add a criterion about clarity.")
            else:
                out.append(scripted_proposer_answer(c[1]["content"]) if kind == "proposer"
                           else keyword_judge_answer(c[1]["content"]))
        return out
