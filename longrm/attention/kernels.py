"""The kernel seam: attention over packed, variable-length segments of one row (REFERENCE §1.7, §6).

This is the only module that imports flash-attn / ring-flash-attn, lazily, inside the ``flash`` backend.

Backends
--------
``torch``  CPU or any device. Each :class:`~longrm.attention.plan.Piece` (fully visible or square-causal
           block) runs PyTorch's CPU flash kernel ``aten._scaled_dot_product_flash_attention_for_cpu``, which
           also returns the log-sum-exp; pieces are merged by log-sum-exp, and a custom autograd function
           calls the kernel's backward op per piece with the *merged* (out, lse) (the lse output carries no
           autograd, so plain autograd through a merge would be wrong). Off CPU (or with ``plan.math``) the
           same pieces run an explicit math kernel, O(Lq x Lk) memory per piece.
``flash``  CUDA. Under SP with plain packing: zigzag layout and one causal sequence (padding after it) ->
           ring-flash-attn's ``zigzag_ring_flash_attn_func`` (its local layout is exactly ours); contiguous
           layout -> ``llama3_flash_attn_varlen_func``. Anything else (shared context, several packed
           sequences under zigzag, no SP): our own K/V all-gather (autograd, head-stride chunked) and one
           ``flash_attn_varlen_func`` call whose key segments are ``[context | own run]``, causal aligned
           bottom-right, so no merge is needed; gathered keys are picked by global row through
           ``par.gather_order``.
``auto``   ``flash`` when CUDA and flash-attn are available, else ``torch``.

Sequence parallelism (torch backend): the forward all-gathers K/V of ``head_stride`` KV heads at a time (put
back into global row order under the zigzag layout), the backward gathers them again and reduce-scatters
dK/dV (sum over the SP group, each rank keeping its own rows: one range, or chunks ``r`` and ``2W-1-r``) —
only local-length tensors are saved for backward, so gathered K/V memory is bounded by one head chunk.
"""

from __future__ import annotations

import torch

from longrm.attention.plan import AttentionPlan
from longrm.parallel.collectives import gather_seq, reduce_scatter_seq

BACKENDS = ("auto", "torch", "flash")


def resolve_backend(kernel: str = "auto") -> str:
    """Map ``auto`` to a concrete backend; validate the name."""
    if kernel not in BACKENDS:
        raise ValueError(f"unknown attention kernel {kernel!r}; choose from {BACKENDS}")
    if kernel != "auto":
        return kernel
    if torch.cuda.is_available():  # CUDA-only branch: CPU CI always resolves to "torch"
        try:
            import flash_attn  # noqa: F401

            return "flash"
        except ImportError:
            pass
    return "torch"


# ---------------------------------------------------------------------------------------------- pieces
def block_attention(q, k, v, causal: bool, scale: float, math_kernel: bool = False):
    """Attention of one block, returning the log-sum-exp (no autograd).

    Shapes: ``q [B, Hq, Lq, D]``, ``k, v [B, Hkv, Lk, D]`` (GQA unexpanded, Hq % Hkv == 0); returns
    ``out [B, Hq, Lq, D]`` and ``lse [B, Hq, Lq]`` (fp32) with

        S = scale · q kᵀ,   lse = log Σ_j exp(S_ij),   out = softmax(S) v,

    where, if ``causal`` (only for Lq == Lk), ``S_ij = -inf`` for ``j > i``.
    """
    if q.device.type == "cpu" and not math_kernel:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)
    g = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(g, dim=1)
    vf = v.float().repeat_interleave(g, dim=1)
    s = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(_causal_mask(s), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    out = torch.matmul(torch.exp(s - lse[..., None]), vf)
    return out.to(q.dtype), lse


def block_attention_backward(dout, q, k, v, out, lse, causal: bool, scale: float, math_kernel: bool = False):
    """Gradients of one block given the *final* (possibly merged) ``out`` and ``lse`` of its query rows.

    With ``P = exp(S − lse)`` and ``δ_i = Σ_d dout_id · out_id``:
    ``dv = Pᵀ dout``, ``dS = P ∘ (dout vᵀ − δ)``, ``dq = scale · dS k``, ``dk = scale · dSᵀ q``
    (GQA: dk, dv summed over the query heads sharing a KV head). Returns ``(dq, dk, dv)`` in the shapes of
    ``(q, k, v)``. Summing these over the blocks of a merged attention gives its exact gradient.
    """
    if q.device.type == "cpu" and not math_kernel:
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout, q, k, v, out, lse, 0.0, causal, scale=scale
        )
    hkv = k.shape[1]
    g = q.shape[1] // hkv
    kf = k.float().repeat_interleave(g, dim=1)
    vf = v.float().repeat_interleave(g, dim=1)
    qf, do = q.float(), dout.float()
    s = torch.matmul(qf, kf.transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(_causal_mask(s), float("-inf"))
    p = torch.exp(s - lse[..., None])
    dv = torch.matmul(p.transpose(-1, -2), do)
    delta = (do * out.float()).sum(-1, keepdim=True)
    ds = p * (torch.matmul(do, vf.transpose(-1, -2)) - delta)
    dq = torch.matmul(ds, kf) * scale
    dk = torch.matmul(ds.transpose(-1, -2), qf) * scale

    def fold(x):
        b, _, lk, d = x.shape
        return x.view(b, hkv, g, lk, d).sum(2)

    return dq.to(q.dtype), fold(dk).to(k.dtype), fold(dv).to(v.dtype)


def _causal_mask(s):
    lq, lk = s.shape[-2:]
    return torch.ones(lq, lk, dtype=torch.bool, device=s.device).triu(1)


def _head_chunks(hkv: int, stride: int):
    stride = stride if stride and hkv % stride == 0 else hkv
    return [(h, h + stride) for h in range(0, hkv, stride)]


# ------------------------------------------------------------------------------------- torch backend
class _TorchLayoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: AttentionPlan, scale: float):
        b, hq, lq, d = q.shape
        hkv = k.shape[1]
        g = hq // hkv
        par = plan.par
        out = torch.empty(b, lq, hq, d, dtype=torch.float32, device=q.device).transpose(1, 2)
        lse = torch.empty(b, hq, lq, dtype=torch.float32, device=q.device)
        for h0, h1 in _head_chunks(hkv, plan.head_stride if par.sp_size > 1 else 0):  # no gather: all heads at once
            kh = gather_seq(k[:, h0:h1], par.sp_group, par.sp_size, par.zigzag)  # global row order
            vh = gather_seq(v[:, h0:h1], par.sp_group, par.sp_size, par.zigzag)
            qs = slice(h0 * g, h1 * g)
            for p in plan.pieces:
                o_p, l_p = block_attention(
                    q[:, qs, p.q0 : p.q1], kh[:, :, p.k0 : p.k1], vh[:, :, p.k0 : p.k1], p.causal, scale, plan.math
                )
                o_view, l_view = out[:, qs, p.q0 : p.q1], lse[:, qs, p.q0 : p.q1]
                if p.causal:  # the causal pieces partition the query rows and come first: initialise
                    o_view.copy_(o_p)
                    l_view.copy_(l_p)
                else:  # merge: lse' = log(e^lse + e^lse_p), out' = out·e^(lse−lse') + out_p·e^(lse_p−lse')
                    new = torch.logaddexp(l_view, l_p)
                    o_view.mul_(torch.exp(l_view - new)[..., None]).add_(o_p.float() * torch.exp(l_p - new)[..., None])
                    l_view.copy_(new)
        out = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.scale = plan, scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        plan, scale = ctx.plan, ctx.scale
        par = plan.par
        hq, hkv = q.shape[1], k.shape[1]
        g = hq // hkv
        # the causal pieces come first and partition the local query rows (and, without SP, the key rows):
        # they initialise the accumulators, so no zero-fill is needed there
        dq = torch.empty(q.shape, dtype=torch.float32, device=q.device)
        dk = torch.empty_like(k)
        dv = torch.empty_like(v)
        sp = par.sp_size > 1
        direct = not sp and k.dtype == torch.float32  # accumulate straight into dk / dv (no buffer, no copy)
        for h0, h1 in _head_chunks(hkv, plan.head_stride if sp else 0):
            kh = gather_seq(k[:, h0:h1], par.sp_group, par.sp_size, par.zigzag)
            vh = gather_seq(v[:, h0:h1], par.sp_group, par.sp_size, par.zigzag)
            if direct:
                dkh, dvh = dk[:, h0:h1], dv[:, h0:h1]
            else:
                new_buf = torch.zeros if sp else torch.empty
                dkh = new_buf(kh.shape, dtype=torch.float32, device=k.device)
                dvh = new_buf(vh.shape, dtype=torch.float32, device=v.device)
            qs = slice(h0 * g, h1 * g)
            for p in plan.pieces:
                rq, rk = slice(p.q0, p.q1), slice(p.k0, p.k1)
                dq_p, dk_p, dv_p = block_attention_backward(
                    dout[:, qs, rq], q[:, qs, rq], kh[:, :, rk], vh[:, :, rk], out[:, qs, rq], lse[:, qs, rq],
                    p.causal, scale, plan.math,
                )
                if p.causal:
                    dq[:, qs, rq] = dq_p
                else:
                    dq[:, qs, rq] += dq_p
                if p.causal and par.sp_size == 1:
                    dkh[:, :, rk] = dk_p
                    dvh[:, :, rk] = dv_p
                else:
                    dkh[:, :, rk] += dk_p
                    dvh[:, :, rk] += dv_p
            if not direct:
                dk[:, h0:h1] = reduce_scatter_seq(dkh, par.sp_group, par.sp_size, par.zigzag)
                dv[:, h0:h1] = reduce_scatter_seq(dvh, par.sp_group, par.sp_size, par.zigzag)
        return dq.to(q.dtype), dk, dv, None, None


# ------------------------------------------------------------------------------------- flash backend
def _flash_layout_attention(q, k, v, plan: AttentionPlan, scale: float):
    # CUDA-only path (flash-attn / ring-flash-attn kernels): CPU CI cannot run it.
    par = plan.par
    dev = q.device
    q_ = q[0].transpose(0, 1)  # [Lq, Hq, D]
    if par.sp_size > 1 and par.zigzag and plan.single_sequence:
        # CUDA-only: ring-flash-attn's zigzag ring kernel; CPU CI cannot run it.
        # Local rows = chunks (r, 2W-1-r) of one causal sequence, the layout zigzag_ring_flash_attn_func expects;
        # q [1, Lq, Hq, D], k/v [1, Lq, Hkv, D] -> [1, Lq, Hq, D]. Trailing padding rows attend causally to the
        # sequence: their outputs are never read.
        from ring_flash_attn import zigzag_ring_flash_attn_func

        return zigzag_ring_flash_attn_func(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale, causal=True,
            group=par.sp_group,
        )  # [1, Lq, Hq, D]
    if par.sp_size > 1 and plan.pure_causal and not par.zigzag:
        from ring_flash_attn import llama3_flash_attn_prepare_cu_seqlens, llama3_flash_attn_varlen_func

        cu = torch.tensor(plan.run_bounds, dtype=torch.int32, device=dev)  # cu_seqlens of the whole row
        cu_q, cu_k, max_q, max_k, kslice = llama3_flash_attn_prepare_cu_seqlens(cu, True, par.sp_rank, par.sp_size)
        stride = plan.head_stride if plan.head_stride and k.shape[1] % plan.head_stride == 0 else k.shape[1]
        out = llama3_flash_attn_varlen_func(
            q_, k[0].transpose(0, 1), v[0].transpose(0, 1), cu_q, cu_k, max_q, max_k,
            heads_k_stride=stride, local_k_slice=kslice, softmax_scale=scale, causal=True, group=par.sp_group,
        )
        return out.unsqueeze(0)  # [1, Lq, Hq, D]
    # (ring-flash-attn's zigzag varlen API zigzags every packed sequence separately, not the row: not our layout)
    from flash_attn import flash_attn_varlen_func
    from torch.distributed._functional_collectives import all_gather_tensor_autograd

    kidx, cu_q, cu_k, max_q, max_k = _flash_key_index(plan, dev)
    if par.zigzag:  # gathered K/V are rank-major: global row j sits at position where[j]
        order = par.gather_order(plan.global_length, device=dev)
        where = torch.empty_like(order)
        where[order] = torch.arange(order.numel(), device=dev)
        kidx = where.index_select(0, kidx)
    g = q.shape[1] // k.shape[1]
    outs = []
    for h0, h1 in _head_chunks(k.shape[1], plan.head_stride):
        kh, vh = k[:, h0:h1], v[:, h0:h1]
        if par.sp_size > 1:
            kh = all_gather_tensor_autograd(kh.contiguous(), gather_dim=2, group=par.sp_group)
            vh = all_gather_tensor_autograd(vh.contiguous(), gather_dim=2, group=par.sp_group)
        kh = kh[0].transpose(0, 1).index_select(0, kidx)  # [sum key lengths, h, D]
        vh = vh[0].transpose(0, 1).index_select(0, kidx)
        outs.append(
            flash_attn_varlen_func(
                q_[:, h0 * g : h1 * g], kh, vh, cu_q, cu_k, max_q, max_k, softmax_scale=scale, causal=True
            )
        )
    return torch.cat(outs, dim=1).unsqueeze(0)


def _flash_key_index(plan: AttentionPlan, device):
    """Key rows (global) of each query block, concatenated, with varlen ``cu_seqlens`` for queries and keys.

    The blocks are in local query order and tile the local rows, so ``cu_q`` indexes this rank's query rows."""
    idx, cu_q, cu_k = [], [0], [0]
    for b in plan.blocks:
        keys = []
        if b.ctx is not None:
            keys.append(torch.arange(b.ctx[0], b.ctx[1]))
        keys.append(torch.arange(b.own_start, b.g1))
        keys = torch.cat(keys)
        idx.append(keys)
        cu_q.append(cu_q[-1] + b.q1 - b.q0)
        cu_k.append(cu_k[-1] + keys.numel())
    lq = [cu_q[i + 1] - cu_q[i] for i in range(len(plan.blocks))]
    lk = [cu_k[i + 1] - cu_k[i] for i in range(len(plan.blocks))]
    to = dict(dtype=torch.int32, device=device)
    return (torch.cat(idx).to(device), torch.tensor(cu_q, **to), torch.tensor(cu_k, **to), max(lq), max(lk))


# ------------------------------------------------------------------------------------------ entry point
def layout_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: AttentionPlan, scale: float | None = None):
    """Attention of one packed row under a layout plan, autograd-correct, sequence-parallel aware.

    Shapes: ``q [1, Hq, Ll, D]`` (this rank's query rows, RoPE applied), ``k, v [1, Hkv, Ll, D]`` (this
    rank's rows, GQA unexpanded); returns ``out [1, Ll, Hq, D]`` (contiguous; what transformers' attention
    layers expect). For query row i (global index), with ``K(i)`` the keys allowed by the layout rule
    (``longrm.attention.plan``) gathered from the whole SP group:

        out_i = Σ_{j ∈ K(i)} softmax_j(scale · q_i · k_j) v_j.

    Under SP every rank passes its own slice; dK/dV flow back to the rank that owns the key rows (summed over
    the group), so the layer's parameter gradients on each rank are exact partial sums (REFERENCE §1.7).
    """
    if q.shape[0] != 1:
        raise ValueError("layout attention works on one packed row (batch size 1)")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if plan.backend == "flash":
        return _flash_layout_attention(q, k, v, plan, scale)  # CUDA-only path: CPU CI cannot run it
    return _TorchLayoutAttention.apply(q, k, v, plan, scale).transpose(1, 2)


__all__ = ["block_attention", "block_attention_backward", "layout_attention", "resolve_backend", "BACKENDS"]
