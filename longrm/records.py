"""Record types and loaders: our own format and the official LongRM format (REFERENCE §1.9).

A :class:`PreferenceRecord` is what the alignment and DisRM stages train on: the chat ``prompt`` that leads
up to a judgement, one ``chosen`` judgement and a list of ``rejected`` ones.  An :class:`SFTRecord` is a
prompt plus the ``target`` judgement.  Loaders read jsonl / json, parquet and ``save_to_disk`` folders (a
``Dataset`` or a ``DatasetDict`` with ``split``) through :mod:`datasets`, and accept both our column names
(``prompt``/``chosen``/``rejected``, ``prompt``/``target``) and the official ones
(``chat_template``/``chosen``/``rejects``, ``chat_template``/``golden``).

A bad row raises one :class:`RecordError` naming file, row and field — or, with ``on_bad_record="skip"``,
is counted by reason in ``Loaded.skipped``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Iterable, Literal, TypeVar

__all__ = [
    "RecordError", "PreferenceRecord", "SFTRecord", "Loaded", "load_preference_records", "load_sft_records",
    "load_rows", "write_records", "length_bucket", "LENGTH_BUCKETS",
]

LENGTH_BUCKETS: dict[str, int] = {"4k": 4096, "8k": 8192, "16k": 16384, "32k": 32768, "64k": 65536,
                                  "128k": 131072}

# Official rows carry voting/provenance columns; we keep them in ``metadata``.
_OFFICIAL_META = ("scores", "conf", "chosen_model", "reject_models", "insert_index", "prompt_ctx_length",
                  "ctx_length", "language", "hop", "perspective", "org_pos", "index")


def length_bucket(n_tokens: int) -> str:
    """Smallest bucket label (``"4k"`` … ``"128k"``) that holds ``n_tokens``; ``">128k"`` beyond."""
    for name, size in LENGTH_BUCKETS.items():
        if n_tokens <= size:
            return name
    return ">128k"


class RecordError(ValueError):
    """A bad input row: ``FILE: row N: field 'x': problem``."""

    def __init__(self, file: str, row: int, field_name: str, problem: str):
        self.file, self.row, self.field, self.problem = file, row, field_name, problem
        super().__init__(f"{file}: row {row}: field '{field_name}': {problem}")


@dataclass
class PreferenceRecord:
    prompt: list[dict]
    chosen: str
    rejected: list[str]
    id: str = ""
    question: str | None = None
    context: str | None = None
    responses: list[str] = field(default_factory=list)
    reference: str | None = None
    metadata: dict = field(default_factory=dict)
    # Cross-response rejects: ``rejected_prompts[i]`` is the prompt reject i is judged under (``None`` = ``prompt``).
    # Each branch's prompt must start with the tokens it shares with the others (the long context).
    rejected_prompts: list[list[dict] | None] | None = None

    def __post_init__(self):
        if self.rejected_prompts is not None and len(self.rejected_prompts) != len(self.rejected):
            raise ValueError(f"{self.id or 'record'}: {len(self.rejected_prompts)} rejected_prompts for "
                             f"{len(self.rejected)} rejected judgements")

    def prompt_of(self, i: int) -> list[dict]:
        """The prompt reject ``i`` is scored under."""
        if self.rejected_prompts is None or self.rejected_prompts[i] is None:
            return self.prompt
        return self.rejected_prompts[i]

    def to_row(self) -> dict:
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, ensure_ascii=False, default=str)
        if self.rejected_prompts is None:
            del row["rejected_prompts"]
        return row


@dataclass
class SFTRecord:
    prompt: list[dict]
    target: str
    id: str = ""
    metadata: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, ensure_ascii=False, default=str)
        return row


R = TypeVar("R")


@dataclass
class Loaded(Generic[R]):
    records: list[R]
    skipped: Counter = field(default_factory=Counter)
    source: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]


def load_rows(path: str | os.PathLike, split: str | None = None):
    """Open ``path`` as a :class:`datasets.Dataset` (jsonl/json, parquet, or a save_to_disk folder)."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "dataset_dict.json").exists():
            dd = datasets.load_from_disk(str(p))
            if split is None:
                raise RecordError(str(p), -1, "split", f"a DatasetDict: choose a split of {sorted(dd)}")
            if split not in dd:
                raise RecordError(str(p), -1, "split", f"no split '{split}' (have {sorted(dd)})")
            return dd[split]
        if (p / "dataset_info.json").exists() or (p / "state.json").exists():
            return datasets.load_from_disk(str(p))
        raise RecordError(str(p), -1, "path", "a folder that is not a datasets save_to_disk folder")
    suffix = "".join(p.suffixes[-2:]) if p.suffix == ".gz" else p.suffix
    kind = {".jsonl": "json", ".json": "json", ".jsonl.gz": "json", ".parquet": "parquet"}.get(suffix)
    if kind is None:
        raise RecordError(str(p), -1, "path", f"unknown file type '{p.suffix}' (jsonl, json, parquet or a folder)")
    try:
        return datasets.load_dataset(kind, data_files=str(p), split="train")
    except datasets.exceptions.DatasetGenerationError:
        if suffix != ".jsonl":
            raise
    # Rows of different shapes (e.g. judge rows and cross-response rows with ``rejected_prompts`` in one file): Arrow
    # fixes the columns per 10 MB chunk and fails; read the lines and give every row every key (missing = null).
    with open(p) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    keys = list(dict.fromkeys(k for row in lines for k in row))
    return datasets.Dataset.from_list([{k: row.get(k) for k in keys} for row in lines])


def _check_messages(value: Any, file: str, row: int, name: str) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError(file, row, name, "a string that is not a JSON list of messages") from None
    if not isinstance(value, list) or not value:
        raise RecordError(file, row, name, f"expected a non-empty list of {{role, content}} messages, got "
                                           f"{type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RecordError(file, row, f"{name}[{i}]", "expected {role: str, content: str}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _check_str(value: Any, file: str, row: int, name: str) -> str:
    if not isinstance(value, str):
        raise RecordError(file, row, name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(file, row, name, "empty string")
    return value


def _pick(row: dict, names: tuple[str, ...], file: str, idx: int, what: str) -> tuple[str, Any]:
    for n in names:
        if n in row and row[n] is not None:
            return n, row[n]
    raise RecordError(file, idx, names[0], f"missing {what} (looked for {' / '.join(names)})")


def _metadata(row: dict) -> dict:
    meta: dict = {}
    raw = row.get("metadata")
    if isinstance(raw, str) and raw:
        try:
            meta.update(json.loads(raw))
        except json.JSONDecodeError:
            meta["metadata"] = raw
    elif isinstance(raw, dict):
        meta.update(raw)
    for k in _OFFICIAL_META:
        if row.get(k) is not None and k not in meta:
            meta[k] = row[k]
    return meta


def _preference_from_row(row: dict, file: str, idx: int) -> PreferenceRecord:
    pname, prompt = _pick(row, ("prompt", "chat_template"), file, idx, "the prompt messages")
    prompt = _check_messages(prompt, file, idx, pname)
    chosen = _check_str(_pick(row, ("chosen",), file, idx, "the chosen judgement")[1], file, idx, "chosen")
    rname, rejected = _pick(row, ("rejected", "rejects"), file, idx, "the rejected judgements")
    if isinstance(rejected, str):
        rejected = [rejected]
    if not isinstance(rejected, list):
        raise RecordError(file, idx, rname, f"expected a list of strings, got {type(rejected).__name__}")
    rejected = [_check_str(r, file, idx, f"{rname}[{i}]") for i, r in enumerate(rejected)]
    rejected_prompts = row.get("rejected_prompts")
    if rejected_prompts is not None:
        if not isinstance(rejected_prompts, list) or len(rejected_prompts) != len(rejected):
            got = f"a list of {len(rejected_prompts)}" if isinstance(rejected_prompts, list) else type(rejected_prompts).__name__
            raise RecordError(file, idx, "rejected_prompts", f"expected a list of {len(rejected)} prompts (one per "
                                                             f"rejected judgement, or null), got {got}")
        rejected_prompts = [None if m is None else _check_messages(m, file, idx, f"rejected_prompts[{i}]")
                            for i, m in enumerate(rejected_prompts)]
    responses = row.get("responses") or []
    question = row.get("question", row.get("query"))
    reference = row.get("reference", row.get("answer"))
    rid = row.get("id")
    return PreferenceRecord(
        prompt=prompt, chosen=chosen, rejected=rejected,
        id=str(rid) if rid not in (None, "") else f"{Path(file).name}:{idx}",
        question=question if isinstance(question, str) else None,
        context=row["context"] if isinstance(row.get("context"), str) else None,
        responses=[r for r in responses if isinstance(r, str)],
        reference=reference if isinstance(reference, str) and reference else None,
        metadata=_metadata(row), rejected_prompts=rejected_prompts,
    )


def _sft_from_row(row: dict, file: str, idx: int) -> SFTRecord:
    pname, prompt = _pick(row, ("prompt", "chat_template"), file, idx, "the prompt messages")
    prompt = _check_messages(prompt, file, idx, pname)
    # A preference row also serves SFT: its chosen judgement is the target (SFT on synthesized data, §1.4).
    tname, target = _pick(row, ("target", "golden", "chosen"), file, idx, "the target judgement")
    target = _check_str(target, file, idx, tname)
    rid = row.get("id")
    return SFTRecord(prompt=prompt, target=target,
                     id=str(rid) if rid not in (None, "") else f"{Path(file).name}:{idx}", metadata=_metadata(row))


def _load(path, split, on_bad_record: Literal["error", "skip"], limit, build) -> Loaded:
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
    ds = load_rows(path, split)
    name = str(path) + (f"[{split}]" if split and Path(path).is_dir() and (Path(path) / "dataset_dict.json").exists()
                        else "")
    out: Loaded = Loaded(records=[], source=name)
    for idx, row in enumerate(ds):
        if limit is not None and len(out.records) >= limit:
            break
        try:
            out.records.append(build(row, name, idx))
        except RecordError as e:
            if on_bad_record == "error":
                raise
            out.skipped[f"field '{e.field}': {e.problem}"] += 1
    return out


def load_preference_records(path, *, split: str | None = None, on_bad_record: Literal["error", "skip"] = "error",
                            limit: int | None = None) -> Loaded[PreferenceRecord]:
    """Load preference rows (ours or official ``chat_template``/``chosen``/``rejects``) as records."""
    return _load(path, split, on_bad_record, limit, _preference_from_row)


def load_sft_records(path, *, split: str | None = None, on_bad_record: Literal["error", "skip"] = "error",
                     limit: int | None = None) -> Loaded[SFTRecord]:
    """Load SFT rows (ours ``prompt``/``target`` or official ``chat_template``/``golden``) as records.

    Preference rows load too, with their ``chosen`` judgement as the target.
    """
    return _load(path, split, on_bad_record, limit, _sft_from_row)


def write_records(records: Iterable[PreferenceRecord | SFTRecord], path: str | os.PathLike) -> Path:
    """Write records to ``path``: ``.jsonl``, ``.parquet``, or otherwise a ``save_to_disk`` folder.

    Written under a temporary name beside ``path`` and renamed into place, so a reader never sees half a file.
    """
    import datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.to_row() for r in records]
    if any("rejected_prompts" in r for r in rows):  # Arrow takes its columns from the first row: give every row the key
        rows = [{**r, "rejected_prompts": r.get("rejected_prompts")} for r in rows]
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if path.suffix == ".jsonl":
            target = tmp / "out.jsonl"
            with open(target, "w") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(target, path)
        elif path.suffix == ".parquet":
            target = tmp / "out.parquet"
            datasets.Dataset.from_list(rows).to_parquet(str(target))
            os.replace(target, path)
        else:
            target = tmp / "ds"
            datasets.Dataset.from_list(rows).save_to_disk(str(target))
            if path.exists():
                old = tmp / "old"
                os.replace(path, old)
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
