"""Autograd-correct collectives over the SP group (work on gloo and NCCL).

REFERENCE §1.7. The deprecated ``torch.distributed.nn.functional.all_gather`` gives wrong gradients on gloo
when the incoming gradient is non-contiguous (shared/notes/transformers-attention.md §5); these functions
make every buffer contiguous and are tested on gloo with 2 processes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        y = x.detach().contiguous().clone()
        dist.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g, group=ctx.group)
        return g, None


def all_reduce_sum(x: torch.Tensor, group) -> torch.Tensor:
    """``y = Σ_r x_r`` over ``group`` with backward ``dx_r = Σ_r' dy_r'``.

    Used for per-branch partial sums (log-probs, rewards) that each SP rank computes on its own slice. When
    every rank then computes the same loss from ``y``, each rank receives ``sp_size x dL/dy``: the SP-sum of
    the parameter gradients is ``sp_size x`` the row gradient, which world-averaging turns back into the
    DP-averaged gradient (see ``longrm.parallel.context``). Identity when ``group`` is None.
    """
    if group is None:
        return x
    return _AllReduceSum.apply(x, group)


def gather_seq(x: torch.Tensor, group, world: int) -> torch.Tensor:
    """All-gather ``x [B, H, Ll, D]`` along dim 2 into ``[B, H, world*Ll, D]`` (no autograd)."""
    if group is None or world == 1:
        return x
    b, h, ll, d = x.shape
    src = x.permute(2, 0, 1, 3).contiguous()  # [Ll, B, H, D]
    out = src.new_empty((world * ll, b, h, d))
    dist.all_gather_into_tensor(out, src, group=group)
    return out.permute(1, 2, 0, 3)


def reduce_scatter_seq(x: torch.Tensor, group, world: int) -> torch.Tensor:
    """Sum ``x [B, H, world*Ll, D]`` over the group and keep this rank's slice ``[B, H, Ll, D]`` (no autograd)."""
    if group is None or world == 1:
        return x
    b, h, lg, d = x.shape
    src = x.permute(2, 0, 1, 3).contiguous()
    out = src.new_empty((lg // world, b, h, d))
    dist.reduce_scatter_tensor(out, src, group=group)
    return out.permute(1, 2, 0, 3)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rows, group, world):
        ctx.group, ctx.n = group, x.shape[0]
        src = x.new_zeros((rows, x.shape[1]))
        src[: x.shape[0]] = x
        out = x.new_empty((world * rows, x.shape[1]))
        dist.all_gather_into_tensor(out, src, group=group)
        return out

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous()
        out = g.new_empty((g.shape[0] // dist.get_world_size(ctx.group), g.shape[1]))
        dist.reduce_scatter_tensor(out, g, group=ctx.group)
        return out[: ctx.n], None, None, None


def gather_rows(x: torch.Tensor, rows: int, group, world: int) -> torch.Tensor:
    """All-gather ``x [n_r, H]`` (``n_r <= rows`` may differ per rank) into ``[world * rows, H]``, autograd-correct.

    Rank r's rows land at ``[r * rows, r * rows + n_r)``; the rest is zero padding. Backward: the incoming
    gradient is summed over the group (reduce-scatter) and each rank keeps the gradient of its own rows,
    ``dx_r = Σ_r' dy_r'[r * rows : r * rows + n_r]``. Identity when ``group`` is None.
    """
    if group is None or world == 1:
        return x
    return _GatherRows.apply(x, rows, group, world)
