"""Local transformers judge: batched ``generate`` over chat-template prompts (left padding).

Loaded with :func:`longrm.models.load_causal_lm` / :func:`longrm.models.load_tokenizer`, so ``tiny:qwen2`` and
``smollm2`` work offline.  Prompts are sorted by length before batching (less padding); a prompt longer than
``max_prompt_tokens`` is not run and yields a failed judgement.  ``temperature`` 0 means greedy decoding (then
every sample would be identical, so ``n`` must be 1).
"""
from __future__ import annotations

import logging
import time

import torch

from .base import Judge, Judgement, JudgeRequest

__all__ = ["LocalJudge"]

log = logging.getLogger(__name__)


class LocalJudge(Judge):
    def __init__(self, model_cfg, *, name: str | None = None, batch_size: int = 4, max_new_tokens: int = 512,
                 temperature: float = 0.7, top_p: float = 0.95, max_prompt_tokens: int | None = None,
                 seed: int = 0, model=None, tokenizer=None):
        from longrm.models import load_causal_lm, load_tokenizer

        cfg = model_cfg.model_copy(update={"gradient_checkpointing": False})
        self.name = name or cfg.name_or_path
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg)
        self.model = model if model is not None else load_causal_lm(cfg)
        self.model.eval()
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.max_prompt_tokens = max_prompt_tokens

    def _encode(self, messages: list[dict]) -> list[int]:
        try:
            from longrm.data.tokenize import encode_prompt
        except ImportError:  # pragma: no cover - until longrm.data.tokenize lands
            encode_prompt = None
        if encode_prompt is not None:
            return list(encode_prompt(self.tokenizer, messages))
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def judge(self, requests: list[JudgeRequest], n: int = 1) -> list[list[Judgement]]:
        if n > 1 and self.temperature <= 0:
            raise ValueError(f"judge {self.name}: {n} samples need temperature > 0 (greedy samples are identical)")
        t0 = time.time()
        out: list[list[Judgement]] = [[] for _ in requests]
        encoded = [self._encode(r.messages) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))
        runnable = []
        for i in order:
            if self.max_prompt_tokens is not None and len(encoded[i]) > self.max_prompt_tokens:
                out[i] = [Judgement(None, f"prompt too long ({len(encoded[i])} > {self.max_prompt_tokens} tokens)")] * n
            else:
                runnable.append(i)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        for b in range(0, len(runnable), self.batch_size):
            idx = runnable[b:b + self.batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = encoded[i]
                ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
            torch.manual_seed(self.seed + b)
            kw = dict(max_new_tokens=self.max_new_tokens, num_return_sequences=n, pad_token_id=pad_id,
                      eos_token_id=self.tokenizer.eos_token_id, use_cache=True)
            if self.temperature > 0:
                kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            else:
                kw.update(do_sample=False)
            try:
                gen = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kw)
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: fail the batch, keep going
                log.warning("judge %s: generate failed on a batch of %d: %s", self.name, len(idx), e)
                for i in idx:
                    out[i] = [Judgement(None, f"generate failed: {type(e).__name__}")] * n
                continue
            new = gen[:, width:]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, i in enumerate(idx):
                out[i] = [Judgement(t) for t in texts[row * n:(row + 1) * n]]
        log.info("judge %s: %d prompts x %d samples in %.1fs", self.name, len(requests), n, time.time() - t0)
        return out
