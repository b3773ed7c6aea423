"""Built-in generator of short synthetic judging tasks — no download needed (feeds the quickstart and tests).

Each task is a multi-hop fact lookup over fictional entities (REFERENCE §1.2 uses multi-hop QA with ``hop`` 2/4):

- a short *critical context*: the evidence passages for every hop plus a few same-shaped near-miss facts about
  other entities (so the lookup is not trivial), shuffled;
- a question whose answer needs all hops, and the golden answer;
- candidate responses of graded faithfulness — ``correct`` (grade 9–10), ``partial`` (one wrong hop or an
  unsupported claim, 4–6), ``hallucinated`` (a confident invented answer, 1–3), ``offtopic`` (0–1) — each in
  one of several surface styles (terse, explanatory, step list, formal, hedged).

The gold ``grade`` of each response is known, so a simulated judge (:mod:`data_synthesis.judges.oracle`) can
score it and reports can measure judge accuracy.  :func:`distractor_documents` writes encyclopedia-style filler
passages about other fictional entities for the short-to-long expansion.
Everything is a pure function of ``seed``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["SyntheticTask", "generate_tasks", "generate_task", "distractor_documents", "RESPONSE_KINDS", "STYLES",
           "FAMILIES"]

_SYLL = ["ka", "lo", "ri", "ven", "tor", "mi", "sa", "do", "re", "an", "el", "is", "on", "ur", "ta", "ne",
         "bra", "quil", "dor", "phe", "zan", "gu", "mor", "thi"]
_INDUSTRIES = ["shipbuilding", "textile", "glassware", "software", "mining", "publishing", "brewing", "optics",
               "railway", "pharmaceutical"]
_FIELDS = ["astronomy", "botany", "linguistics", "chemistry", "music", "architecture", "geology", "painting"]
RESPONSE_KINDS = ("correct", "partial", "hallucinated", "offtopic")
STYLES = ("terse", "explain", "steps", "formal", "hedged")
NO_CLAIM = "nothing that answers the question"
_GRADES = {"correct": (9, 10), "partial": (4, 6), "hallucinated": (1, 3), "offtopic": (0, 1)}


@dataclass
class SyntheticTask:
    id: str
    question: str
    context: str
    reference: str
    responses: list[str]
    grades: list[int]
    kinds: list[str]
    styles: list[str]
    hop: int
    meta: dict = field(default_factory=dict)


class _Names:
    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def __call__(self, n_syll: tuple[int, int] = (2, 3)) -> str:
        while True:
            name = "".join(self.rng.choice(_SYLL) for _ in range(self.rng.randint(*n_syll))).capitalize()
            if name not in self.used:
                self.used.add(name)
                return name


def _chain(rng: random.Random, names: _Names, hop: int) -> tuple[list[tuple[str, str, str]], str, str]:
    """A chain of ``hop`` facts ``(subject, relation, object)``; returns facts, question and answer."""
    company, person, city, country = names(), f"{names()} {names()}", names(), names()
    year = rng.randint(1700, 1990)
    facts = [(company, "founded_by", person), (person, "born_in", city)]
    if hop >= 3:
        facts.append((city, "in_country", country))
    if hop >= 4:
        facts.append((country, "capital_year", str(year)))
    if hop == 2:
        q, a = f"In which city was the founder of {company} born?", city
    elif hop == 3:
        q, a = f"In which country was the founder of {company} born?", country
    else:
        q, a = f"In which year did the birth country of the founder of {company} choose its capital?", str(year)
    return facts, q, a


def _sentence(rng: random.Random, s: str, rel: str, o: str) -> str:
    ind, fld = rng.choice(_INDUSTRIES), rng.choice(_FIELDS)
    if rel == "founded_by":
        return rng.choice([f"{s} is a {ind} company that was founded by {o}.",
                           f"The {ind} firm {s} was established by {o}, who ran it for many years."])
    if rel == "born_in":
        return rng.choice([f"{s} was born in {o} and later became known for work in {fld}.",
                           f"Records show that {s} was born in the town of {o}."])
    if rel == "in_country":
        return rng.choice([f"{s} is a city located in {o}.", f"The city of {s} lies in the north of {o}."])
    return rng.choice([f"{s} chose its capital in the year {o}.", f"In {o}, {s} formally chose its capital."])


def _response(rng: random.Random, kind: str, style: str, facts, answer: str, names: _Names,
              question: str) -> str:
    chain = [(s, r, o) for s, r, o in facts]
    if kind == "partial":  # one intermediate hop wrong, or the right chain with a wrong final answer
        i = rng.randrange(len(chain))
        s, r, o = chain[i]
        fake = names() if not o.isdigit() else str(int(o) + rng.choice([-7, 3, 12]))
        if r == "founded_by":
            fake = f"{names()} {names()}"
        chain[i] = (s, r, fake)
        final = chain[-1][2] if i == len(chain) - 1 else (answer if rng.random() < 0.5 else chain[-1][2])
        if style in ("terse", "hedged") and final == answer:  # these styles show no chain: make the error visible
            final = fake if i == len(chain) - 1 else (names() if not answer.isdigit() else str(int(answer) + 5))
    elif kind == "hallucinated":
        final = names() if not answer.isdigit() else str(int(answer) + rng.randint(20, 80))
        chain = [(s, r, f"{names()}") for s, r, _ in chain]
    else:
        final = answer
    rel_txt = {"founded_by": "was founded by", "born_in": "was born in", "in_country": "is in",
               "capital_year": "chose its capital in"}
    steps = [f"{s} {rel_txt[r]} {o}" for s, r, o in chain]
    if kind == "offtopic":
        topic = rng.choice(_FIELDS)
        return NO_CLAIM, rng.choice([f"{topic.capitalize()} is a fascinating subject with a long history of debate.",
                           f"I think the question is really about {topic}, which has many interesting aspects "
                           f"that scholars have studied for centuries.",
                           "That is a great question! There are many companies in the world and each has a story."])
    if style == "terse":
        return final, f"{final}."
    if style == "explain":
        return final, f"According to the documents, {'; '.join(steps)}. Therefore the answer is {final}."
    if style == "steps":
        return final, "\n".join(f"{i + 1}. {st}." for i, st in enumerate(steps)) + f"\nAnswer: {final}"
    if style == "formal":
        return final, (f"Based on the provided evidence, the answer to \"{question}\" is {final}, since "
                       + ", and ".join(steps) + ".")
    return final, f"I believe it is probably {final}, though I am not completely sure. It seems that {steps[0]}."


def generate_tasks(n: int, *, seed: int = 0, hops: tuple[int, ...] = (2, 3), responses_per_task: int = 4,
                   near_miss_facts: int = 3, kinds: tuple[str, ...] = RESPONSE_KINDS,
                   styles: tuple[str, ...] = STYLES, id_prefix: str = "syn",
                   families: tuple[str, ...] = ("multihop",)) -> list[SyntheticTask]:
    """``n`` tasks; task ``i`` depends only on ``(seed, i)`` so any slice can be regenerated alone."""
    return [generate_task(i, seed=seed, hops=hops, responses_per_task=responses_per_task,
                          near_miss_facts=near_miss_facts, kinds=kinds, styles=styles, id_prefix=id_prefix,
                          families=families)
            for i in range(n)]


def generate_task(i: int, *, seed: int = 0, hops: tuple[int, ...] = (2, 3), responses_per_task: int = 4,
                  near_miss_facts: int = 3, kinds: tuple[str, ...] = RESPONSE_KINDS,
                  styles: tuple[str, ...] = STYLES, id_prefix: str = "syn",
                  families: tuple[str, ...] = ("multihop",)) -> SyntheticTask:
    """Task ``i`` of the family ``families[i % len(families)]`` (a pure function of ``(seed, i)``)."""
    family = families[i % len(families)]
    if family not in FAMILIES:
        raise ValueError(f"unknown synthetic family {family!r}; choose from {', '.join(FAMILIES)}")
    if family != "multihop":
        return FAMILIES[family](i, seed=seed, responses_per_task=responses_per_task, near_miss_facts=near_miss_facts,
                                kinds=kinds, styles=styles, id_prefix=id_prefix)
    rng = random.Random(f"synthetic:{seed}:{i}")
    names = _Names(rng)
    hop = rng.choice(hops)
    facts, question, answer = _chain(rng, names, hop)
    sentences = [_sentence(rng, *f) for f in facts]
    evidence = " ".join(sentences)
    for _ in range(near_miss_facts):  # same relation shapes about other entities
        other, _, _ = _chain(rng, names, hop)
        sentences.append(_sentence(rng, *rng.choice(other)))
    rng.shuffle(sentences)
    paras = [" ".join(sentences[j:j + 2]) for j in range(0, len(sentences), 2)]
    context = "\n".join(f"Passage {j + 1}: {p}" for j, p in enumerate(paras))
    chosen_kinds = [kinds[j % len(kinds)] for j in range(responses_per_task)]
    rng.shuffle(chosen_kinds)
    responses, grades, used_styles, claims = [], [], [], []
    for kind in chosen_kinds:
        style = rng.choice(styles)
        claim, text = _response(rng, kind, style, facts, answer, names, question)
        responses.append(text)
        claims.append(claim)
        grades.append(rng.randint(*_GRADES[kind]))
        used_styles.append(style)
    return SyntheticTask(id=f"{id_prefix}-{seed}-{i:06d}", question=question, context=context, reference=answer,
                         responses=responses, grades=grades, kinds=chosen_kinds, styles=used_styles, hop=hop,
                         meta={"family": "multihop", "evidence": evidence, "claims": claims})


def distractor_documents(n: int, *, seed: int = 1, sentences: tuple[int, int] = (6, 20)) -> list[str]:
    """``n`` encyclopedia-style filler passages about fictional entities (distractors for expansion)."""
    out = []
    for i in range(n):
        rng = random.Random(f"distractor:{seed}:{i}")
        names = _Names(rng)
        title = names()
        body = []
        for _ in range(rng.randint(*sentences)):
            facts, _, _ = _chain(rng, names, rng.choice((2, 3, 4)))
            body.append(_sentence(rng, *rng.choice(facts)))
            if rng.random() < 0.3:
                body.append(f"{title} is often mentioned in studies of {rng.choice(_FIELDS)} and "
                            f"{rng.choice(_INDUSTRIES)}, and its records date back to {rng.randint(1500, 2000)}.")
        out.append(f"{title}\n" + " ".join(body))
    return out


# --- the "lookup" family: one keyed value per object ---------------------------------------------------------
_OBJECTS = ["vault", "archive", "greenhouse", "workshop", "observatory", "boathouse", "library", "granary",
            "armory", "chapel", "kitchen", "cellar", "tower", "stable", "mill", "forge", "gallery", "harbor office",
            "bakery", "laboratory"]


def _distinct(n: int, draw) -> list:
    """``n`` distinct values from ``draw()``."""
    out: list = []
    while len(out) < n:
        v = draw()
        if v not in out:
            out.append(v)
    return out


def _value_task(rng: random.Random, *, family: str, tid: str, sentences: list[str], values: list, question: str,
                partial, draw, render, offtopic: list[str], responses_per_task: int, kinds: tuple[str, ...],
                styles: tuple[str, ...]) -> SyntheticTask:
    """A task whose answer is one value stated in the context: ``sentences[j]`` states ``values[j]``, the first
    is the asked one (the gold evidence) and the rest are near misses.  Responses by kind: ``correct`` states
    ``values[0]``, ``partial`` states ``partial()`` (another value of the context or a near copy), ``hallucinated``
    an invented value (``draw()``, never one of the context), ``offtopic`` one of ``offtopic``; ``render(style,
    value)`` words a response."""
    evidence = sentences[0]
    rng.shuffle(sentences)
    context = "\n".join(f"Passage {j + 1}: {t}" for j, t in enumerate(sentences))
    chosen_kinds = [kinds[j % len(kinds)] for j in range(responses_per_task)]
    rng.shuffle(chosen_kinds)
    responses, grades, used_styles, claims = [], [], [], []
    for kind in chosen_kinds:
        style = rng.choice(styles)
        if kind == "correct":
            said = values[0]
        elif kind == "partial":
            said = partial()
        else:
            said = draw()
            while said in values:
                said = draw()
        claims.append(NO_CLAIM if kind == "offtopic" else str(said))
        responses.append(rng.choice(offtopic) if kind == "offtopic" else render(style, said))
        grades.append(rng.randint(*_GRADES[kind]))
        used_styles.append(style)
    return SyntheticTask(id=tid, question=question, context=context, reference=str(values[0]), responses=responses,
                         grades=grades, kinds=chosen_kinds, styles=used_styles, hop=1,
                         meta={"family": family, "evidence": evidence, "claims": claims})


# --- the "lookup" family: one keyed value per object ---------------------------------------------------------
_OBJECTS = ["vault", "archive", "greenhouse", "workshop", "observatory", "boathouse", "library", "granary",
            "armory", "chapel", "kitchen", "cellar", "tower", "stable", "mill", "forge", "gallery", "harbor office",
            "bakery", "laboratory"]


def _lookup_task(i: int, *, seed: int = 0, responses_per_task: int = 4, near_miss_facts: int = 2,
                 kinds: tuple[str, ...] = RESPONSE_KINDS, styles: tuple[str, ...] = STYLES,
                 id_prefix: str = "syn") -> SyntheticTask:
    """A key-value lookup: the context gives the access code of one object (and of ``near_miss_facts`` others);
    the question asks for it.  ``partial`` answers give another object's code from the context (or the right
    code with two digits swapped when there is none), ``hallucinated`` ones an invented code."""
    rng = random.Random(f"synthetic-lookup:{seed}:{i}")
    objs = rng.sample(_OBJECTS, 1 + near_miss_facts)
    codes = _distinct(len(objs), lambda: str(rng.randint(100, 999)))
    obj, code = objs[0], codes[0]
    site = _Names(rng)()
    sentences = [rng.choice([f"The access code of the {o} is {c}.", f"At {site}, the {o} opens with the code {c}."])
                 for o, c in zip(objs, codes)]

    def partial() -> str:
        if len(codes) > 1:
            return rng.choice(codes[1:])
        swapped = code[1] + code[0] + code[2]
        if swapped == code:
            swapped = code[0] + code[2] + code[1] if code[1] != code[2] else str(int(code) + 1)
        return swapped

    def render(style: str, said: str) -> str:
        if style == "terse":
            return f"{said}."
        if style == "hedged":
            return f"I think it might be {said}, but I am not sure."
        if style == "steps":
            return f"1. The question asks about the {obj}.\n2. Its code is given in the document.\nAnswer: {said}"
        return f"According to the document, the access code of the {obj} is {said}."

    offtopic = [f"Access codes are an interesting topic in {rng.choice(_FIELDS)}.",
                "I cannot help with codes, but the building has a long history."]
    return _value_task(rng, family="lookup", tid=f"{id_prefix}-lookup-{seed}-{i:06d}", sentences=sentences,
                       values=codes, question=f"What is the access code of the {obj}?", partial=partial,
                       draw=lambda: str(rng.randint(100, 999)), render=render, offtopic=offtopic,
                       responses_per_task=responses_per_task, kinds=kinds, styles=styles)


# --- the "timeline" family: when did an event happen ---------------------------------------------------------
_EVENTS = ["the bridge was rebuilt", "the first newspaper was printed", "the harbor was dredged",
           "the university was founded", "the great flood struck", "the railway reached the town",
           "the cathedral bells were cast", "the treaty was signed", "the observatory opened",
           "the market hall burned down", "the canal was dug", "the town charter was granted"]


def _timeline_task(i: int, *, seed: int = 0, responses_per_task: int = 4, near_miss_facts: int = 2,
                   kinds: tuple[str, ...] = RESPONSE_KINDS, styles: tuple[str, ...] = STYLES,
                   id_prefix: str = "syn") -> SyntheticTask:
    """When did an event happen in a fictional town: the context dates it (and ``near_miss_facts`` other events
    of the same town); ``partial`` answers give another event's year (or one ten years off), ``hallucinated``
    an invented one."""
    rng = random.Random(f"synthetic-timeline:{seed}:{i}")
    town = _Names(rng)()
    events = rng.sample(_EVENTS, 1 + near_miss_facts)
    years = _distinct(len(events), lambda: rng.randint(1400, 1950))
    event, year = events[0], years[0]
    sentences = [rng.choice([f"In {town}, {e} in {y}.", f"Town records of {town} show that {e} in the year {y}."])
                 for e, y in zip(events, years)]

    def render(style: str, said: int) -> str:
        if style == "terse":
            return f"{said}."
        if style == "hedged":
            return f"Probably around {said}, though I am not certain."
        return f"According to the records, in {town} {event} in {said}."

    offtopic = [f"{town} is a lovely town with many old buildings.",
                f"History is full of surprises, especially in {rng.choice(_FIELDS)}."]
    return _value_task(rng, family="timeline", tid=f"{id_prefix}-timeline-{seed}-{i:06d}", sentences=sentences,
                       values=years, question=f"In which year did it happen in {town} that {event}?",
                       partial=lambda: rng.choice(years[1:]) if len(years) > 1 else year + 10,
                       draw=lambda: rng.randint(1400, 1950), render=render, offtopic=offtopic,
                       responses_per_task=responses_per_task, kinds=kinds, styles=styles)


FAMILIES = {"multihop": None, "lookup": _lookup_task, "timeline": _timeline_task}
