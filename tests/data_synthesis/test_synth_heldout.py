"""Held-out evaluation rows, task families, response preferences for a DisRM, evidence-quoting judgements."""
import json
import re
from pathlib import Path

import pytest

from data_synthesis.config import SynthesizeConfig
from data_synthesis.heldout import heldout_examples
from data_synthesis.pipeline import run_synthesis
from data_synthesis.synthetic import FAMILIES, NO_CLAIM, generate_tasks
from longrm.eval.samples import load_samples
from longrm.judging.parsers import parse_pointwise
from longrm.records import load_preference_records

from synth_helpers import synth_config

def _cfg(tmp: Path, **over) -> SynthesizeConfig:
    return synth_config("synthesize_quickstart.yaml", {
        "source.synthetic.num_examples": 24, "expand.tokenizer": "tiny:qwen2", "expand.distractors.pool_size": 60,
        "heldout.num_examples": 12, "run.part_size": 8,
        "output": {"dir": str(tmp / "syn"), "path": str(tmp / "syn" / "data.jsonl"),
                   "rm_path": str(tmp / "syn" / "rm.jsonl")}, **over})


def _facts(task) -> set[str]:
    """The inserted facts of a task: every sentence of its critical context."""
    return {re.sub(r"^Passage \d+: ", "", line) for line in task.context.splitlines()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_grade_responses_by_what_the_context_supports(family):
    for t in generate_tasks(12, seed=3, families=(family,)):
        assert t.meta["family"] == family
        assert all(sent in t.context for sent in re.split(r"(?<=\.) ", t.meta["evidence"]))
        for kind, claim, resp, grade in zip(t.kinds, t.meta["claims"], t.responses, t.grades):
            if kind == "offtopic":
                assert grade <= 1 and t.reference not in resp
                continue
            assert claim in resp  # the claim the oracle quotes is what the response says
            assert (claim == t.reference) == (kind == "correct") or (family == "multihop" and kind == "partial")
            if kind == "correct":
                assert grade >= 9
            elif kind == "hallucinated" and family != "multihop":
                assert claim not in t.context  # an invented value appears nowhere in the evidence


def test_heldout_rows_are_benchmark_shaped_and_disjoint_from_training(tmp_path):
    cfg = _cfg(tmp_path)
    out = run_synthesis(cfg)
    rows = [json.loads(x) for x in Path(out["heldout"]).read_text().splitlines()]
    assert len(rows) == 12 and {r["tasktype"] for r in rows} <= {"PairWise", "BestOfN"}
    samples = load_samples(out["heldout"])
    assert len(samples) == 12
    train = load_preference_records(cfg.output.path)
    train_text = "\n".join(r.prompt[-1]["content"] for r in train)
    held = heldout_examples(cfg)
    train_facts = set().union(*(_facts(t) for t in generate_tasks(
        24, seed=0, families=tuple(cfg.source.synthetic.families), near_miss_facts=0)))
    for t, r in zip(held, rows):
        user = r["prompt_template"][0]["content"]
        assert user.endswith(t.question) and t.meta["evidence"] in user  # the fact is in the long context...
        assert not re.search(r"<[A-Z]{2,4}>", user)                      # ...untagged, like a benchmark prompt
        assert r["ctx_length_for_length"] == "4k" and 3000 < r["prompt_tokens"] <= 4096
        assert t.meta["evidence"] not in train_text and not _facts(t) & train_facts  # no inserted fact seen
        if r["tasktype"] == "PairWise":
            assert r["chosen"] == t.responses[t.kinds.index("correct")]
            assert r["rejected"] == t.responses[t.kinds.index(r["rejected_kind"])]
        else:
            assert r["candidates"][0] == t.responses[t.kinds.index("correct")] and len(r["candidates"]) in (3, 4)
    # no training prompt carries a held-out id, question or inserted fact
    assert not any(r.id.startswith("heldout") for r in train)


def test_heldout_family_never_appears_in_training(tmp_path):
    cfg = _cfg(tmp_path, **{"source.synthetic.families": ["multihop", "lookup"],
                            "heldout.families": ["timeline"]})
    out = run_synthesis(cfg)
    train = load_preference_records(cfg.output.path)
    assert {r.metadata["source_id"].split("-")[1] for r in train} <= {"0", "lookup"}  # multihop ids: syn-0-…
    assert not any("timeline" in r.id or "Town records" in r.prompt[-1]["content"] for r in train)
    rows = [json.loads(x) for x in Path(out["heldout"]).read_text().splitlines()]
    assert {r["subtask"] for r in rows} == {"timeline"}


def test_heldout_seed_must_differ():
    with pytest.raises(ValueError, match="heldout.seed must differ"):
        _cfg(Path("/tmp"), **{"heldout.seed": 0})


def test_rm_view_prefers_the_best_voted_response(tmp_path):
    cfg = _cfg(tmp_path)
    run_synthesis(cfg)
    judge_rows = load_preference_records(cfg.output.path)
    voted = {(r.metadata["source_id"], r.responses[0]): r.metadata["chosen_score"] for r in judge_rows}
    rm = load_preference_records(cfg.output.rm_path)
    assert rm
    for r in rm:
        sid = r.metadata["source_id"]
        best = voted[(sid, r.chosen)]
        assert all(voted[(sid, x)] < best for x in r.rejected)
        assert r.metadata["scores"] == sorted(r.metadata["scores"], reverse=True)
        user = r.prompt[0]["content"]
        assert len(r.prompt) == 1 and user.endswith(r.question) and not re.search(r"<[A-Z]{2,4}>", user)


def test_contrast_view_scores_each_judgement_under_other_responses(tmp_path):
    """output.contrast_path: each voted judgement is chosen under its own response and rejected under every response
    voted differently, in one shared context (only the <response> block differs); the rows tokenize for LOGO."""
    from longrm.config import DataConfig, ModelConfig
    from longrm.data.prepare import tokenize_preference
    from longrm.models import load_tokenizer

    cfg = _cfg(tmp_path, output={"dir": str(tmp_path / "syn"), "path": str(tmp_path / "syn" / "data.jsonl"),
                                 "contrast_path": str(tmp_path / "syn" / "contrast.jsonl")})
    report = run_synthesis(cfg)["report"]
    assert report["contrast_output"] == cfg.output.contrast_path and "rm_output" not in report
    judge_rows = load_preference_records(cfg.output.path).records
    voted = {(r.metadata["source_id"], r.responses[0]): (r.metadata["chosen_score"], r.chosen) for r in judge_rows}
    first = {}  # each example's first pointwise row: its prompt is the shared context of every contrast row
    for r in judge_rows:
        first.setdefault(r.metadata["source_id"], r)
    rows = load_preference_records(cfg.output.contrast_path).records
    assert rows and len(rows) <= len(voted)
    for r in rows:
        sid, own = r.metadata["source_id"], r.responses[0]
        score, judgement = voted[(sid, own)]
        assert r.chosen == judgement and r.rejected == [judgement] * len(r.rejected)
        others = r.responses[1:]
        assert [voted[(sid, x)][0] for x in others] == r.metadata["scores"][1:] and score not in r.metadata["scores"][1:]
        assert own not in others
        gaps = [abs(s - score) for s in r.metadata["scores"][1:]]
        assert gaps == sorted(gaps, reverse=True)
        base = first[sid]
        assert r.metadata["prompt_tokens"] == base.metadata["prompt_tokens"]
        block = f"<response>\n{base.responses[0]}\n</response>\n"
        head = base.prompt[-1]["content"][: -len(block)]
        assert base.prompt[-1]["content"].endswith(block)
        for x, p in zip([own] + others, [r.prompt] + r.rejected_prompts):
            assert p[:-1] == base.prompt[:-1] and p[-1]["content"] == head + f"<response>\n{x}\n</response>\n"
    tok = load_tokenizer(ModelConfig(name_or_path="tiny:qwen2"))
    ts = tokenize_preference(rows, tok, DataConfig(path="x", max_length=8192), num_rejects=3)
    assert len(ts) == len(rows) and all(ex.num_branches == 1 + min(3, len(r.rejected)) for ex, r in zip(ts, rows))


@pytest.mark.parametrize("quote", ["evidence", "claim", "none"])
def test_oracle_judgements_quote_then_score(tmp_path, quote):
    judges = [{"name": f"oracle-{i}", "backend": "oracle", "oracle": {"seed": i, "quote": quote}} for i in (1, 2, 3)]
    cfg = _cfg(tmp_path, judges=judges)
    run_synthesis(cfg)
    for r in load_preference_records(cfg.output.path):
        if quote == "evidence":
            m = re.match(r"\[Analysis\]\nThe context says: (.*) The response says: (.*)\. So it ", r.chosen, re.S)
        elif quote == "claim":
            m = re.match(r"\[Analysis\]\nThe response says: (.*)\. So it ", r.chosen, re.S)
        else:  # the verdict alone: nothing quoted
            m = re.match(r"\[Analysis\]\nChecked against the context, the response ([a-z ,]+)\.\n\[Score: \d+\]$",
                         r.chosen)
            assert m and "says" not in r.chosen, r.chosen
        if not m:  # the oracle's simulated parse failures never win a vote
            raise AssertionError(r.chosen)
        if quote != "none" and m.group(1) != NO_CLAIM:  # the quote is the context's evidence / the response's claim
            assert m.group(1) in r.prompt[-1]["content"]
        assert parse_pointwise(r.chosen).value == r.metadata["chosen_score"]


def test_short_fraction_keeps_some_examples_unexpanded(tmp_path):
    cfg = _cfg(tmp_path, **{"expand.short_fraction": 0.5, "source.synthetic.num_examples": 40,
                            "expand.fill_range": [1.0, 1.0]})
    run_synthesis(cfg)
    toks = [r.metadata["prompt_tokens"] for r in load_preference_records(cfg.output.path)]
    short, long = [t for t in toks if t < 1000], [t for t in toks if t > 3000]
    assert short and long and len(short) + len(long) == len(toks)


def test_fill_range_spreads_expanded_lengths_inside_the_bucket_but_not_the_heldout_rows(tmp_path):
    cfg = _cfg(tmp_path, **{"expand.short_fraction": 0.0, "source.synthetic.num_examples": 30,
                            "expand.fill_range": [0.25, 1.0]})
    out = run_synthesis(cfg)
    target = 4096 - cfg.expand.reserve_tokens
    toks = [r.metadata["prompt_tokens"] for r in load_preference_records(cfg.output.path)]
    assert all(0.25 * target * 0.98 <= t <= target * 1.02 for t in toks), toks
    assert min(toks) < 0.6 * target and max(toks) > 0.8 * target  # spread over the range, not one length
    held = [json.loads(line) for line in Path(out["heldout"]).read_text().splitlines()]
    assert all(r["prompt_tokens"] > 0.95 * target for r in held)  # evaluation stays at the bucket's length
    with pytest.raises(ValueError, match="fill_range"):
        _cfg(tmp_path, **{"expand.fill_range": [0.5, 1.5]})
