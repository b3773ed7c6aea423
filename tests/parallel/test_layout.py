"""SP row layouts (one process, no communication): the zigzag / contiguous slicing permutation and its balance.

Rank r of W owns rows ``par.shard_index(L)``; the rank-major concatenation of the local slices is
``par.gather_order(L)``. Round trip: concatenating every rank's shard and scattering it back by
``gather_order`` gives the row again. Balance: the causal (query, key) pairs of each rank's attention plan.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from longrm.attention import build_plan  # noqa: E402
from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.parallel.collectives import zigzag_chunk_order  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


def ctx(w: int, r: int, layout: str) -> ParallelContext:
    return ParallelContext(w, r, w, r, 1, 0, sp_layout=layout)


@pytest.mark.parametrize("layout", ["zigzag", "contiguous"])
@pytest.mark.parametrize("w", [1, 2, 3, 4, 8])
def test_shard_and_unshard_round_trip(w, layout):
    div = ctx(w, 0, layout).length_divisor
    assert div == (2 * w if layout == "zigzag" and w > 1 else w)
    length = 5 * div
    x = torch.randn(3, length, 2)  # any tensor with the row along a dim
    shards = [ctx(w, r, layout).shard(x, dim=1) for r in range(w)]
    assert all(s.shape == (3, length // w, 2) for s in shards)
    order = ctx(w, 0, layout).gather_order(length)
    gathered = torch.cat(shards, dim=1)  # what an all-gather of the local slices returns (rank-major)
    torch.testing.assert_close(gathered, x[:, order], rtol=0, atol=0)
    back = torch.empty_like(x)
    back[:, order] = gathered  # unslice
    torch.testing.assert_close(back, x, rtol=0, atol=0)
    idx = [ctx(w, r, layout).shard_index(length) for r in range(w)]
    assert torch.equal(torch.sort(torch.cat(idx)).values, torch.arange(length))  # a partition of the row
    for r in range(w):
        assert torch.equal(shards[r], x[:, idx[r]])


def test_zigzag_owns_chunks_r_and_2w_minus_1_minus_r():
    w, c = 4, 3
    length = 2 * w * c
    for r in range(w):
        p = ctx(w, r, "zigzag")
        assert p.shard_ranges(length) == [(r * c, (r + 1) * c), ((2 * w - 1 - r) * c, (2 * w - r) * c)]
    # the collectives' chunk permutation agrees with gather_order at chunk granularity
    order = ctx(w, 0, "zigzag").gather_order(length)
    assert order[::c].div(c, rounding_mode="floor").tolist() == zigzag_chunk_order(w) == [0, 7, 1, 6, 2, 5, 3, 4]
    assert ctx(w, 1, "contiguous").shard_ranges(length) == [(6, 12)]


def test_layout_validation():
    with pytest.raises(ValueError, match="unknown sp_layout"):
        ParallelContext(2, 0, 2, 0, 1, 0, sp_layout="ring")
    p = ctx(2, 0, "zigzag")
    assert p.padded_length(57) == 60 and ctx(2, 0, "contiguous").padded_length(57) == 58
    with pytest.raises(ValueError, match="not a multiple of 4"):
        p.shard_index(58)
    assert ParallelContext.single().length_divisor == 1 and ParallelContext.single().shard_ranges(7) == [(0, 7)]


def _pairs(plan) -> int:
    """(query, key) pairs the plan's pieces compute: n(n+1)/2 for a causal square, nq * nk for a full block."""
    return sum((p.q1 - p.q0) * (p.q1 - p.q0 + 1) // 2 if p.causal else (p.q1 - p.q0) * (p.k1 - p.k0)
               for p in plan.pieces)


def _per_rank_pairs(batch, w, layout):
    b = batch.padded(ctx(w, 0, "zigzag").padded_length(batch.length))  # same padding for both layouts
    return [_pairs(build_plan(b.doc_ids, b.branch_ids, ctx(w, r, layout))) for r in range(w)]


def _ids(g, n):
    return torch.randint(3, 100, (n,), generator=g).tolist()


@pytest.mark.parametrize("w", [2, 4, 8])
def test_zigzag_balances_causal_pairs(w):
    g = torch.Generator().manual_seed(0)
    one = pack([shared_context_example([], [_ids(g, 4096)])])  # one causal sequence (first token untargeted)
    z, c = _per_rank_pairs(one, w, "zigzag"), _per_rank_pairs(one, w, "contiguous")
    assert sum(z) == sum(c) == 4096 * 4097 // 2  # same attention, different split
    assert max(z) - min(z) <= 4096 // (2 * w)  # equal up to O(chunk) (exactly 2W c² + c for an unpadded row)
    assert max(c) / min(c) > 2 * w - 1.1  # contiguous: the last rank does ~(2W-1) x rank 0's work
    # the long-context reward-model row: a 4K context shared by 3 judgements of 256 tokens (benchmark shape)
    shared = pack([shared_context_example(_ids(g, 4096), [_ids(g, 256) for _ in range(3)])])
    z, c = _per_rank_pairs(shared, w, "zigzag"), _per_rank_pairs(shared, w, "contiguous")
    assert sum(z) == sum(c)
    assert max(z) / min(z) < {2: 1.05, 4: 1.1, 8: 1.2}[w], z
    assert max(c) / min(c) > 2.5, c
