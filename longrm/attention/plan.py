"""Which keys each query row attends to, for one packed row and one SP rank (pure index arithmetic).

REFERENCE §1.7 (the "llama3" all-gather-KV algorithm: each rank's query rows, keys gathered from the whole SP
group and put back in global order) and the layout rule of ``longrm.data.layout``: query row i may attend to key row j iff
``doc[i] == doc[j] and j <= i and (branch[j] == 0 or branch[j] == branch[i])``.

The row is split into *runs* of equal ``(doc, branch)``. A rank's query rows are one global range (contiguous
SP layout) or two (zigzag: chunks ``r`` and ``2W-1-r``, see ``longrm.parallel.context``); each range is cut by
the runs. The local query rows of run R inside one range (global rows ``[g0, g1)``) attend to

* the context run C of the same doc, fully (only when R is a branch), and
* the rows ``[R.start, g1)`` of R itself, causally with the diagonal aligned bottom-right.

A :class:`QueryBlock` records exactly that; the torch backend further cuts it into *pieces* that are either
fully visible or square-causal, so no mask tensor is ever built (each query row has <= 3 pieces, merged by
log-sum-exp in ``longrm.attention.kernels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from longrm.parallel.context import ParallelContext


@dataclass(frozen=True)
class QueryBlock:
    q0: int  # local query rows [q0, q1)
    q1: int
    g0: int  # the same rows in global coordinates
    g1: int
    ctx: tuple[int, int] | None  # global context key range, attended fully
    own_start: int  # global start of the run: keys [own_start, g1) attended causally (bottom-right)


@dataclass(frozen=True)
class Piece:
    q0: int  # local query rows
    q1: int
    k0: int  # global key rows
    k1: int
    causal: bool  # square block, diagonal aligned (k0 - q0 == global offset of the slice)


@dataclass
class AttentionPlan:
    """Everything the attention function needs for one forward of one row on one rank.

    Built by :func:`build_plan`; passed to the model as the ``longrm_attention=`` keyword (transformers
    forwards extra keywords to the registered attention function unchanged).
    """

    backend: str  # "torch" | "flash"
    par: ParallelContext
    global_length: int
    local_ranges: list[tuple[int, int]]  # global rows [start, end) of the local rows, in local order
    blocks: list[QueryBlock]
    head_stride: int = 0  # KV heads per all-gather chunk; 0 = all heads at once
    math: bool = False  # torch backend: use the explicit math kernel instead of PyTorch's CPU flash op
    pure_causal: bool = False  # no shared context anywhere in the row (plain packing)
    single_sequence: bool = False  # one causal run from row 0, then only padding (doc -1)
    pieces: list[Piece] = field(default_factory=list)
    run_bounds: list[int] = field(default_factory=list)  # global run starts + row length (cu_seqlens)

    @property
    def local_length(self) -> int:
        return sum(e - s for s, e in self.local_ranges)


def _runs(doc: list[int], branch: list[int]) -> list[tuple[int, int, int, int]]:
    runs, s = [], 0
    for i in range(1, len(doc) + 1):
        if i == len(doc) or doc[i] != doc[s] or branch[i] != branch[s]:
            runs.append((s, i, doc[s], branch[s]))
            s = i
    return runs


def _pieces(blocks: list[QueryBlock]) -> list[Piece]:
    causal, full = [], []
    for b in blocks:
        if b.ctx is not None and b.ctx[1] > b.ctx[0]:
            full.append(Piece(b.q0, b.q1, b.ctx[0], b.ctx[1], False))
        if b.own_start < b.g0:
            full.append(Piece(b.q0, b.q1, b.own_start, b.g0, False))
        causal.append(Piece(b.q0, b.q1, b.g0, b.g1, True))
    # merge fully visible pieces over the same keys whose query rows are adjacent (the branches of one example
    # all read the same context: one call instead of one per branch)
    full.sort(key=lambda p: (p.k0, p.k1, p.q0))
    merged: list[Piece] = []
    for p in full:
        m = merged[-1] if merged else None
        if m is not None and (m.k0, m.k1) == (p.k0, p.k1) and m.q1 == p.q0:
            merged[-1] = Piece(m.q0, p.q1, m.k0, m.k1, False)
        else:
            merged.append(p)
    return causal + merged


def build_plan(
    doc_ids: torch.Tensor,
    branch_ids: torch.Tensor,
    par: ParallelContext,
    backend: str = "torch",
    head_stride: int = 0,
    math: bool = False,
) -> AttentionPlan:
    """Plan attention for one packed row ``[1, L]`` (L a multiple of ``par.length_divisor``) on rank ``par.sp_rank``.

    ``doc_ids``/``branch_ids`` are the *global* row (identical on every SP rank); -1 docs (padding) form
    their own causal segment, whose outputs are never read. The local query rows are ``par.shard_ranges(L)``
    (one range, or two under the zigzag layout) concatenated; every :class:`QueryBlock` / :class:`Piece` lies
    inside one range, and key rows are always *global* (the kernel gathers K/V into global order).
    """
    doc = doc_ids.reshape(-1).tolist()
    br = branch_ids.reshape(-1).tolist()
    length = len(doc)
    ranges = par.shard_ranges(length)
    ctx_of: dict[int, tuple[int, int]] = {}
    blocks: list[QueryBlock] = []
    pure_causal = True
    runs = _runs(doc, br)
    offsets = [0]  # local row of each range's start
    for lo, hi in ranges[:-1]:
        offsets.append(offsets[-1] + hi - lo)
    for s, e, d, b in runs:
        ctx = None
        if d >= 0 and b == 0:
            if d in ctx_of:
                raise ValueError(f"example {d} has more than one context run")
            ctx_of[d] = (s, e)
        elif d >= 0:
            ctx = ctx_of.get(d)
            if ctx is not None:
                pure_causal = False
        for base, (lo, hi) in zip(offsets, ranges):
            g0, g1 = max(s, lo), min(e, hi)
            if g0 < g1:
                blocks.append(QueryBlock(g0 - lo + base, g1 - lo + base, g0, g1, ctx, s))
    blocks.sort(key=lambda b: b.q0)  # local order (the causal pieces tile the local rows in order)
    plan = AttentionPlan(backend, par, length, ranges, blocks, head_stride, math, pure_causal)
    plan.pieces = _pieces(blocks)
    plan.run_bounds = [r[0] for r in runs] + [length]
    real = [r for r in runs if r[2] >= 0]
    plan.single_sequence = pure_causal and len(real) == 1 and real[0][0] == 0 and all(r[2] < 0 for r in runs[1:])
    return plan
