"""DP x SP layout (``context``) and autograd-correct collectives (``collectives``)."""

from longrm.parallel.collectives import all_reduce_sum, gather_seq, reduce_scatter_seq
from longrm.parallel.context import ParallelContext

__all__ = ["ParallelContext", "all_reduce_sum", "gather_seq", "reduce_scatter_seq"]
