"""GPU kernels switched on by config (``train.use_liger``); on CPU they stay off and torch runs the same math.

- liger-kernel's model patches (RoPE, RMSNorm, SwiGLU) applied to the loaded model instance;
- liger's fused linear cross-entropy for the SFT judgement-token loss (:func:`sft_nll_liger`), instead of the
  compute core's chunked LM head.  Tests compare the torch path with liger's chunked losses on CPU.
"""
from __future__ import annotations

import sys

import torch

__all__ = ["liger_active", "apply_liger", "sft_nll_liger"]


def liger_active(use_liger: bool) -> bool:
    if use_liger and not torch.cuda.is_available():
        print("longrm: train.use_liger is on but there is no CUDA device; liger stays off (torch path)",
              file=sys.stderr)
        return False
    return bool(use_liger)


def apply_liger(model, use_liger: bool):
    """Patch ``model`` in place with liger's RoPE / RMSNorm / SwiGLU kernels when on CUDA and enabled."""
    if not liger_active(use_liger):
        return model
    # CUDA-only path (Triton kernels): not exercised by CPU CI.
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)
    return model


def sft_nll_liger(module, batch, par):
    """Judgement-token NLL with liger's fused linear cross-entropy, SP-summed (CUDA only)."""
    # CUDA-only path (Triton fused linear CE): CPU CI tests the torch equivalent against liger's chunked loss.
    from ..data.layout import IGNORE
    from ..losses import LossOutput, judgement_nll_from_hidden
    from ..modeling.forward import _run_base, _unwrap
    from ..parallel.collectives import all_reduce_sum

    inner = _unwrap(module)
    b, idx, hidden = _run_base(module, batch, par)
    tgt = b.target_ids[0].index_select(0, idx)  # this rank's rows (contiguous or zigzag SP layout)
    part = judgement_nll_from_hidden(hidden, inner.get_output_embeddings().weight, tgt, use_liger=True,
                                     reduction="sum").float()
    total = all_reduce_sum(part.reshape(1), par.sp_group)[0]
    n = (b.target_ids[0] != IGNORE).sum().clamp_min(1)
    loss = total / n
    return LossOutput(loss, {"nll": loss.detach(), "target_tokens": n.detach().float()})
