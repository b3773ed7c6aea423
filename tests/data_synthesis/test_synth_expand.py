"""Expansion keeps the tagged critical context intact at the recorded position and hits the target length."""
import random
import re

import pytest

from data_synthesis.config import SynthesizeConfig
from data_synthesis.expand import DistractorPool, Expander, ExpansionTooLong
from data_synthesis.sources import load_source
from data_synthesis.synthetic import distractor_documents, generate_tasks
from data_synthesis.tasks import TaskBuilder, prompt_counter


@pytest.fixture(scope="module")
def pool(tiny_tokenizer):
    return DistractorPool(distractor_documents(150), tiny_tokenizer, max_doc_tokens=512)


def _count(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("budget", [300, 3000, 7900, 20000])
def test_block_intact_and_length(pool, tiny_tokenizer, budget):
    ex = Expander(pool)
    for i, task in enumerate(generate_tasks(4, seed=budget)):
        e = ex.expand(task.context, budget, random.Random(i))
        assert re.fullmatch(r"[A-Z]{2,4}", e.tag)
        assert e.block == f"<{e.tag}>{task.context}</{e.tag}>"
        assert e.context[e.insert_char:e.insert_char + len(e.block)] == e.block
        assert e.context.count(e.block) == 1
        n = _count(tiny_tokenizer, e.context)
        assert abs(n - budget) <= 0.01 * budget, (n, budget)
        assert e.context_tokens == n  # the piece-count estimate is exact for byte-level BPE
        before = _count(tiny_tokenizer, e.context[:e.insert_char])
        assert abs(before - e.insert_token) <= 2


def test_position_distribution(pool):
    ex = Expander(pool, position_range=(0.2, 0.6))
    fracs = [ex.expand("critical fact", 8000, random.Random(i)).insert_frac for i in range(40)]
    assert all(0.15 <= f <= 0.65 for f in fracs), fracs
    assert max(fracs) - min(fracs) > 0.2       # actually spread
    ex = Expander(pool, position_choices=[0.0, 1.0])
    got = {round(ex.expand("critical fact", 4000, random.Random(i)).insert_frac) for i in range(20)}
    assert got == {0, 1}
    e = Expander(pool, position_choices=[0.0]).expand("critical", 4000, random.Random(0))
    assert e.insert_index == 0 and e.context.startswith(e.block)


def test_too_long_and_owner_exclusion(tiny_tokenizer):
    docs = ["alpha beta gamma " * 30, "delta epsilon " * 30, "own context of example x " * 10]
    pool = DistractorPool(docs, tiny_tokenizer, owners=["a", "b", "x"])
    ex = Expander(pool)
    with pytest.raises(ExpansionTooLong):
        ex.expand("word " * 500, 100, random.Random(0))
    for i in range(10):
        e = ex.expand("needle", 400, random.Random(i), exclude_owner="x")
        assert 2 not in e.doc_ids
        assert "own context" not in e.context


def test_long_documents_are_chunked(tiny_tokenizer):
    pool = DistractorPool(["word " * 3000], tiny_tokenizer, max_doc_tokens=256)
    assert len(pool) > 5 and max(pool.lens) <= 256


@pytest.mark.parametrize("kind,mode", [("pointwise", "incremental"), ("pairwise", "incremental"),
                                        ("pointwise", "exact")])
def test_task_prompts_hit_bucket_targets(tiny_tokenizer, kind, mode):
    cfg = SynthesizeConfig.model_validate({
        "source": {"synthetic": {"num_examples": 3}},
        "expand": {"buckets": ["4k", "8k", "16k"], "reserve_tokens": 300, "count": mode, "verify_every": 2},
        "tasks": {"pairwise_fraction": 1.0 if kind == "pairwise" else 0.0}})
    pool = DistractorPool(distractor_documents(120), tiny_tokenizer)
    builder = TaskBuilder(cfg, tiny_tokenizer, Expander(pool))
    count = prompt_counter(tiny_tokenizer)
    seen = 0
    for ex in load_source(cfg.source):
        tasks, drops = builder.build(ex)
        assert not drops
        for t in tasks:
            assert t.kind == kind
            m = t.meta
            n = count(t.prompt)
            assert m["token_count"] == mode
            assert abs(n - m["prompt_tokens"]) <= (0 if mode == "exact" else 2)
            assert abs(n - m["target_tokens"]) <= 0.01 * m["target_tokens"]
            assert m["length_bucket"] == m["target_bucket"]
            user = t.prompt[-1]["content"]
            block = f"<{m['tag']}>{ex.context}</{m['tag']}>"
            assert user[m["insert_char"]:m["insert_char"] + len(block)] == block
            assert ex.reference not in user or ex.reference in ex.context  # the golden answer stays hidden
            assert len(t.requests) == (2 if kind == "pairwise" else 1)
            if kind == "pointwise":
                assert f"<{m['tag']}>" in t.prompt[0]["content"]   # the system prompt names the tag
            seen += 1
    assert seen
    if mode == "incremental":
        assert builder.length_check["checked"] >= seen // 2 and builder.length_check["over_tolerance"] == 0
