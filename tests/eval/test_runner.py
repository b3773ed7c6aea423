"""Resuming, sharding and the server backend, with fake judges (no model)."""
import json

import pytest

from longrm.eval.backends import BACKEND_ERROR, HeadTail, ServerError, ServerGenerator
from longrm.eval.metrics import rank_match_ratio
from longrm.eval.pipeline import EvalConfig, run_eval
from longrm.eval.runner import RunPaths, check_signature, done_ids, evaluate, merge_shards
from longrm.eval.samples import sample_from_row
from longrm.eval.synthetic import make_rows

from eval_fakes import longest_first_verdict


def _samples(n_pw=5, n_bon=3):
    return [sample_from_row(r) for r in make_rows(n_pw, n_bon)]


class Counting:
    def __init__(self):
        self.seen = []

    def __call__(self, convs):
        self.seen.append(len(convs))
        return [longest_first_verdict(c) for c in convs]


def test_resume_skips_done_ids(tmp_path):
    samples = _samples()
    paths = RunPaths(tmp_path)
    gen = Counting()
    assert evaluate(samples[:3], "generative", paths, generate=gen, requests_per_step=2, progress=False) == 3
    assert sum(gen.seen) == 3 and max(gen.seen) <= 2
    # a kill mid-write leaves half a line: it is ignored and mended
    with paths.shard(0).open("a") as f:
        f.write('{"id": "pw-0003", "predic')
    assert done_ids(paths) == {s.id for s in samples[:3]}
    gen2 = Counting()
    assert evaluate(samples, "generative", paths, generate=gen2, progress=False) == len(samples) - 3
    assert sum(gen2.seen) == len(samples) - 3
    assert evaluate(samples, "generative", paths, generate=gen2, progress=False) == 0   # all done
    rows = merge_shards(paths, samples)
    assert [r["id"] for r in rows] == [s.id for s in samples]
    assert all({"id", "prediction", "raw", "score", "parse_ok"} <= set(r) for r in rows)
    assert len(paths.predictions.read_text().splitlines()) == len(samples)


def test_ranks_split_the_work_and_merge(tmp_path):
    samples = _samples(6, 3)
    paths = RunPaths(tmp_path)
    for rank in (0, 1):
        evaluate(samples, "generative", paths, generate=Counting(), progress=False, rank=rank, world=2)
    assert paths.shard(0).exists() and paths.shard(1).exists()
    rows = merge_shards(paths, samples)
    assert sorted(r["id"] for r in rows) == sorted(s.id for s in samples)
    for r, s in zip(rows, samples):   # the length judge is right on pairwise, partly right on best-of-N
        by_len = sorted(range(s.n), key=lambda i: -len(s.candidates[i]))
        assert r["prediction"] == by_len and r["score"] == rank_match_ratio(by_len, s.n)


def test_signature_guards_resume(tmp_path):
    paths = RunPaths(tmp_path)
    check_signature(paths, {"model": "a", "mode": "generative"})
    evaluate(_samples(2, 0), "generative", paths, generate=Counting(), progress=False)
    check_signature(paths, {"model": "a", "mode": "generative"})          # same: fine
    with pytest.raises(ValueError, match="model: was 'a', now 'b'"):
        check_signature(paths, {"model": "b", "mode": "generative"})
    check_signature(paths, {"model": "b", "mode": "generative"}, overwrite=True)
    assert done_ids(paths) == set()


def test_server_backend_end_to_end_and_compare(tmp_path, fake_judge):
    url, calls = fake_judge
    cfg = EvalConfig.model_validate({
        "model": {"name_or_path": "judge-x"},
        "data": {"path": "synthetic", "synthetic_pairwise": 12, "synthetic_best_of_n": 6},
        "judge": {"backend": "server", "max_new_tokens": 64},
        "server": {"base_url": url, "concurrency": 4, "max_retries": 0},
        "output": {"dir": str(tmp_path / "a"), "progress": False}})
    m = run_eval(cfg)
    assert calls and calls[-1]["temperature"] == 0.0 and calls[-1]["max_tokens"] == 64
    assert calls[-1]["model"] == "judge-x"
    c = m["columns"]
    assert c["PairWise Avg."]["value"] == 1.0 and c["PairWise Avg."]["n"] == 12   # longest = chosen
    assert 0 < c["Rank Avg."]["value"] < 1 and m["parse_failure_rate"] == 0
    # pointwise through the same server, then a comparison of both runs
    cfg2 = cfg.model_copy(deep=True)
    cfg2.judge.mode = "pointwise"
    cfg2.output.dir = str(tmp_path / "b")
    cfg2.output.name = "pointwise"
    cfg2.output.compare_with = [str(tmp_path / "a")]
    m2 = run_eval(cfg2)
    assert m2["n_samples"] == 18 and m2["parse_failure_rate"] == 0
    table = (tmp_path / "b" / "comparison.md").read_text()
    assert "| pointwise |" in table and "| judge-x |" in table
    assert (tmp_path / "b" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["columns"]["PairWise Avg."]["value"] == 1.0


def test_server_down_stops_the_run(fake_judge):
    url, _ = fake_judge
    g = ServerGenerator(url + "/fail", "m", max_retries=0)
    with pytest.raises(ServerError, match="every request failed"):
        g.generate([[{"role": "user", "content": "x"}]])


def test_backend_errors_are_asked_again_on_resume(tmp_path):
    samples = _samples(4, 0)
    paths = RunPaths(tmp_path)
    flaky = lambda convs: [BACKEND_ERROR + "timeout>" if i == 1 else longest_first_verdict(c)  # noqa: E731
                           for i, c in enumerate(convs)]
    evaluate(samples, "generative", paths, generate=flaky, requests_per_step=4, progress=False)
    rows = merge_shards(paths, samples)
    assert [r.get("backend_error", False) for r in rows] == [False, True, False, False]
    assert not rows[1]["parse_ok"] and rows[1]["score"] == 0.0
    gen = Counting()
    assert evaluate(samples, "generative", paths, generate=gen, progress=False) == 1
    rows = merge_shards(paths, samples)
    assert not any(r.get("backend_error") for r in rows) and all(r["score"] == 1.0 for r in rows)


def test_head_tail_policy():
    ht = HeadTail(truncate_at=10, head=4, tail=3)
    assert ht(list(range(9))) == list(range(9))
    assert ht(list(range(10))) == [0, 1, 2, 3, 7, 8, 9]
    assert ht.truncated == 1
    with pytest.raises(ValueError):
        HeadTail(truncate_at=10, head=6, tail=5)
    official = HeadTail()
    assert (official.truncate_at, official.head, official.tail) == (131072, 65536, 65531)


def test_batches_bound_rows_and_padded_tokens():
    from longrm.eval.backends import _batches

    lengths = [50, 12, 40, 30, 95, 20, 10, 5]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first, as the backends sort
    batches = list(_batches(order, lengths, batch_size=3, max_batch_tokens=90))
    assert [i for b in batches for i in b] == order  # every row once, order kept
    for b in batches:
        assert len(b) <= 3
        padded = max(lengths[i] for i in b) * len(b)
        assert padded <= 90 or len(b) == 1  # a single over-long row still runs alone
    assert batches[0] == [4]  # 95 tokens > 90: alone
    assert list(_batches(order, lengths, batch_size=4, max_batch_tokens=None)) == [order[:4], order[4:]]


def test_server_prompts_are_cut_head_and_tail_with_the_tokenizer(tiny_tokenizer):
    gen = ServerGenerator("http://127.0.0.1:9", "m", tokenizer=tiny_tokenizer,
                          truncation=HeadTail(truncate_at=60, head=20, tail=10))
    words = [f"w{i}" for i in range(200)]
    long_text = " ".join(words)
    conv = [{"role": "system", "content": long_text}, {"role": "user", "content": long_text},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": "short question"}]
    out = gen._fit(conv)
    assert out[0] == conv[0] and out[2] == conv[2] and out[3] == conv[3]  # only over-long user turns change
    ids = tiny_tokenizer(long_text, add_special_tokens=False)["input_ids"]
    assert len(ids) >= 60
    want = tiny_tokenizer.decode(ids[:20] + ids[-10:])
    assert out[1]["content"] == want
    assert out[1]["content"].lstrip().startswith("w0 ")
    assert out[1]["content"].rstrip().endswith("w199")
    assert gen.truncation.truncated == 1
