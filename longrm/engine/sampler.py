"""Data order for DP x SP: every rank of an SP group reads the same examples, each DP rank different ones.

Epoch ``e`` is a permutation of the dataset seeded by ``seed + e`` (the same on every rank), cut into
``dp_size`` interleaved shards; DP rank ``d`` takes shard ``d`` and groups it into micro-batches of
``micro_batch_size`` examples (packed into one row each).  Only whole optimizer steps are kept per epoch, so
all ranks run the same number of micro steps.  The position (epoch, micro step inside the epoch) is all that
is needed to resume exactly.

``curriculum="length"`` (``train.curriculum``) orders the first epoch by example length, shortest first (ties in
the epoch's random order): a small model learns a retrieval on short contexts, where the attention to the one
relevant token is strong enough to train, and the lengths grow as it sharpens.  Later epochs are shuffled.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

__all__ = ["DPSampler"]


@dataclass
class DPSampler:
    num_examples: int
    dp_size: int
    dp_rank: int
    micro_batch_size: int
    accumulation: int
    seed: int = 0
    shuffle: bool = True
    lengths: Sequence[int] | None = None  # per example, for curriculum="length"
    curriculum: str = "none"

    def __post_init__(self):
        if self.curriculum not in ("none", "length"):
            raise ValueError(f"curriculum must be 'none' or 'length', got {self.curriculum!r}")
        if self.curriculum == "length" and (self.lengths is None or len(self.lengths) != self.num_examples):
            raise ValueError("curriculum='length' needs one length per example")
        if not 0 <= self.dp_rank < self.dp_size:
            raise ValueError(f"dp_rank {self.dp_rank} outside dp_size {self.dp_size}")
        if self.steps_per_epoch == 0:
            need = self.dp_size * self.micro_batch_size * self.accumulation
            raise ValueError(f"{self.num_examples} examples are fewer than one optimizer step needs "
                             f"(dp {self.dp_size} x micro batch {self.micro_batch_size} x accumulation "
                             f"{self.accumulation} = {need})")

    @property
    def micro_per_epoch(self) -> int:
        return self.steps_per_epoch * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // (self.dp_size * self.micro_batch_size * self.accumulation)

    def order(self, epoch: int) -> list[int]:
        idx = list(range(self.num_examples))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(idx)
        if self.curriculum == "length" and epoch == 0:
            idx.sort(key=lambda i: self.lengths[i])  # stable: equal lengths keep the shuffled order
        return idx

    def micro_batches(self, epoch: int, start: int = 0):
        """Yield ``(micro_index, [example indices])`` for this DP rank, from micro step ``start`` of ``epoch``."""
        mine = self.order(epoch)[self.dp_rank::self.dp_size]
        m = self.micro_batch_size
        for i in range(start, self.micro_per_epoch):
            yield i, mine[i * m:(i + 1) * m]
