"""Judge prompt builders: pointwise ``[Analysis] … [Score: N]``, pairwise ``[[A]]``/``[[B]]``, best-of-N
``[[A>B>C]]`` (REFERENCE §1.1).

All builders return chat messages (``[{"role": ..., "content": ...}, ...]``) ready for a tokenizer's chat
template or an OpenAI-compatible server.  The pointwise layout follows the official LongRM training data
(§1.9): the user message holds ``<context>…</context>``, ``<prompt>…</prompt>`` and ``<response>…</response>``,
and the critical part of the context is wrapped in a short random tag the system prompt names.
"""
from __future__ import annotations

import random
import string

Message = dict[str, str]

POINTWISE_SYSTEM = (
    "You are an expert in evaluating the quality of model responses to questions about a long context.\n"
    "You will receive a long context (which may contain both useful clues and irrelevant material), a user "
    "question related to the part between <{tag}> and </{tag}>, and a model response. Focus on the content "
    "between <{tag}> and </{tag}>. Assess the quality of the response:\n"
    "(1) Correctness: does the response answer the question accurately, based on the context?\n"
    "(2) Faithfulness: is every claim supported by the context, with nothing invented?\n"
    "(3) Relevance and clarity: does it stay on the question, clearly and without digressions?\n"
    "Give a detailed analysis first, then an integer score from 0 to 10, in exactly this format:\n"
    "[Analysis]\n{{your analysis}}\n[Score: {{an integer between 0 and 10}}]"
)

POINTWISE_SYSTEM_NO_TAG = (
    "You are an expert in evaluating the quality of model responses to questions about a long context.\n"
    "You will receive a long context (which may contain both useful clues and irrelevant material), a user "
    "question and a model response. Assess the quality of the response:\n"
    "(1) Correctness: does the response answer the question accurately, based on the context?\n"
    "(2) Faithfulness: is every claim supported by the context, with nothing invented?\n"
    "(3) Relevance and clarity: does it stay on the question, clearly and without digressions?\n"
    "Give a detailed analysis first, then an integer score from 0 to 10, in exactly this format:\n"
    "[Analysis]\n{your analysis}\n[Score: {an integer between 0 and 10}]"
)

PAIRWISE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. You should choose the assistant that follows the user's "
    "instructions and answers the user's question better, using the context when one is given. Begin your "
    "evaluation by comparing the two responses and provide a short explanation. Avoid any position biases and "
    "ensure that the order in which the responses were presented does not influence your decision. Do not "
    "allow the length of the responses to influence your evaluation. Be as objective as possible. After "
    'providing your explanation, output your final verdict by strictly following this format: "[[A]]" if '
    'assistant A is better, "[[B]]" if assistant B is better.'
)

BEST_OF_N_SYSTEM = (
    "Please act as an impartial judge and rank the responses provided by {n} AI assistants to the user "
    "question displayed below, from best to worst, using the context when one is given. Avoid any position "
    "biases and do not let the length of the responses influence your ranking. First write your analysis, "
    "then the ranking, strictly in this format:\n[Analysis]\n{{your analysis}}\n[Ranking]\n[[{example}]]"
)


def candidate_labels(n: int) -> list[str]:
    """``n`` candidate letters: ``['A', 'B', ...]`` (n ≤ 26)."""
    if not 1 <= n <= 26:
        raise ValueError(f"between 1 and 26 candidates are supported, got {n}")
    return list(string.ascii_uppercase[:n])


def random_tag(rng: random.Random, min_len: int = 2, max_len: int = 4) -> str:
    """A random upper-case tag of 2–4 letters used to mark the critical context (e.g. ``RUOA``)."""
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(min_len, max_len)))


def tag_text(text: str, tag: str) -> str:
    """Wrap ``text`` as ``<tag>text</tag>``."""
    return f"<{tag}>{text}</{tag}>"


def response_block(response: str) -> str:
    """The ``<response>`` block that ends a pointwise judgement's user message."""
    return f"<response>\n{response}\n</response>\n"


def pointwise_user(context: str, question: str, response: str) -> str:
    """User message of a pointwise judgement, in the official layout (§1.9)."""
    return (
        f"<context>\n{context}\n</context>\n\n<prompt>\n{question}\n</prompt>\n\n"
        f"The following is the given response to evaluate.\n{response_block(response)}"
    )


def pointwise_messages(context: str, question: str, response: str, *, tag: str | None = None,
                       system: str | None = None) -> list[Message]:
    """System + user messages asking for ``[Analysis] … [Score: N]``.

    ``context`` is used verbatim (a caller that expands it already wrapped the critical part in ``tag``);
    ``tag`` only names the tag in the system prompt.
    """
    if system is None:
        system = POINTWISE_SYSTEM.format(tag=tag) if tag else POINTWISE_SYSTEM_NO_TAG
    return [{"role": "system", "content": system},
            {"role": "user", "content": pointwise_user(context, question, response)}]


def _context_block(context: str | None) -> str:
    return f"[Context]\n{context}\n[End of Context]\n\n" if context else ""


def pairwise_messages(question: str, response_a: str, response_b: str, *, context: str | None = None,
                      system: str = PAIRWISE_SYSTEM) -> list[Message]:
    """MT-Bench-style pairwise prompt ending in a ``[[A]]``/``[[B]]`` verdict (§1.1)."""
    user = (
        f"{_context_block(context)}[User Question]\n{question}\n\n"
        f"[The Start of Assistant A's Answer]\n{response_a}\n[The End of Assistant A's Answer]\n\n"
        f"[The Start of Assistant B's Answer]\n{response_b}\n[The End of Assistant B's Answer]"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def best_of_n_messages(question: str, responses: list[str], *, context: str | None = None) -> list[Message]:
    """Best-of-N prompt asking for ``[Analysis] … [Ranking] [[A>B>C]]`` (§1.1)."""
    labels = candidate_labels(len(responses))
    system = BEST_OF_N_SYSTEM.format(n=len(responses), example=">".join(labels))
    parts = [f"{_context_block(context)}[User Question]\n{question}\n"]
    for lab, resp in zip(labels, responses):
        parts.append(f"[The Start of Assistant {lab}'s Answer]\n{resp}\n[The End of Assistant {lab}'s Answer]\n")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def shuffled_order(n: int, seed: int, key: str | int = "") -> list[int]:
    """A permutation of ``range(n)`` fixed by ``(seed, key)`` — the candidate order shown to a judge.

    ``order[i]`` is the index of the original candidate displayed at position ``i`` (label ``A`` + i).
    Official evaluation shuffles with seed 42 (§1.1) so the position carries no signal.
    """
    order = list(range(n))
    random.Random(f"{seed}:{key}").shuffle(order)
    return order
