import random

from hypothesis import given, settings, strategies as st

from longrm.judging.parsers import Parsed, parse_pairwise, parse_pointwise, parse_ranking
from longrm.judging.prompts import (best_of_n_messages, candidate_labels, pairwise_messages, pointwise_messages,
                                    shuffled_order)

ANY = st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.lists(st.text()))


@given(ANY)
def test_parsers_never_raise(x):
    for r in (parse_pointwise(x), parse_pairwise(x), parse_ranking(x, 3)):
        assert isinstance(r, Parsed)
        assert r.ok == (r.error is None)


@given(st.integers(0, 10), st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=200))
def test_pointwise_roundtrip(score, analysis):
    r = parse_pointwise(f"[Analysis]\n{analysis}\n[Score: {score}]")
    assert r.ok and r.value == score


def test_pointwise_cases():
    assert parse_pointwise("[Score: 7]").value == 7
    assert parse_pointwise("[score：8]").value == 8
    assert parse_pointwise("[Score: 3] then revised [Score: 9]").value == 9
    assert parse_pointwise("[Score: 9/10]").value == 9
    assert not parse_pointwise("[Score: 11]").ok
    assert not parse_pointwise("[Score: 7.5]").ok
    assert not parse_pointwise("Score 7").ok


@given(st.sampled_from(["A", "B"]), st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=100))
def test_pairwise_roundtrip(v, prefix):
    assert parse_pairwise(f"{prefix} final verdict: [[{v}]]").value == v


def test_pairwise_ambiguous_and_missing():
    assert parse_pairwise("[[B]] or [[A]]").value == "A"  # the benchmark checks [[A]] first
    assert not parse_pairwise("[[A]] or [[B]]", strict=True).ok
    assert not parse_pairwise("A is better").ok


@given(st.integers(2, 8), st.randoms())
def test_ranking_roundtrip(n, rnd):
    perm = list(range(n))
    rnd.shuffle(perm)
    labels = candidate_labels(n)
    text = "[Analysis] blah\n[Ranking] [[ " + " > ".join(f"Assistant {labels[i]}:" for i in perm) + " ]]"
    r = parse_ranking(text, n)
    assert r.ok and r.value == perm


def test_ranking_rejects_non_permutation():
    assert not parse_ranking("[[A>A>B]]", 3).ok
    assert not parse_ranking("[[A>B]]", 3).ok
    assert parse_ranking("[[B>A]]", 2).value == [1, 0]


def test_prompts_shape():
    m = pointwise_messages("ctx <AB>key</AB>", "q?", "resp", tag="AB")
    assert [x["role"] for x in m] == ["system", "user"]
    assert "<AB>" in m[0]["content"] and "<context>" in m[1]["content"] and "<response>\nresp" in m[1]["content"]
    p = pairwise_messages("q", "ra", "rb", context="c")
    assert "[[A]]" in p[0]["content"] and "ra" in p[1]["content"] and "[Context]" in p[1]["content"]
    b = best_of_n_messages("q", ["x", "y", "z"])
    assert "[[A>B>C]]" in b[0]["content"] and "Assistant C" in b[1]["content"]


def test_shuffled_order_fixed_and_a_permutation():
    o = shuffled_order(4, 42, "id-1")
    assert sorted(o) == [0, 1, 2, 3] and o == shuffled_order(4, 42, "id-1")
    assert len({tuple(shuffled_order(4, 42, i)) for i in range(50)}) > 5
