"""A local chat LM that answers conversations greedily or by sampling (judges and assistant LLMs of the scorers)."""
from __future__ import annotations

from typing import Sequence

__all__ = ["LocalSampler"]


class LocalSampler:
    """A local causal LM judge (``from_pretrained``) answering chat conversations, greedy at temperature 0 else
    sampled: ``generate(convs, temperature) -> list[str]``."""

    def __init__(self, model_cfg, *, max_new_tokens: int = 512, batch_size: int = 8, device: str = "auto"):
        import torch

        from ..eval.backends import pick_device
        from ..models import load_causal_lm, load_tokenizer

        self.tok = load_tokenizer(model_cfg)
        self.device = pick_device(device)
        self.model = load_causal_lm(model_cfg).to(self.device).eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        eos = self.model.generation_config.eos_token_id
        self.eos = eos if eos is not None else self.tok.eos_token_id
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self._torch = torch

    def generate(self, convs: Sequence[list[dict]], temperature: float = 0.0) -> list[str]:
        from ..data.tokenize import encode_prompt, pad_batch

        torch = self._torch
        ids = [encode_prompt(self.tok, c) for c in convs]
        out = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            inp, mask = pad_batch(chunk, self.pad_id, left=True)
            width = inp.shape[1]
            kw = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else dict(
                do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                gen = self.model.generate(input_ids=inp.to(self.device), attention_mask=mask.to(self.device),
                                          max_new_tokens=self.max_new_tokens, num_beams=1, use_cache=True,
                                          eos_token_id=self.eos, pad_token_id=self.pad_id, **kw)
            out += [self.tok.decode(gen[r, width:].tolist(), skip_special_tokens=True) for r in range(len(chunk))]
        return out
