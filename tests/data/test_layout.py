"""Layout (packing + shared context): pure data checks."""

import torch

from longrm.data.layout import IGNORE, pack, shared_context_example


def test_shared_context_example_layout():
    ex = shared_context_example([10, 11, 12], [[20, 21], [30], [40, 41, 42]])
    assert ex.input_ids == [10, 11, 12, 20, 21, 12, 30, 12, 40, 41, 42]
    # branch positions continue from the end of the context, after the repeated last prompt token
    assert ex.position_ids == [0, 1, 2, 3, 4, 2, 3, 2, 3, 4, 5]
    assert ex.branch_ids == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3]
    assert ex.target_ids == [IGNORE, IGNORE, 20, 21, IGNORE, 30, IGNORE, 40, 41, 42, IGNORE]
    assert ex.last_index == [4, 6, 10]
    assert ex.num_branches == 3


def test_empty_prompt_is_plain_causal_sequence():
    ex = shared_context_example([], [[5, 6, 7]])
    assert ex.input_ids == [5, 6, 7]
    assert ex.position_ids == [0, 1, 2]
    assert ex.branch_ids == [1, 1, 1]
    assert ex.target_ids == [6, 7, IGNORE]
    assert ex.last_index == [2]


def test_pack_restarts_positions_and_indexes_branches_globally():
    a = shared_context_example([1, 2], [[3], [4, 5]])
    b = shared_context_example([], [[6, 7, 8]])
    batch = pack([a, b], pad_to_multiple_of=4)
    L = len(a) + len(b)
    assert batch.length == 12 and L == 9
    assert batch.position_ids[0, :L].tolist() == a.position_ids + b.position_ids
    assert batch.doc_ids[0].tolist() == [0] * len(a) + [1] * len(b) + [-1, -1, -1]
    assert batch.target_branch[0].tolist() == [-1, 0, -1, 1, 1, -1, 2, 2, -1, -1, -1, -1]
    assert batch.target_ids[0, L:].tolist() == [IGNORE] * 3
    assert batch.last_index.tolist() == [2, 5, 8]
    assert batch.branch_example.tolist() == [0, 0, 1]
    assert batch.branch_rank.tolist() == [0, 1, 0]
    assert batch.num_examples == 2 and batch.num_branches == 3
    # targets are the next token of the same branch
    ids, tgt = batch.input_ids[0], batch.target_ids[0]
    for i in torch.nonzero(tgt != IGNORE).squeeze(1).tolist():
        assert tgt[i] == ids[i + 1]


def test_padded_is_noop_at_length_and_pads_masked():
    batch = pack([shared_context_example([1], [[2, 3]])])
    assert batch.padded(batch.length) is batch
    p = batch.padded(5)
    assert p.doc_ids[0, -2:].tolist() == [-1, -1] and p.target_branch[0, -2:].tolist() == [-1, -1]


def test_branch_prefixes_continue_the_prompt_without_targets():
    """Cross-response rejects: branch k = last prompt token + its own prompt suffix (no targets) + judgement."""
    ex = shared_context_example([10, 11], [[20, 21], [30]], prefixes=[[50], [60, 61]])
    assert ex.input_ids == [10, 11, 50, 20, 21, 11, 60, 61, 30]
    assert ex.position_ids == [0, 1, 2, 3, 4, 1, 2, 3, 4]
    assert ex.branch_ids == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    # 11 -> 50 and 11 -> 60 -> 61 are prompt continuations; 50 predicts 20, 61 predicts 30
    assert ex.target_ids == [IGNORE, IGNORE, 20, 21, IGNORE, IGNORE, IGNORE, 30, IGNORE]
    assert ex.last_index == [4, 8]
    # empty prefixes are the plain layout
    plain = shared_context_example([10, 11], [[20, 21], [30]])
    assert shared_context_example([10, 11], [[20, 21], [30]], prefixes=[[], []]) == plain


def test_branch_prefixes_checked():
    import pytest

    with pytest.raises(ValueError, match="2 prefixes for 1 branches"):
        shared_context_example([1], [[2]], prefixes=[[3], [4]])
    with pytest.raises(ValueError, match="non-empty shared prompt"):
        shared_context_example([], [[2]], prefixes=[[3]])
