"""Benchmark samples in the Long-RewardBench shape, and the readers that produce them (REFERENCE §1.8).

A Long-RewardBench row has ``prompt_template`` (a list of ``{role, content}``), either ``chosen`` and
``rejected`` (``tasktype == "PairWise"``) or ``candidates`` in gold order, best first (``"BestOfN"``), plus
``source`` (the task), ``ctx_length_for_length`` (``"4k"`` … ``"128k"``), ``subtype`` (``"same"`` or another
value for pairwise; ``2``/``3``/``4`` for best-of-N), ``id``, and optionally ``question`` and ``subtask``.

Everything becomes an :class:`EvalSample` whose ``candidates`` are in gold order: index 0 is the chosen (best)
response.  Readers accept

- a ``.jsonl`` / ``.json`` file of such rows, or a folder of them (the official layout: one ``<Task>.jsonl``
  per task).  jsonl is read line by line, not through :mod:`datasets`, because ``subtype`` mixes strings and
  integers across rows;
- a ``datasets`` ``save_to_disk`` folder or a ``.parquet`` file with the same columns;
- our own preference records (:mod:`longrm.records`: ``prompt``/``chosen``/``rejected``, or the official
  ``chat_template``/``chosen``/``rejects``): each (chosen, rejected[j]) pair becomes one pairwise sample.
  That is meaningful for response-preference splits (DisRM data); judgement-preference splits (GRM data)
  are better measured by the alignment stage's own eval loss.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

__all__ = ["EvalSample", "SampleError", "TASKS", "LENGTHS", "load_samples", "filter_samples", "sample_from_row", "task_prompt"]

TASKS = ("LongQA", "Summ", "Safety", "ICL", "Cite", "Code", "Math")
LENGTHS = ("4k", "8k", "16k", "32k", "64k", "128k")


class SampleError(ValueError):
    """A bad benchmark row: ``FILE: row N: problem``."""


@dataclass
class EvalSample:
    id: str
    prompt: list[dict]                  # the ``prompt_template`` messages
    candidates: list[str]               # gold order: 0 is best (pairwise: [chosen, rejected])
    tasktype: Literal["PairWise", "BestOfN"]
    source: str = "unknown"             # task: LongQA, Summ, ...
    subtype: str = ""                   # "same"/"diff" (pairwise), "2"/"3"/"4" (best-of-N)
    ctx_length: str = ""                # length bucket label "4k" … "128k"
    question: str | None = None
    subtask: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.candidates)

    def info(self) -> dict:
        """The fields every per-sample output row repeats (so metrics can be recomputed from outputs alone)."""
        return {"id": self.id, "source": self.source, "tasktype": self.tasktype, "subtype": self.subtype,
                "ctx_length": self.ctx_length, "n": self.n}


def task_prompt(sample: EvalSample) -> str:
    """The benchmark's question text: the ``prompt_template`` contents joined with a blank line (§1.8)."""
    return "\n\n".join(str(m.get("content", "")) for m in sample.prompt)


def _messages(value: Any, where: str) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role"), str)
            for m in value):
        raise SampleError(f"{where}: 'prompt_template' must be a non-empty list of {{role, content}} messages")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def sample_from_row(row: dict, where: str = "row") -> EvalSample:
    """One Long-RewardBench row → :class:`EvalSample` (raises :class:`SampleError` naming what is wrong)."""
    if not isinstance(row, dict):
        raise SampleError(f"{where}: not an object")
    prompt = _messages(row.get("prompt_template", row.get("prompt")), where)
    tasktype = row.get("tasktype") or ("BestOfN" if row.get("candidates") else "PairWise")
    if tasktype not in ("PairWise", "BestOfN"):
        raise SampleError(f"{where}: 'tasktype' must be PairWise or BestOfN, got {tasktype!r}")
    if tasktype == "PairWise":
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if isinstance(rejected, list) and len(rejected) == 1:
            rejected = rejected[0]
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise SampleError(f"{where}: a PairWise row needs string 'chosen' and 'rejected'")
        candidates = [chosen, rejected]
    else:
        candidates = row.get("candidates")
        if not isinstance(candidates, list) or len(candidates) < 2 or not all(isinstance(c, str) for c in candidates):
            raise SampleError(f"{where}: a BestOfN row needs 'candidates', a list of ≥ 2 strings (gold order)")
        if len(candidates) > 26:
            raise SampleError(f"{where}: at most 26 candidates are supported, got {len(candidates)}")
    subtype = row.get("subtype")
    if subtype is None:
        subtype = str(len(candidates)) if tasktype == "BestOfN" else ""
    rid = row.get("id")
    if rid in (None, ""):
        raise SampleError(f"{where}: missing 'id' (resuming and merging need a stable id per sample)")
    ctx = row.get("ctx_length_for_length") or row.get("ctx_length") or ""
    return EvalSample(id=str(rid), prompt=prompt, candidates=list(candidates), tasktype=tasktype,
                      source=str(row.get("source") or "unknown"), subtype=str(subtype), ctx_length=str(ctx),
                      question=row.get("question") if isinstance(row.get("question"), str) else None,
                      subtask=str(row["subtask"]) if row.get("subtask") is not None else None)


def _read_jsonl(path: Path) -> Iterable[tuple[str, dict]]:
    if path.suffix == ".json":
        text = path.read_text(encoding="utf-8").strip()
        if text.startswith("["):
            for i, row in enumerate(json.loads(text)):
                yield f"{path}: row {i}", row
            return
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SampleError(f"{path}: row {i}: not valid JSON ({e.msg})") from None
            yield f"{path}: row {i}", row


def _benchmark_rows(path: Path, split: str | None) -> Iterable[tuple[str, dict]]:
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        yield from _read_jsonl(path)
        return
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        files = sorted(list(path.glob("*.jsonl")) + list(path.glob("*.json")))
        if not files:
            raise SampleError(f"{path}: a folder with no .jsonl files and no saved dataset")
        for f in files:
            yield from _read_jsonl(f)
        return
    from ..records import load_rows

    for i, row in enumerate(load_rows(path, split)):
        yield f"{path}: row {i}", dict(row)


def _looks_like_preference(row: dict) -> bool:
    return ("rejects" in row or isinstance(row.get("rejected"), list)) and "tasktype" not in row


def _from_preferences(path: Path, split: str | None, limit: int | None) -> list[EvalSample]:
    from ..records import length_bucket, load_preference_records

    out: list[EvalSample] = []
    for rec in load_preference_records(path, split=split, limit=limit).records:
        if rec.rejected_prompts is not None:
            raise SampleError(f"{path}: record {rec.id}: field 'rejected_prompts': a cross-response training row (one "
                              "judgement under several prompts) is no eval sample; evaluate on judge rows or "
                              "Long-RewardBench rows")
        meta = rec.metadata or {}
        bucket = meta.get("length_bucket") or meta.get("ctx_length")
        if not bucket and isinstance(meta.get("prompt_tokens") or meta.get("prompt_ctx_length"), int):
            bucket = length_bucket(meta.get("prompt_tokens") or meta.get("prompt_ctx_length"))
        for j, rej in enumerate(rec.rejected):
            out.append(EvalSample(id=f"{rec.id}/{j}" if len(rec.rejected) > 1 else rec.id, prompt=rec.prompt,
                                  candidates=[rec.chosen, rej], tasktype="PairWise",
                                  source=str(meta.get("source") or meta.get("task") or "Ours"),
                                  subtype=str(meta.get("subtype") or "diff"), ctx_length=str(bucket or ""),
                                  question=rec.question))
    return out


def filter_samples(samples: list[EvalSample], *, tasks: list[str] | None = None, tasktypes: list[str] | None = None,
                   lengths: list[str] | None = None) -> list[EvalSample]:
    """Keep the samples of the given tasks (sources), task types and length buckets (case-insensitive); None or
    empty keeps all."""
    wanted = {x.lower() for x in lengths} if lengths else None
    return [s for s in samples if (not tasks or s.source in tasks) and (not tasktypes or s.tasktype in tasktypes)
            and (wanted is None or s.ctx_length.lower() in wanted)]


def load_samples(path: str | Path, *, split: str | None = None,
                 fmt: Literal["auto", "longrewardbench", "preference"] = "auto",
                 tasks: list[str] | None = None, tasktypes: list[str] | None = None,
                 lengths: list[str] | None = None, limit: int | None = None) -> list[EvalSample]:
    """Read benchmark samples from ``path`` (see the module docstring), filtered by task, task type and length
    bucket (``lengths``: e.g. ``["4k", "8k"]``, case-insensitive).

    ``fmt="auto"`` treats rows with ``rejects`` or a list ``rejected`` (and no ``tasktype``) as preference
    records.  Ids must be unique (resuming keys on them): ids repeated only across tasks become
    ``"<task>:<id>"``; a repeat inside one task raises :class:`SampleError`.  ``limit`` applies after
    filtering.
    """
    p = Path(path)
    if not p.exists():
        raise SampleError(f"{p}: no such file or folder")
    samples: list[EvalSample] = []
    if fmt == "preference":
        samples = _from_preferences(p, split, None)
    else:
        rows = _benchmark_rows(p, split)
        first = next(rows, None)
        if first is not None and fmt == "auto" and isinstance(first[1], dict) and _looks_like_preference(first[1]):
            samples = _from_preferences(p, split, None)
        elif first is not None:
            for where, row in [first, *rows]:
                samples.append(sample_from_row(row, where))
    samples = filter_samples(samples, tasks=tasks, tasktypes=tasktypes, lengths=lengths)
    if len({s.id for s in samples}) != len(samples):
        # The official files are one per task; ids may repeat across tasks but not within one.
        if len({(s.source, s.id) for s in samples}) == len(samples):
            for s in samples:
                s.id = f"{s.source}:{s.id}"
        else:
            seen: set[tuple[str, str]] = set()
            for s in samples:
                if (s.source, s.id) in seen:
                    raise SampleError(f"{p}: duplicate id {s.id!r} in task {s.source!r} "
                                      "(ids must be unique to resume and merge)")
                seen.add((s.source, s.id))
    return samples[:limit] if limit is not None else samples
