"""Sources of short judging examples (REFERENCE §1.2 step 1–2: question, short critical context, golden
answer, responses to judge).

- ``synthetic`` — the built-in generator (:mod:`data_synthesis.synthetic`), no download;
- ``records`` — our preference records (:func:`longrm.records.load_preference_records`), using their
  ``question`` / ``context`` / ``responses`` / ``reference`` fields;
- ``dataset`` — any jsonl / parquet / ``save_to_disk`` folder, or a hub dataset id, with a column mapping.

Every source is an indexable, deterministic sequence of :class:`SourceExample`, so shard ``i`` of a SLURM array
sees exactly the examples any other run would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["SourceExample", "load_source", "load_distractor_docs"]


@dataclass
class SourceExample:
    id: str
    question: str
    context: str                       # the short critical context
    responses: list[str]
    reference: str | None = None
    grades: list[int] | None = None    # gold quality per response (synthetic data), for the oracle and reports
    meta: dict = field(default_factory=dict)


class _Synthetic(Sequence):
    def __init__(self, cfg):
        self.cfg = cfg

    def __len__(self) -> int:
        return self.cfg.num_examples

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        from .synthetic import generate_task
        if not 0 <= i < len(self):
            raise IndexError(i)
        t = generate_task(i, seed=self.cfg.seed, hops=tuple(self.cfg.hops),
                          responses_per_task=self.cfg.responses_per_example, families=tuple(self.cfg.families),
                          near_miss_facts=self.cfg.near_miss_facts)
        return SourceExample(id=t.id, question=t.question, context=t.context, responses=t.responses,
                             reference=t.reference, grades=t.grades,
                             meta={"hop": t.hop, "kinds": t.kinds, "styles": t.styles, **t.meta})


class _Rows(Sequence):
    """Rows of a datasets.Dataset mapped to examples lazily (the dataset stays memory-mapped)."""

    def __init__(self, ds, convert, n: int):
        self.ds, self.convert, self.n = ds, convert, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            idx = range(*i.indices(len(self)))
            if not idx:
                return []
            rows = self.ds.select(idx)
            return [self.convert(r, j) for j, r in zip(idx, rows)]
        return self.convert(self.ds[i], i)


def _open_dataset(path: str, split: str | None):
    from longrm.records import load_rows

    if Path(path).exists():
        return load_rows(path, split)
    import datasets  # a hub id: needs network (never in tests)
    return datasets.load_dataset(path, split=split or "train")


def _from_columns(cfg):
    cols = cfg.columns
    ds = _open_dataset(cfg.path, cfg.split)
    missing = [c for c in [cols.question, cols.context, *cols.responses] if c not in ds.column_names]
    if missing:
        raise ValueError(f"source {cfg.path}: missing column(s) {missing}; columns are {ds.column_names} "
                         f"(map them with source.columns.*)")

    def convert(row: dict, i: int) -> SourceExample:
        if len(cols.responses) == 1:
            resp = row[cols.responses[0]]
            resp = [resp] if isinstance(resp, str) else list(resp or [])
        else:
            resp = [row[c] for c in cols.responses]
        ref = row.get(cols.reference) if cols.reference else None
        grades = row.get(cols.grades) if cols.grades else None
        rid = row.get(cols.id) if cols.id else None
        return SourceExample(id=str(rid) if rid not in (None, "") else f"row-{i}", question=str(row[cols.question]),
                             context=str(row[cols.context]), responses=[str(r) for r in resp if r],
                             reference=str(ref) if ref else None,
                             grades=[int(g) for g in grades] if grades else None)

    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    return _Rows(ds, convert, n)


def _from_records(cfg):
    from longrm.records import load_preference_records

    loaded = load_preference_records(cfg.path, split=cfg.split, on_bad_record="skip", limit=cfg.limit)
    out = []
    for r in loaded.records:
        if not (r.question and r.context and r.responses):
            continue
        grades = r.metadata.get("grades")
        out.append(SourceExample(id=r.id, question=r.question, context=r.context, responses=list(r.responses),
                                 reference=r.reference, grades=list(grades) if grades else None))
    if not out:
        raise ValueError(f"source {cfg.path}: no record has question, context and responses")
    return out


def load_source(cfg) -> Sequence[SourceExample]:
    """The examples of a :class:`data_synthesis.config.SourceConfig`."""
    if cfg.kind == "synthetic":
        src = _Synthetic(cfg.synthetic)
        return src if cfg.limit is None else src[:cfg.limit]
    if not cfg.path:
        raise ValueError(f"source.kind {cfg.kind!r} needs source.path")
    if cfg.kind == "records":
        return _from_records(cfg)
    return _from_columns(cfg)


def load_distractor_docs(cfg, source: Sequence[SourceExample]) -> tuple[list[str], list[str | None]]:
    """Distractor documents and their owners (source example ids, so nobody gets their own context back)."""
    n = cfg.pool_size
    if cfg.source == "synthetic":
        from .synthetic import distractor_documents
        docs = distractor_documents(n, seed=cfg.seed)
        return docs, [None] * len(docs)
    if cfg.source == "samples":
        import random
        idx = list(range(len(source)))
        random.Random(cfg.seed).shuffle(idx)
        picked = [source[i] for i in sorted(idx[:n])]
        return [e.context for e in picked], [e.id for e in picked]
    if not cfg.corpus_path:
        raise ValueError("expand.distractors.source 'corpus' needs expand.distractors.corpus_path")
    p = Path(cfg.corpus_path)
    if p.suffix == ".txt":
        docs = [d.strip() for d in p.read_text().split("\n\n") if d.strip()][:n]
    else:
        ds = _open_dataset(cfg.corpus_path, cfg.corpus_split)
        if cfg.text_column not in ds.column_names:
            raise ValueError(f"{cfg.corpus_path}: no column {cfg.text_column!r} (have {ds.column_names})")
        docs = [str(t) for t in ds.select(range(min(n, len(ds))))[cfg.text_column] if t]
    return docs, [None] * len(docs)
