"""Attention kernel seam (``kernels``), layout plans (``plan``) and the transformers registration (``hf``)."""

from longrm.attention.kernels import BACKENDS, block_attention, block_attention_backward, layout_attention, resolve_backend
from longrm.attention.plan import AttentionPlan, build_plan

__all__ = [
    "AttentionPlan", "BACKENDS", "block_attention", "block_attention_backward", "build_plan", "layout_attention",
    "resolve_backend",
]
