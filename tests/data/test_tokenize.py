import pytest
from hypothesis import given, strategies as st

from longrm.data.tokenize import TooLong, Truncator, encode_completion, encode_prompt, keep_head_tail


@given(st.lists(st.integers(0, 100), max_size=300), st.integers(1, 200))
def test_keep_head_tail(ids, max_len):
    out = keep_head_tail(ids, max_len)
    assert len(out) == min(len(ids), max_len)
    if len(ids) > max_len:
        h = max_len // 2
        assert out[:h] == ids[:h] and out[h:] == ids[len(ids) - (max_len - h):]


def test_benchmark_split():
    ids = list(range(140000))
    out = keep_head_tail(ids, 131072, head=65536)
    assert out[:65536] == ids[:65536] and out[65536:] == ids[-65536:] and len(out) == 131072


def test_truncator_policies():
    t = Truncator(max_len=10)
    assert t.fit(list(range(5)), reserve=3) == [0, 1, 2, 3, 4]
    assert t.fit(list(range(20)), reserve=4) == [0, 1, 2, 17, 18, 19]
    assert t.counts["truncated_head_tail"] == 1
    s = Truncator(max_len=10, policy="skip")
    assert s.fit(list(range(20))) is None and s.counts["skipped_too_long"] == 1
    with pytest.raises(TooLong, match="row 3"):
        Truncator(max_len=10, policy="error").fit(list(range(20)), where="f.jsonl: row 3")


def test_chat_template_roundtrip(tiny_tokenizer):
    msgs = [{"role": "system", "content": "judge"}, {"role": "user", "content": "is it good?"}]
    ids = encode_prompt(tiny_tokenizer, msgs)
    text = tiny_tokenizer.decode(ids)
    assert text.endswith("<|im_start|>assistant\n") and "is it good?" in text
    comp = encode_completion(tiny_tokenizer, "[Score: 7]")
    assert comp[-1] == tiny_tokenizer.eos_token_id and tiny_tokenizer.decode(comp[:-1]) == "[Score: 7]"


def test_pad_batch_left_and_right():
    from longrm.data.tokenize import pad_batch

    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=9, left=True)
    assert ids.tolist() == [[5, 6, 7], [9, 9, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
