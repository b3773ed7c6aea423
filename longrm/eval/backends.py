"""Judge backends for evaluation: a local HF model (generate or score) and an OpenAI-compatible server.

Two small interfaces, so the runner does not care where answers come from:

- a *generator* maps a list of chat conversations to one text each (``generate(convs) -> list[str]``);
- a *scorer* maps a list of conversations ending in the assistant's response to one reward each
  (``score(convs) -> list[float]``).

Over-long prompts follow the benchmark (REFERENCE §1.8): a prompt of ``truncate_at`` (131,072) tokens or more
keeps its first ``head`` (65,536) and last ``tail`` (65,531) tokens — :class:`HeadTail`.

The server backend adapts the synthesis pipeline's OpenAI-compatible client
(:mod:`data_synthesis.judges.http`) to greedy, one-answer-per-prompt use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, Sequence

__all__ = ["Generator", "Scorer", "HeadTail", "LocalGenerator", "LocalScorer", "ServerGenerator", "ServerError",
           "BACKEND_ERROR", "pick_device"]

Conversation = list[dict]


class Generator(Protocol):
    def generate(self, convs: Sequence[Conversation]) -> list[str]: ...


class Scorer(Protocol):
    def score(self, convs: Sequence[Conversation]) -> list[float]: ...


@dataclass
class HeadTail:
    """The benchmark's over-long policy: ``len ≥ truncate_at`` → first ``head`` + last ``tail`` tokens."""

    truncate_at: int = 131072
    head: int = 65536
    tail: int = 65531
    truncated: int = 0

    def __post_init__(self):
        if self.head < 0 or self.tail < 0 or self.head + self.tail > self.truncate_at:
            raise ValueError(f"need head + tail <= truncate_at, got {self.head} + {self.tail} > {self.truncate_at}")

    def __call__(self, ids: Sequence[int]) -> list[int]:
        if len(ids) < self.truncate_at:
            return list(ids)
        from ..data.tokenize import keep_head_tail

        self.truncated += 1
        return keep_head_tail(ids, self.head + self.tail, head=self.head)


def pick_device(device: str = "auto"):
    """``auto`` → this process's GPU (``LOCAL_RANK``) when CUDA is available, else CPU."""
    import torch

    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _batches(order: list[int], lengths: list[int], batch_size: int, max_batch_tokens: int | None):
    """Split ``order`` (indices sorted by length) into batches of ≤ batch_size rows and ≤ max_batch_tokens."""
    batch: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in batch] + [lengths[i]])
        if batch and (len(batch) >= batch_size or (max_batch_tokens and longest * (len(batch) + 1) > max_batch_tokens)):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all of ``seqs`` share."""
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs[1:]):
            return i
    return n


def _cache_kwarg(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x; the old name goes in 5.40): take whichever the
    model's forward has."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _prefix_groups(ids: Sequence[Sequence[int]], min_tokens: int) -> list[tuple[list[int], int]]:
    """Group sequences that share a token prefix of ≥ ``min_tokens`` (each keeps ≥ 1 token of its own):
    ``(indices, shared length)`` for groups of two or more, greedily in input order."""
    groups: list[tuple[list[int], int]] = []
    free = list(range(len(ids)))
    while free:
        head, rest = free[0], free[1:]
        members, n = [head], len(ids[head]) - 1
        for j in rest:
            m = min(_common_prefix([ids[head], ids[j]]), len(ids[j]) - 1, n)
            if m >= min_tokens:
                members.append(j)
                n = m
        free = [j for j in free if j not in members]
        if len(members) > 1:  # n: the members' common prefix (the least of each one's with the head), capped
            groups.append((members, n))
    return groups


class LocalGenerator:
    """Generation with a local causal LM, batched with left padding (longest prompts first): greedy, or sampled
    when ``generate`` is given a temperature > 0.

    With ``share_prefix``, prompts that share a long token prefix — a sample's candidates in the pointwise mode,
    whose prompts differ only after the context and question — are prefilled once: each candidate's generation
    starts from a copy of that prefix's KV cache (one at a time, since left padding would shift the prefix).
    """

    min_shared_tokens = 256   # below this, batching the prompts beats sharing their prefix

    def __init__(self, model_cfg, *, max_new_tokens: int = 2048, batch_size: int = 1,
                 max_batch_tokens: int | None = None, truncation: HeadTail | None = None, device: str = "auto",
                 share_prefix: bool = False):
        import torch

        from ..models import load_causal_lm, load_tokenizer

        self.tok = load_tokenizer(model_cfg)
        self.device = pick_device(device)
        self.model = load_causal_lm(model_cfg).to(self.device).eval()
        self.max_new_tokens, self.batch_size, self.max_batch_tokens = max_new_tokens, batch_size, max_batch_tokens
        self.share_prefix = share_prefix
        self.truncation = truncation or HeadTail()
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tok.eos_token_id
        self.eos = eos
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else (
            eos[0] if isinstance(eos, list) else eos)
        self._torch = torch

    def generate(self, convs: Sequence[Conversation], temperature: float = 0.0) -> list[str]:
        from ..data.tokenize import encode_prompt, pad_batch

        torch = self._torch
        sampling = (dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else
                    dict(do_sample=False, temperature=None, top_p=None, top_k=None))
        ids = [self.truncation(encode_prompt(self.tok, c)) for c in convs]
        lengths = [len(x) for x in ids]
        out: list[str] = [""] * len(ids)
        shared: set[int] = set()
        if self.share_prefix:
            for idx, n in _prefix_groups(ids, self.min_shared_tokens):
                self._generate_shared(ids, idx, n, sampling, out)
                shared.update(idx)
        order = sorted((i for i in range(len(ids)) if i not in shared), key=lambda i: -lengths[i])
        for batch in _batches(order, lengths, self.batch_size, self.max_batch_tokens):
            inp, mask = pad_batch([ids[i] for i in batch], self.pad_id, left=True)
            width = inp.shape[1]
            with torch.inference_mode():
                gen = self.model.generate(input_ids=inp.to(self.device), attention_mask=mask.to(self.device),
                                          max_new_tokens=self.max_new_tokens, num_beams=1, use_cache=True,
                                          eos_token_id=self.eos, pad_token_id=self.pad_id, **sampling)
            for r, i in enumerate(batch):
                out[i] = self.tok.decode(gen[r, width:].tolist(), skip_special_tokens=True)
        return out

    def _generate_shared(self, ids: list[list[int]], idx: list[int], n: int, sampling: dict, out: list[str]) -> None:
        """Prefill the ``n`` shared tokens once; generate each of ``idx`` from a copy of that cache."""
        import copy

        torch = self._torch
        key = _cache_kwarg(self.model)
        with torch.inference_mode():
            cache = getattr(self.model(input_ids=torch.tensor([ids[idx[0]][:n]], device=self.device),
                                       use_cache=True), key)
            for k, i in enumerate(idx):
                kv = cache if k == len(idx) - 1 else copy.deepcopy(cache)  # generation appends to its cache
                inp = torch.tensor([ids[i]], device=self.device)
                gen = self.model.generate(input_ids=inp, attention_mask=torch.ones_like(inp),
                                          max_new_tokens=self.max_new_tokens, num_beams=1, use_cache=True,
                                          eos_token_id=self.eos, pad_token_id=self.pad_id, **{key: kv}, **sampling)
                out[i] = self.tok.decode(gen[0, len(ids[i]):].tolist(), skip_special_tokens=True)


class LocalScorer:
    """A sequence-classification reward model: reward at the last real token (right padding, REFERENCE §1.6).

    With ``share_prefix`` (default), conversations of a ``score`` call that share a token prefix — a sample's
    candidates, whose prompt is the same — are scored from one forward over that prefix (the long context) whose
    KV cache then serves a batch of the short candidate suffixes: cost ≈ one context pass
    per sample instead of one per candidate (2× for a pairwise row, 3–4× for best-of-N). Rewards equal the
    separate forwards' up to float rounding (``tests/eval/test_shared_prefix_scoring.py``).
    """

    min_shared_tokens = 32   # a shorter common prefix is not worth a cache

    def __init__(self, model_cfg, *, batch_size: int = 1, max_batch_tokens: int | None = None,
                 truncation: HeadTail | None = None, device: str = "auto", share_prefix: bool = True):
        import torch

        from ..models import load_seq_cls, load_tokenizer

        self.tok = load_tokenizer(model_cfg)
        self.device = pick_device(device)
        self.model = load_seq_cls(model_cfg).to(self.device).eval()
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.share_prefix = share_prefix
        self.truncation = truncation or HeadTail()
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        # Per-token logits of the scalar head, captured by a hook: HF's own pooling finds the last token by
        # looking for pad ids, which goes wrong when the pad id also ends a real sequence (pad = EOS).
        self.head = getattr(self.model, "score", None) or getattr(self.model, "classifier", None)
        self._captured = None
        if self.head is not None:
            self.head.register_forward_hook(lambda m, i, o: setattr(self, "_captured", o))
        self._torch = torch

    def _encode(self, conv: Conversation) -> list[int]:
        from ..data.tokenize import encode_scored

        return self.truncation(encode_scored(self.tok, conv))  # the training encoding (reward at the EOS)

    def _score_shared(self, ids: list[list[int]], idx: list[int], n: int, out: list[float]) -> None:
        """One forward over the ``n`` shared tokens, then the candidates' suffixes in batches on its KV cache."""
        import copy

        from ..data.tokenize import pad_batch

        torch = self._torch
        prefix = torch.tensor([ids[idx[0]][:n]], device=self.device)
        suffixes = [ids[i][n:] for i in idx]
        key = _cache_kwarg(self.model)
        with torch.inference_mode():
            cache = getattr(self.model(input_ids=prefix, use_cache=True), key)
            chunks = [list(range(k, min(k + self.batch_size, len(idx)))) for k in range(0, len(idx), self.batch_size)]
            for c, chunk in enumerate(chunks):
                kv = cache if c == len(chunks) - 1 else copy.deepcopy(cache)  # the forward appends to its cache
                if len(chunk) > 1:
                    kv.batch_repeat_interleave(len(chunk))
                inp, mask = pad_batch([suffixes[j] for j in chunk], self.pad_id)  # right padding
                full = torch.cat([torch.ones(len(chunk), n, dtype=mask.dtype), mask], dim=1)
                self._captured = None
                res = self.model(input_ids=inp.to(self.device), attention_mask=full.to(self.device),
                                 use_cache=True, **{key: kv})
                per_tok = self._captured.float() if self._captured is not None and self._captured.dim() == 3 else None
                for r, j in enumerate(chunk):
                    last = len(suffixes[j]) - 1
                    out[idx[j]] = float(per_tok[r, last, 0]) if per_tok is not None else float(res.logits[r, 0])
            self._captured = None

    def score(self, convs: Sequence[Conversation]) -> list[float]:
        from ..data.tokenize import pad_batch

        torch = self._torch
        ids = [self._encode(c) for c in convs]
        lengths = [len(x) for x in ids]
        out: list[float] = [0.0] * len(ids)
        shared: set[int] = set()
        groups = _prefix_groups(ids, self.min_shared_tokens) if self.share_prefix and self.head is not None else []
        for idx, n in groups:
            self._score_shared(ids, idx, n, out)
            shared.update(idx)
        order = sorted((i for i in range(len(ids)) if i not in shared), key=lambda i: -lengths[i])
        bs = self.batch_size if self.head is not None else 1
        for batch in _batches(order, lengths, bs, self.max_batch_tokens):
            inp, mask = pad_batch([ids[i] for i in batch], self.pad_id)
            with torch.inference_mode():
                res = self.model(input_ids=inp.to(self.device), attention_mask=mask.to(self.device))
            if self.head is not None and self._captured is not None and self._captured.dim() == 3:
                per_tok = self._captured.float()
                for r, i in enumerate(batch):
                    out[i] = float(per_tok[r, lengths[i] - 1, 0])
            else:
                for r, i in enumerate(batch):
                    out[i] = float(res.logits[r, 0])
            self._captured = None
        return out


BACKEND_ERROR = "<error: "   # prefix of the text a backend returns for a request it could not answer


class ServerError(RuntimeError):
    pass


class ServerGenerator:
    """Greedy chat completions from an OpenAI-compatible server (vLLM, SGLang, llama.cpp, OpenAI, ...).

    A thin adapter over the synthesis pipeline's :class:`data_synthesis.judges.http.HTTPJudge` (one HTTP
    client in the project): ``concurrency`` requests in flight, retries with backoff on timeouts, connection
    errors, 429 and 5xx, temperature 0.  A request that still fails comes back as ``"<error: reason>"``: it
    fails to parse, and the runner marks the row so a resumed run asks again.  If *every* request of a call
    fails, the server is taken to be down and :class:`ServerError` stops the run (resume later).  With
    ``tokenizer`` set, user messages are cut head+tail by :class:`HeadTail` before sending.
    """

    def __init__(self, base_url: str, model: str, *, max_new_tokens: int = 2048, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 5, tokenizer=None,
                 truncation: HeadTail | None = None, extra_body: dict | None = None):
        from data_synthesis.judges.http import HTTPJudge

        self.judge = HTTPJudge(base_url, model, api_key_env=api_key_env, concurrency=max(1, concurrency),
                               timeout=timeout, max_retries=max_retries, extra_body=extra_body,
                               temperature=0.0, top_p=1.0, max_tokens=max_new_tokens)
        self.tok, self.truncation = tokenizer, truncation or HeadTail()

    def _fit(self, conv: Conversation) -> Conversation:
        if self.tok is None:
            return list(conv)
        out = []
        for m in conv:
            if m.get("role") == "user":
                ids = self.tok(m["content"], add_special_tokens=False)["input_ids"]
                cut = self.truncation(ids)
                if len(cut) != len(ids):
                    m = {**m, "content": self.tok.decode(cut)}
            out.append(m)
        return out

    def generate(self, convs: Sequence[Conversation]) -> list[str]:
        from data_synthesis.judges.base import JudgeRequest

        reqs = [JudgeRequest(self._fit(c), key=str(i)) for i, c in enumerate(convs)]
        got = [js[0] for js in self.judge.judge(reqs, n=1)]
        if got and all(j.text is None for j in got):
            raise ServerError(f"{self.judge.url}: every request failed (first: {got[0].error}); "
                              "the run can be resumed once the server answers")
        return [j.text if j.text is not None else f"{BACKEND_ERROR}{j.error}>" for j in got]
