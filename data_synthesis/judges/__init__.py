"""Judge backends behind one interface (:class:`~data_synthesis.judges.base.Judge`).

- :class:`~data_synthesis.judges.local.LocalJudge` — a transformers causal LM, batched ``generate``;
- :class:`~data_synthesis.judges.http.HTTPJudge` — any OpenAI-compatible ``/chat/completions`` server;
- :class:`~data_synthesis.judges.oracle.OracleJudge` — a simulated judge for the built-in synthetic tasks.
"""
from .base import Judge, Judgement, JudgeRequest, build_judge

__all__ = ["Judge", "Judgement", "JudgeRequest", "build_judge"]
