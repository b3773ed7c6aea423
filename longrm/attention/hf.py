"""Registration of the LongRM attention function into transformers (Llama, Qwen2/3, Mistral unmodified).

transformers 5 looks the attention function up by ``config._attn_implementation`` on every forward and
passes extra ``model(...)`` keywords to it unchanged (shared/notes/transformers-attention.md §1–2). We
register ``"longrm"`` in ``AttentionInterface`` and a mask function returning ``None`` in
``AttentionMaskInterface`` (so no O(L²) mask is ever built); the layout arrives as the
``longrm_attention=<AttentionPlan>`` keyword. REFERENCE §1.7.
"""

from __future__ import annotations

from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface

from longrm.attention.kernels import layout_attention
from longrm.attention.plan import AttentionPlan

ATTN_NAME = "longrm"  # must not contain "flash" / "sdpa" (transformers treats those names specially)


def longrm_attention_forward(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, longrm_attention: AttentionPlan | None = None,
    sliding_window=None, **kwargs,
):
    """transformers attention function: ``query [1,Hq,L,D]``, ``key/value [1,Hkv,L,D]`` -> ``([1,L,Hq,D], None)``.

    With a plan it runs :func:`longrm.attention.kernels.layout_attention`; without one (e.g. generation
    after training) it falls back to plain causal SDPA (no padding information: mask functions are off).
    """
    if longrm_attention is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if dropout:
        raise NotImplementedError("attention dropout is not supported by the LongRM kernels")
    if sliding_window is not None and sliding_window < longrm_attention.global_length:
        raise NotImplementedError(
            f"sliding-window attention ({sliding_window}) shorter than the row ({longrm_attention.global_length})"
        )
    return layout_attention(query, key, value, longrm_attention, scaling), None


def _no_mask(*args, **kwargs):
    return None


def register() -> str:
    """Register the attention and (no-op) mask functions under :data:`ATTN_NAME`; idempotent."""
    AttentionInterface.register(ATTN_NAME, longrm_attention_forward)
    AttentionMaskInterface.register(ATTN_NAME, _no_mask)
    return ATTN_NAME
