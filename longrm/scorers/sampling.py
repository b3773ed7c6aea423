"""A local chat LM that answers conversations greedily or by sampling (judges and assistant LLMs of the scorers)."""
from __future__ import annotations

from ..eval.backends import LocalGenerator

__all__ = ["LocalSampler"]


class LocalSampler(LocalGenerator):
    """A local causal LM (``from_pretrained``) answering chat conversations: ``generate(convs, temperature)``,
    greedy at temperature 0, else sampled. The eval backend's generator with the scorers' defaults."""

    def __init__(self, model_cfg, *, max_new_tokens: int = 512, batch_size: int = 8, device: str = "auto"):
        super().__init__(model_cfg, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device)
