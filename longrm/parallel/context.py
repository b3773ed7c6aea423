"""The data-parallel x sequence-parallel layout (REFERENCE §1.7: ring attention size 8 in the paper).

One :class:`ParallelContext` is created at start-up and passed down; nothing in LongRM keeps SP state in
module globals. Ranks ``[d*sp, (d+1)*sp)`` form SP group ``d``; ranks with the same ``sp_rank`` form a DP
group. Every rank of an SP group loads the same packed row; the DP groups load different rows.

Gradient convention (see docs/CONTRACTS.md): every rank of an SP group computes the same loss from the
SP-gathered log-probs / rewards, and the gathers' backward sums over the group, so the per-rank parameter
gradients sum over the SP group to ``sp_size x`` the gradient of that row's loss. Averaging over the whole
world (``dp_size * sp_size`` ranks, what DeepSpeed does by default) therefore yields the DP-average of the
per-row gradients, exactly as without SP.

Sequence layout (``sp_layout``): a row of length ``L`` is cut into pieces owned by the ``W = sp_size`` ranks.

* ``contiguous``: rank ``r`` owns rows ``[r L/W, (r+1) L/W)``. With causal attention rank ``r``'s queries see
  about ``(r + 1/2) L/W`` keys each, so the last rank does ``2W-1`` times rank 0's attention work.
* ``zigzag`` (default; ring-flash-attn's zigzag ring, Llama-3 context parallelism): the row is cut into ``2W``
  equal chunks of ``c = L/(2W)`` rows and rank ``r`` owns chunks ``r`` and ``2W-1-r``, in that order::

      local row i of rank r  =  global row  r c + i               (i <  c)
                                            (2W-1-r) c + (i - c)  (i >= c)

  Each rank holds one early and one late chunk. For one causal sequence, chunk ``j`` has
  ``Σ_{i=jc}^{(j+1)c-1} (i+1) = j c² + c(c+1)/2`` (query, key) pairs, so rank ``r`` has
  ``(r + 2W-1-r) c² + c(c+1) = 2W c² + c`` — the same on every rank (contiguous: ``r n² + n(n+1)/2`` with
  ``n = 2c``). Packed rows and shared contexts are balanced approximately, not exactly.

The rank-major concatenation of the local pieces (what an all-gather returns) is :meth:`gather_order`; the
attention kernel puts gathered K/V back into global order with it, and the model-facing code slices
``input_ids``/``position_ids``/targets with :meth:`shard_index` (position ids stay the global ones, so RoPE
is unchanged by the layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

SP_LAYOUTS = ("zigzag", "contiguous")


@dataclass(frozen=True)
class ParallelContext:
    world_size: int
    rank: int
    sp_size: int
    sp_rank: int
    dp_size: int
    dp_rank: int
    sp_group: Any = None  # ProcessGroup, None when sp_size == 1
    dp_group: Any = None  # ProcessGroup, None when dp_size == 1
    sp_layout: str = "zigzag"  # how a row is cut over the SP ranks: "zigzag" | "contiguous" (module docstring)

    def __post_init__(self):
        if self.sp_layout not in SP_LAYOUTS:
            raise ValueError(f"unknown sp_layout {self.sp_layout!r}; choose from {SP_LAYOUTS}")

    @classmethod
    def single(cls) -> "ParallelContext":
        """One process, no groups."""
        return cls(1, 0, 1, 0, 1, 0)

    @classmethod
    def from_world(cls, sp_size: int = 1, sp_layout: str = "zigzag") -> "ParallelContext":
        """Build the layout from an initialised default process group (or a single process if none).

        Collective: every rank must call it (it creates the groups in the same order everywhere).
        """
        if sp_layout not in SP_LAYOUTS:
            raise ValueError(f"unknown sp_layout {sp_layout!r}; choose from {SP_LAYOUTS}")
        if not (dist.is_available() and dist.is_initialized()):
            if sp_size != 1:
                raise ValueError("sp_size > 1 needs torch.distributed to be initialised")
            return cls.single()
        world, rank = dist.get_world_size(), dist.get_rank()
        if sp_size < 1 or world % sp_size:
            raise ValueError(f"world size {world} is not a multiple of sp_size {sp_size}")
        dp_size = world // sp_size
        sp_group = dp_group = None
        for d in range(dp_size):  # all ranks create all groups, same order
            g = dist.new_group(list(range(d * sp_size, (d + 1) * sp_size))) if sp_size > 1 else None
            if d == rank // sp_size:
                sp_group = g
        for s in range(sp_size):
            g = dist.new_group(list(range(s, world, sp_size))) if dp_size > 1 else None
            if s == rank % sp_size:
                dp_group = g
        return cls(world, rank, sp_size, rank % sp_size, dp_size, rank // sp_size, sp_group, dp_group, sp_layout)

    @property
    def zigzag(self) -> bool:
        """True when rows are cut in the zigzag layout (only meaningful with ``sp_size > 1``)."""
        return self.sp_size > 1 and self.sp_layout == "zigzag"

    @property
    def length_divisor(self) -> int:
        """A row is padded to a multiple of this before it is cut: ``2 sp_size`` (zigzag) or ``sp_size``."""
        return 2 * self.sp_size if self.zigzag else self.sp_size

    def padded_length(self, length: int) -> int:
        """``length`` rounded up to a multiple of :attr:`length_divisor`."""
        d = self.length_divisor
        return -(-length // d) * d

    def _check(self, length: int) -> None:
        if length % self.length_divisor:
            raise ValueError(f"row length {length} is not a multiple of {self.length_divisor} "
                             f"(sp_size {self.sp_size}, sp_layout {self.sp_layout})")

    def shard_ranges_of(self, sp_rank: int, length: int) -> list[tuple[int, int]]:
        """Global row ranges ``[start, end)`` owned by SP rank ``sp_rank``, in local order.

        contiguous: ``[(r n, (r+1) n)]`` with ``n = L/W``; zigzag: ``[(r c, (r+1) c), ((2W-1-r) c, (2W-r) c)]``
        with ``c = L/(2W)``. The local slice of a rank is the concatenation of its ranges.
        """
        self._check(length)
        w = self.sp_size
        if not self.zigzag:
            per = length // w
            return [(sp_rank * per, (sp_rank + 1) * per)]
        c = length // (2 * w)
        return [(sp_rank * c, (sp_rank + 1) * c), ((2 * w - 1 - sp_rank) * c, (2 * w - sp_rank) * c)]

    def shard_ranges(self, length: int) -> list[tuple[int, int]]:
        """This rank's global row ranges (:meth:`shard_ranges_of` for ``self.sp_rank``)."""
        return self.shard_ranges_of(self.sp_rank, length)

    def shard_index(self, length: int, device=None) -> torch.Tensor:
        """``[L/W]`` long: global row of each local row (``x_local = x_global[..., idx]``)."""
        return torch.cat([torch.arange(s, e, device=device) for s, e in self.shard_ranges(length)])

    def shard(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """This rank's rows of the global tensor ``x`` along ``dim`` (``[.., L, ..] -> [.., L/W, ..]``)."""
        parts = [x.narrow(dim, s, e - s) for s, e in self.shard_ranges(x.shape[dim])]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim)

    def gather_order(self, length: int, device=None) -> torch.Tensor:
        """``[L]`` long: the global row at each position of the rank-major concatenation of the local slices.

        This is what an all-gather of the local slices returns: ``gathered[i] = global[gather_order[i]]``;
        ``global = gathered[argsort(gather_order)]``. ``arange(L)`` for the contiguous layout.
        """
        if not self.zigzag:
            self._check(length)
            return torch.arange(length, device=device)
        return torch.cat([torch.arange(s, e, device=device)
                          for r in range(self.sp_size) for s, e in self.shard_ranges_of(r, length)])
