"""The streaming merge (data_synthesis/pipeline.py) writes what the old in-memory merge wrote, in every format.

The old merge read every part into one list of records and called ``longrm.records.write_records`` on it;
``_old_merge`` below is that code. Each test runs the real pipeline (``run_synthesis``, ``run.action``
auto / process / merge) on the tiny config and compares with it."""
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import data_synthesis.pipeline as pipeline
from data_synthesis.config import SynthesizeConfig
from data_synthesis.pipeline import run_synthesis
from longrm.records import PreferenceRecord, load_preference_records, write_records

from synth_helpers import synth_config

def _cfg(work: Path, path: Path | None, **over) -> SynthesizeConfig:
    return synth_config("synthesize_tiny.yaml", {
        "source.synthetic.num_examples": 12, "expand.distractors.pool_size": 80, "run.part_size": 3,
        "tasks.pairwise_fraction": 0.5, "output": {"dir": str(work), "path": str(path) if path else None}, **over})


def _old_merge(work: Path, path: Path) -> None:
    """The merge before streaming: every record of every part in one list, then ``write_records``."""
    n_parts = json.loads((work / "manifest.json").read_text())["num_parts"]
    records = []
    for p in range(n_parts):
        for line in (work / "parts" / f"part-{p:05d}.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                row["metadata"] = json.loads(row["metadata"])
                records.append(PreferenceRecord(**row))
    write_records(records, path)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 2 rows, and a spy on ``Dataset.from_list``: the merge never builds a table of all rows."""
    monkeypatch.setattr(pipeline, "MERGE_BATCH_ROWS", 2)
    sizes = []
    real = datasets.Dataset.from_list

    def spy(rows, *a, **k):
        sizes.append(len(rows))
        return real(rows, *a, **k)

    monkeypatch.setattr(datasets.Dataset, "from_list", spy)
    return sizes


def _same_dataset_folder(a: Path, b: Path) -> None:
    da, db = datasets.load_from_disk(str(a)), datasets.load_from_disk(str(b))
    assert da.features == db.features and len(da) == len(db) > 0
    assert da.data.table.equals(db.data.table)
    assert da.to_list() == db.to_list()
    state_a, state_b = (json.loads((x / "state.json").read_text()) for x in (a, b))
    for s in (state_a, state_b):
        s.pop("_fingerprint")
    assert state_a == state_b
    assert json.loads((a / "dataset_info.json").read_text()) == json.loads((b / "dataset_info.json").read_text())


def test_every_format_equals_the_in_memory_merge(tmp_path, small_batches):
    work = tmp_path / "work"
    report = run_synthesis(_cfg(work, work / "data.jsonl"))["report"]  # auto: process, then the streaming merge
    assert report["kept"] > 4 and report["output"] == str(work / "data.jsonl")
    report_json = (work / "report.json").read_text()
    _old_merge(work, tmp_path / "old.jsonl")
    assert (work / "data.jsonl").read_bytes() == (tmp_path / "old.jsonl").read_bytes()

    # the same parts merged again into a parquet file and a save_to_disk folder (the default output.path)
    small_batches.clear()
    run_synthesis(_cfg(work, work / "data.parquet", **{"run.action": "merge"}))
    assert small_batches and max(small_batches) <= 2  # rows were converted 2 at a time, never all at once
    _old_merge(work, tmp_path / "old.parquet")
    new, old = pq.read_table(work / "data.parquet"), pq.read_table(tmp_path / "old.parquet")
    assert new.schema.equals(old.schema, check_metadata=True) and new.equals(old)
    assert (work / "data.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()

    run_synthesis(_cfg(work, None, **{"run.action": "merge"}))
    _old_merge(work, tmp_path / "old_folder")
    _same_dataset_folder(work / "data", tmp_path / "old_folder")
    assert [r.id for r in load_preference_records(work / "data")] == [r.id for r in load_preference_records(
        work / "data.jsonl")]
    # the report does not depend on the format (only its output path does)
    new_report, first_report = json.loads((work / "report.json").read_text()), json.loads(report_json)
    assert new_report.pop("output") == str(work / "data") and first_report.pop("output")
    assert new_report == first_report
    assert not list(work.glob(".data*"))  # no temporary folders left


def test_column_types_unified_across_parts(tmp_path, small_batches):
    """A column that is None (or an empty list) in every row of some parts and set in others gets the type
    ``Dataset.from_list`` infers over all rows — here string / list of strings — not null."""
    work = tmp_path / "work"
    run_synthesis(_cfg(work, work / "data.jsonl", **{"run.action": "process"}))
    first = work / "parts" / "part-00000.jsonl"
    rows = [json.loads(x) for x in first.read_text().splitlines()]
    assert rows
    blanked = []
    for row in rows:  # rewrite part 0 as a source without question / reference / responses would have made it
        row.update(question=None, reference=None, responses=[], metadata=json.loads(row["metadata"]))
        blanked.append(PreferenceRecord(**row))
    write_records(blanked, first)
    for name in ("data.parquet", "data"):
        run_synthesis(_cfg(work, work / name, **{"run.action": "merge"}))
        _old_merge(work, tmp_path / f"old-{name}")
    new = pq.read_table(work / "data.parquet")
    assert new.equals(pq.read_table(tmp_path / "old-data.parquet"))
    assert new.schema.field("question").type == pa.string()
    assert new.schema.field("responses").type == pa.list_(pa.string())
    assert new.column("question")[0].as_py() is None and new.column("question")[len(new) - 1].as_py()
    _same_dataset_folder(work / "data", tmp_path / "old-data")


def test_rerun_replaces_the_output_and_clears_a_killed_merge(tmp_path):
    work = tmp_path / "work"
    cfg = _cfg(work, None)
    run_synthesis(cfg)
    before = datasets.load_from_disk(str(work / "data")).to_list()
    leftover = work / ".data.merge-killed"  # what a merge killed mid-write leaves beside the output
    (leftover / "ds").mkdir(parents=True)
    (leftover / "rows.arrow").write_bytes(b"half")
    run_synthesis(_cfg(work, None, **{"run.action": "merge"}))  # resume = merge again
    assert not leftover.exists() and not list(work.glob(".data*"))
    assert datasets.load_from_disk(str(work / "data")).to_list() == before


def test_a_changed_part_is_refused(tmp_path):
    work = tmp_path / "work"
    run_synthesis(_cfg(work, work / "data.jsonl", **{"run.action": "process"}))
    part = work / "parts" / "part-00001.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    assert lines
    part.write_text("".join(lines[:-1]))  # one record lost after the part was finished
    with pytest.raises(RuntimeError, match=r"part-00001.jsonl holds \d+ records but part-00001.stats.json says "
                                           r"\d+.*rerun shard 0 of 1"):
        run_synthesis(_cfg(work, work / "data.jsonl", **{"run.action": "merge"}))
    assert not (work / "data.jsonl").exists() and not list(work.glob(".data*"))
