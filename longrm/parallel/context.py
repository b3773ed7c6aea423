"""The data-parallel x sequence-parallel layout (REFERENCE §1.7: ring attention size 8 in the paper).

One :class:`ParallelContext` is created at start-up and passed down; nothing in LongRM keeps SP state in
module globals. Ranks ``[d*sp, (d+1)*sp)`` form SP group ``d``; ranks with the same ``sp_rank`` form a DP
group. Every rank of an SP group loads the same packed row; the DP groups load different rows.

Gradient convention (see docs/CONTRACTS.md): every rank of an SP group computes the same loss from the
SP-gathered log-probs / rewards, and the gathers' backward sums over the group, so the per-rank parameter
gradients sum over the SP group to ``sp_size x`` the gradient of that row's loss. Averaging over the whole
world (``dp_size * sp_size`` ranks, what DeepSpeed does by default) therefore yields the DP-average of the
per-row gradients, exactly as without SP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist


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

    @classmethod
    def single(cls) -> "ParallelContext":
        """One process, no groups."""
        return cls(1, 0, 1, 0, 1, 0)

    @classmethod
    def from_world(cls, sp_size: int = 1) -> "ParallelContext":
        """Build the layout from an initialised default process group (or a single process if none).

        Collective: every rank must call it (it creates the groups in the same order everywhere).
        """
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
        return cls(world, rank, sp_size, rank % sp_size, dp_size, rank // sp_size, sp_group, dp_group)

    @property
    def length_divisor(self) -> int:
        """A row is padded to a multiple of this before it is cut into SP slices."""
        return self.sp_size

    def padded_length(self, length: int) -> int:
        return -(-length // self.sp_size) * self.sp_size

    def shard_range(self, length: int) -> tuple[int, int]:
        """Contiguous slice ``[start, end)`` of a row of ``length`` (a multiple of sp_size) owned by this rank."""
        if length % self.sp_size:
            raise ValueError(f"row length {length} is not a multiple of sp_size {self.sp_size}")
        per = length // self.sp_size
        return self.sp_rank * per, (self.sp_rank + 1) * per
