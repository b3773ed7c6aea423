import json
from pathlib import Path

import pytest

from longrm.data.layout import IGNORE
from longrm.records import (PreferenceRecord, RecordError, SFTRecord, length_bucket, load_preference_records,
                            load_sft_records, write_records)



@pytest.mark.parametrize("split,n", [("train", 16), ("eval", 2), ("test", 2)])
def test_official_preference_fixture_loads(official_fixtures, split, n):
    recs = load_preference_records(official_fixtures / "SimPO_Data_Sampled20", split=split)
    assert len(recs) == n and not recs.skipped
    r = recs[0]
    assert [m["role"] for m in r.prompt] == ["system", "user"]
    assert "<context>" in r.prompt[1]["content"] and "<response>" in r.prompt[1]["content"]
    assert "[Score:" in r.chosen and len(r.rejected) >= 1
    assert r.metadata["conf"] and "scores" in r.metadata and "insert_index" in r.metadata


@pytest.mark.parametrize("split", ["eval", "test"])
def test_official_sft_fixture_loads(official_fixtures, split):
    recs = load_sft_records(official_fixtures / "SFT_Data_Sampled20", split=split)
    assert len(recs) == 2
    assert recs[0].target.startswith("[Analysis]") and recs[0].metadata["ctx_length"]


def test_datasetdict_needs_split(official_fixtures):
    with pytest.raises(RecordError, match="split"):
        load_preference_records(official_fixtures / "SimPO_Data_Sampled20")


def _pref(i, **kw):
    d = dict(prompt=[{"role": "user", "content": f"q{i}"}], chosen="good", rejected=["bad", "worse"], id=f"r{i}",
             metadata={"length_bucket": "4k", "scores": {"m1": 8}})
    d.update(kw)
    return PreferenceRecord(**d)


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet", "outdir"])
def test_roundtrip(tmp_path, name):
    recs = [_pref(i) for i in range(3)]
    write_records(recs, tmp_path / name)
    back = load_preference_records(tmp_path / name)
    assert [r.id for r in back] == ["r0", "r1", "r2"]
    assert back[1] == recs[1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_sft_roundtrip(tmp_path):
    recs = [SFTRecord(prompt=[{"role": "user", "content": "x"}], target="[Analysis] y [Score: 3]", id="a")]
    write_records(recs, tmp_path / "s.jsonl")
    assert load_sft_records(tmp_path / "s.jsonl")[0] == recs[0]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


GOOD = {"chat_template": [{"role": "user", "content": "c"}], "chosen": "yes", "rejects": ["no"]}


@pytest.mark.parametrize("bad,field", [
    ({"chat_template": [{"role": "user", "content": "c"}], "rejects": ["no"]}, "chosen"),
    ({**GOOD, "rejects": ["no", 3]}, "rejects[1]"),
    ({**GOOD, "rejects": "x" and 5}, "rejects"),
    ({**GOOD, "chosen": 3}, "chosen"),
    ({**GOOD, "chat_template": [{"role": "user"}]}, "chat_template[0]"),
])
def test_bad_rows_error_names_file_row_field(tmp_path, bad, field):
    f = tmp_path / "d.jsonl"
    _write_jsonl(f, [GOOD, GOOD, bad])
    with pytest.raises(RecordError) as e:
        load_preference_records(f)
    assert e.value.row == 2 and e.value.field == field and str(f) in str(e.value)
    assert f"row 2: field '{field}'" in str(e.value)


def test_bad_rows_skipped_and_counted(tmp_path):
    f = tmp_path / "d.jsonl"
    _write_jsonl(f, [GOOD, {**GOOD, "rejects": 5}, GOOD, {**GOOD, "chosen": None}])
    recs = load_preference_records(f, on_bad_record="skip")
    assert len(recs) == 2 and sum(recs.skipped.values()) == 2


def test_row_without_rejects_loads_and_preference_tokenizing_skips_it(tmp_path, tiny_model_dir):
    """A voted row whose judges all wrote the chosen text has no reject: still an SFT target, skipped (and
    counted) when tokenized for a preference stage."""
    from longrm.config import DataConfig, ModelConfig
    from longrm.data.prepare import tokenize_preference
    from longrm.models import load_tokenizer

    f = tmp_path / "d.jsonl"
    _write_jsonl(f, [GOOD, {**GOOD, "rejects": []}])
    recs = load_preference_records(f)
    assert [r.rejected for r in recs] == [["no"], []] and not recs.skipped
    tok = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    ts = tokenize_preference(list(recs), tok, DataConfig(path=str(f), max_length=512), num_rejects=2)
    assert len(ts.examples) == 1 and ts.skipped["no_rejects"] == 1


def test_length_bucket():
    assert length_bucket(100) == "4k" and length_bucket(4096) == "4k" and length_bucket(4097) == "8k"
    assert length_bucket(131072) == "128k" and length_bucket(200000) == ">128k"


def test_preference_rows_serve_as_sft_with_chosen_target(official_fixtures):
    recs = load_sft_records(official_fixtures / "SimPO_Data_Sampled20", split="eval")
    prefs = load_preference_records(official_fixtures / "SimPO_Data_Sampled20", split="eval")
    assert [r.target for r in recs] == [p.chosen for p in prefs]


def test_rejected_prompts_roundtrip_checked_and_tokenized_as_branch_suffixes(tmp_path, tiny_model_dir):
    """Cross-response rejects: ``rejected_prompts[i]`` is the prompt reject i is judged under. Tokenized, the
    prompts share their common prefix and each branch continues with its own rest, so every branch sees exactly
    its own full prompt."""
    from longrm.config import DataConfig, ModelConfig
    from longrm.data.prepare import tokenize_preference
    from longrm.data.tokenize import encode_completion, encode_prompt
    from longrm.models import load_tokenizer

    def msgs(resp):
        return [{"role": "user", "content": f"long shared context ... <response>{resp}</response>"}]

    rec = PreferenceRecord(prompt=msgs("right"), chosen="[Score: 9]", rejected=["[Score: 9]", "[Score: 2]"],
                           id="c0", rejected_prompts=[msgs("wrong"), None])
    write_records([rec, _pref(1)], tmp_path / "c.jsonl")
    back = load_preference_records(tmp_path / "c.jsonl")
    assert back[0] == rec and back[1].rejected_prompts is None
    assert back[0].prompt_of(0) == msgs("wrong") and back[0].prompt_of(1) == msgs("right")
    assert "rejected_prompts" not in _pref(1).to_row()

    tok = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    ex = tokenize_preference([rec], tok, DataConfig(path="x", max_length=512), num_rejects=2)[0]
    for k, (prompt, judgement) in enumerate([(rec.prompt, rec.chosen), (msgs("wrong"), "[Score: 9]"),
                                             (rec.prompt, "[Score: 2]")], start=1):
        seen = [i for i, b in zip(ex.input_ids, ex.branch_ids) if b in (0, k)]
        assert seen == encode_prompt(tok, prompt) + encode_completion(tok, judgement)  # its own full prompt
        targets = [t for t, b in zip(ex.target_ids, ex.branch_ids) if b == k and t != IGNORE]
        assert targets == encode_completion(tok, judgement)

    bad = {**GOOD, "rejected_prompts": [[{"role": "user"}]]}
    _write_jsonl(tmp_path / "b.jsonl", [GOOD, bad])
    with pytest.raises(RecordError, match=r"row 1: field 'rejected_prompts\[0\]\[0\]'"):
        load_preference_records(tmp_path / "b.jsonl")
    _write_jsonl(tmp_path / "b.jsonl", [{**GOOD, "rejected_prompts": []}])
    with pytest.raises(RecordError, match="one per rejected judgement"):
        load_preference_records(tmp_path / "b.jsonl")


def _contrast_row(i):
    return {"prompt": [{"role": "user", "content": f"ctx <response>a{i}</response>"}], "chosen": "good",
            "rejected": ["good", "bad"], "id": f"c{i}",
            "rejected_prompts": [[{"role": "user", "content": f"ctx <response>b{i}</response>"}], None]}


@pytest.mark.parametrize("name", ["mixed.jsonl", "mixed.parquet", "mixed_dir"])
def test_files_mixing_rows_with_and_without_rejected_prompts_keep_them(tmp_path, monkeypatch, name):
    """Arrow takes its columns from the first row (parquet / save_to_disk) or per 10 MB chunk (jsonl); a file whose
    first rows have no ``rejected_prompts`` must still keep the later rows' prompts."""
    import datasets

    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda kind, **k: real(kind, **({**k, "chunksize": 256} if kind == "json" else k)))
    recs = [_pref(0), _pref(1), PreferenceRecord(**{k: v for k, v in _contrast_row(2).items()})]
    path = tmp_path / name
    if name.endswith(".jsonl"):  # written by hand the way `cat judge.jsonl contrast.jsonl` would
        _write_jsonl(path, [recs[0].to_row(), recs[1].to_row(), _contrast_row(2)])
    else:
        write_records(recs, path)
    back = load_preference_records(path)
    assert [r.rejected_prompts for r in back] == [None, None, recs[2].rejected_prompts]
    assert back[2].prompt_of(0)[0]["content"].endswith("b2</response>") and back[2].prompt_of(1) == back[2].prompt


def test_rejected_prompts_truncation_slicing_and_no_shared_prefix(tmp_path, tiny_model_dir):
    """Over-long rows cut the shared part only (every branch keeps its own suffix, the row fits max_length); rejects
    beyond num_rejects are dropped with their prompts; prompts sharing no token are one clear error, or counted
    under on_bad_record=skip; rows whose suffixes alone fill max_length are counted."""
    from longrm.config import DataConfig, ModelConfig
    from longrm.data.prepare import tokenize_preference
    from longrm.data.tokenize import encode_prompt
    from longrm.models import load_tokenizer

    tok = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    long_ctx = " ".join(f"word{i}" for i in range(400))

    def msgs(resp):
        return [{"role": "user", "content": f"{long_ctx} <response>{resp}</response>"}]

    rec = PreferenceRecord(prompt=msgs("right"), chosen="[Score: 9]", rejected=["[Score: 9]", "[Score: 1]"],
                           id="t", rejected_prompts=[msgs("quite wrong indeed"), msgs("unused")])
    full = len(encode_prompt(tok, msgs("right")))
    ts = tokenize_preference([rec], tok, DataConfig(path="d", max_length=full // 2), num_rejects=1)
    ex = ts[0]
    assert ex.num_branches == 2 and len(ex) <= full // 2 and ts.skipped["truncated_head_tail"] == 1
    for k, resp in ((1, "right"), (2, "quite wrong indeed")):
        own = tok.decode([i for i, b in zip(ex.input_ids, ex.branch_ids) if b == k])
        assert own.startswith(f">{resp}</response>") and "unused" not in own

    import longrm.data.prepare as prepare

    odd = PreferenceRecord(prompt=[{"role": "user", "content": "x"}], chosen="y", rejected=["y"], id="odd",
                           rejected_prompts=[[{"role": "user", "content": "z"}]])
    real_encode = prepare.encode_prompt
    prepare.encode_prompt = lambda tk, m: [5, 6] if m[0]["content"] == "x" else [7, 6]  # no leading token shared
    try:
        with pytest.raises(ValueError, match="d: record odd: field 'rejected_prompts': .*share no leading token"):
            tokenize_preference([odd], tok, DataConfig(path="d", max_length=512), num_rejects=1)
        skipped = tokenize_preference([odd], tok, DataConfig(path="d", max_length=512, on_bad_record="skip"), 1)
        assert len(skipped) == 0 and skipped.skipped["no_shared_prompt"] == 1
    finally:
        prepare.encode_prompt = real_encode
    tight = tokenize_preference([rec], tok, DataConfig(path="d", max_length=16), num_rejects=1)
    assert len(tight) == 0 and tight.skipped["branches_too_long"] == 1

    with pytest.raises(ValueError, match="1 rejected_prompts for 2 rejected"):
        PreferenceRecord(prompt=msgs("a"), chosen="c", rejected=["r", "s"], rejected_prompts=[None])
