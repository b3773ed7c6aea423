"""Reading Long-RewardBench rows (jsonl, folders, saved datasets) and our preference records."""
import json

import pytest

from longrm.eval.samples import SampleError, load_samples, sample_from_row, task_prompt
from longrm.eval.synthetic import make_rows, write_rows


def test_synthetic_rows_have_the_benchmark_fields(tmp_path):
    rows = make_rows(14, 9)
    keys = {"id", "prompt_template", "source", "ctx_length_for_length", "tasktype", "subtype", "question", "subtask"}
    assert all(keys <= set(r) for r in rows)
    assert {r["subtype"] for r in rows if r["tasktype"] == "BestOfN"} == {2, 3, 4}
    assert {r["subtype"] for r in rows if r["tasktype"] == "PairWise"} == {"same", "diff"}
    assert len({r["source"] for r in rows}) == 7 and len({r["ctx_length_for_length"] for r in rows}) == 6
    assert make_rows(14, 9) == rows                     # deterministic
    p = write_rows(rows, tmp_path / "s.jsonl")
    samples = load_samples(p)
    assert len(samples) == 23 and samples[0].candidates[0] == rows[0]["chosen"]
    bon = [s for s in samples if s.tasktype == "BestOfN"]
    assert [s.subtype for s in bon[:3]] == ["2", "3", "4"] and [s.n for s in bon[:3]] == [2, 3, 4]
    assert load_samples(p, tasks=["LongQA"], tasktypes=["PairWise"], limit=1)[0].source == "LongQA"
    by_len = load_samples(p, lengths=["4K", "8k"])  # length buckets, case-insensitive
    want = [r["id"] for r in rows if r["ctx_length_for_length"].lower() in ("4k", "8k")]
    assert [s.id for s in by_len] == want and 0 < len(want) < len(rows)


def test_official_folder_layout_and_ids_repeated_across_tasks(tmp_path):
    rows = make_rows(4, 0)
    for task in ("LongQA", "Code"):
        write_rows([{**r, "source": task, "id": i} for i, r in enumerate(rows)], tmp_path / f"{task}.jsonl")
    samples = load_samples(tmp_path)
    assert len(samples) == 8 and samples[0].id == "Code:0"
    write_rows([{**rows[0], "id": 1, "source": "Math"}, {**rows[1], "id": 1, "source": "Math"}], tmp_path / "dup" / "x.jsonl")
    with pytest.raises(SampleError, match="duplicate id"):
        load_samples(tmp_path / "dup")


def test_saved_dataset(tmp_path):
    import datasets

    rows = [{**r, "subtype": str(r["subtype"])} for r in make_rows(3, 3)]
    for r in rows:   # a single arrow schema: both columns present everywhere
        r.setdefault("candidates", None), r.setdefault("chosen", None), r.setdefault("rejected", None)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    samples = load_samples(tmp_path / "ds")
    assert [s.tasktype for s in samples] == ["PairWise"] * 3 + ["BestOfN"] * 3


def test_bad_rows_name_the_problem():
    with pytest.raises(SampleError, match="row 3: a PairWise row needs"):
        sample_from_row({"id": 1, "prompt_template": [{"role": "user", "content": "q"}], "chosen": "a"}, "row 3")
    with pytest.raises(SampleError, match="missing 'id'"):
        sample_from_row({"prompt_template": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"})
    with pytest.raises(SampleError, match="prompt_template"):
        sample_from_row({"id": 1, "prompt_template": [], "chosen": "a", "rejected": "b"})
    s = sample_from_row({"id": 1, "prompt_template": [{"role": "system", "content": "S"},
                                                     {"role": "user", "content": "U"}],
                         "candidates": ["x", "y", "z"]})
    assert s.tasktype == "BestOfN" and s.subtype == "3" and task_prompt(s) == "S\n\nU"


def test_preference_records_become_pairwise_samples(tmp_path):
    recs = [{"id": "r1", "prompt": [{"role": "user", "content": "ctx and question"}], "chosen": "good",
             "rejected": ["bad1", "bad2"], "metadata": json.dumps({"length_bucket": "16k"})},
            {"id": "r2", "prompt": [{"role": "user", "content": "q2"}], "chosen": "g", "rejected": ["b"]}]
    p = tmp_path / "prefs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    samples = load_samples(p)
    assert [s.id for s in samples] == ["r1/0", "r1/1", "r2"]
    assert samples[1].candidates == ["good", "bad2"] and samples[0].ctx_length == "16k"
    assert all(s.tasktype == "PairWise" for s in samples)


def test_cross_response_rows_are_refused_as_eval_samples(tmp_path):
    """A contrast row's 'rejects' are the chosen judgement under other prompts: as pairwise samples they would compare
    a text with itself, so loading one is an error naming the file, record and field."""
    row = {"id": "c1", "prompt": [{"role": "user", "content": "ctx a"}], "chosen": "good", "rejected": ["good"],
           "rejected_prompts": [[{"role": "user", "content": "ctx b"}]]}
    p = tmp_path / "contrast.jsonl"
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(SampleError, match=r"contrast.jsonl: record c1: field 'rejected_prompts'"):
        load_samples(p)
