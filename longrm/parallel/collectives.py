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


def zigzag_chunk_order(world: int) -> list[int]:
    """Global chunk id at each position of a rank-major zigzag gather: ``[0, 2W-1, 1, 2W-2, ..., W-1, W]``.

    Rank ``r`` holds chunks ``(r, 2W-1-r)`` (``longrm.parallel.context``), so position ``2r + s`` of the
    all-gathered buffer (``s`` = 0 or 1, the rank's first or second chunk) is global chunk ``r`` or ``2W-1-r``.
    """
    return [c for r in range(world) for c in (r, 2 * world - 1 - r)]


def _chunk_perm(world: int, to_global: bool, device) -> torch.Tensor:
    order = zigzag_chunk_order(world)  # rank-major position -> global chunk
    if to_global:  # global chunk -> rank-major position
        inv = [0] * len(order)
        for pos, c in enumerate(order):
            inv[c] = pos
        order = inv
    return torch.tensor(order, device=device)


def gather_seq(x: torch.Tensor, group, world: int, zigzag: bool = False) -> torch.Tensor:
    """All-gather ``x [B, H, Ll, D]`` along dim 2 into the global row ``[B, H, world*Ll, D]`` (no autograd).

    Contiguous layout: rank r's slice lands at ``[r Ll, (r+1) Ll)``. ``zigzag``: each local slice is two chunks
    of ``c = Ll/2`` rows (global chunks ``r`` and ``2W-1-r``); the gathered chunks are put back in global order,
    ``out[:, :, j c : (j+1) c] = chunk j`` (one extra copy of the gathered buffer).
    """
    if group is None or world == 1:
        return x
    b, h, ll, d = x.shape
    src = x.permute(2, 0, 1, 3).contiguous()  # [Ll, B, H, D]
    out = src.new_empty((world * ll, b, h, d))
    dist.all_gather_into_tensor(out, src, group=group)
    if zigzag:
        out = out.view(2 * world, -1).index_select(0, _chunk_perm(world, True, x.device)).view(world * ll, b, h, d)
    return out.permute(1, 2, 0, 3)


def reduce_scatter_seq(x: torch.Tensor, group, world: int, zigzag: bool = False) -> torch.Tensor:
    """Sum ``x [B, H, world*Ll, D]`` (global row order) over the group and keep this rank's rows ``[B, H, Ll, D]``.

    The transpose of :func:`gather_seq`: contiguous keeps rows ``[r Ll, (r+1) Ll)``; ``zigzag`` keeps global
    chunks ``r`` and ``2W-1-r`` (in that order) of ``2W`` chunks. No autograd.
    """
    if group is None or world == 1:
        return x
    b, h, lg, d = x.shape
    src = x.permute(2, 0, 1, 3)  # [Lg, B, H, D]
    if zigzag:  # chunks into rank-major zigzag order (the index_select also makes it contiguous)
        c = lg // (2 * world)
        src = src.reshape(2 * world, c, b, h, d).index_select(0, _chunk_perm(world, False, x.device)).view(lg, b, h, d)
    else:
        src = src.contiguous()
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
