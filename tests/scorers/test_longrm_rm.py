"""longrm scorer: generative parse/normalise, discriminative scores through from_pretrained (cross-checked with the
eval backend), and the Cooper-style online update (REFERENCE §2)."""
import pytest
import torch

from longrm.config import ModelConfig
from longrm.scorers import LongRMSection, ScorerConfig, build_scorer, has_hook
from longrm.scorers.base import Sample, UpdateBatch
from longrm.scorers.longrm_rm import LongRMScorer, cooper_loss, cooper_pairs, judge_messages, rm_messages


def _mcfg(path):
    return ModelConfig(name_or_path=str(path), dtype="float32", gradient_checkpointing=False)


class RecordingGenerator:
    def __init__(self, texts):
        self.texts, self.seen = texts, []

    def generate(self, convs):
        self.seen.extend(convs)
        return self.texts[:len(convs)]


SAMPLES = [Sample("What is 2 + 3?", "It is 5.", "5", 0, context="Some numbers: 2, 3."),
           Sample("What is 2 + 3?", "It is 6.", "5", 0, context="Some numbers: 2, 3."),
           Sample("What is 4 + 4?", "8", "8", 1), Sample("What is 4 + 4?", "9", "8", 1)]


def test_generative_parse_normalise_default():
    gen = RecordingGenerator(["[Analysis] fine\n[Score: 7]", "garbage", "<think>[Score: 1]</think>[Score: 10]",
                              "[Score: 11]"])
    s = LongRMScorer(None, mode="generative", default_score=0.25, generator=gen)
    assert s.score(SAMPLES) == pytest.approx([0.7, 0.25, 1.0, 0.25])
    assert s.parse_failures == 2 and not has_hook(s, "update")
    # the judge saw the pointwise prompt with context, question and response
    user = gen.seen[0][1]["content"]
    assert "<context>\nSome numbers: 2, 3.\n</context>" in user and "What is 2 + 3?" in user and "It is 5." in user
    assert "[Score:" in gen.seen[0][0]["content"]


def test_generative_real_model_path(tiny_model_dir):
    cfg = ScorerConfig(name="longrm", longrm=LongRMSection(model=_mcfg(tiny_model_dir), mode="generative",
                                                           max_new_tokens=6, default_score=0.5, device="cpu"))
    s = build_scorer(cfg)
    out = s.score(SAMPLES[:2])
    # a random-init judge writes no [Score: N] in 6 tokens: every reward is the configured default
    assert out == [0.5, 0.5] and s.parse_failures == 2


def test_discriminative_matches_eval_backend(tiny_model_dir):
    from longrm.eval.backends import LocalScorer

    mc = _mcfg(tiny_model_dir)
    torch.manual_seed(0)  # the tiny causal LM has no score head: it is initialised fresh on each load
    s = build_scorer(ScorerConfig(name="longrm", longrm=LongRMSection(model=mc, mode="discriminative", batch_size=3,
                                                                      device="cpu")))
    got = s.score(SAMPLES)
    torch.manual_seed(0)
    ref = LocalScorer(mc, batch_size=1, device="cpu").score([rm_messages(x) for x in SAMPLES])
    assert got == pytest.approx(ref, abs=1e-5)
    assert len(set(round(g, 6) for g in got)) == 4  # different completions, different scores
    torch.manual_seed(0)
    sig = LongRMScorer(mc, mode="discriminative", sigmoid=True, device="cpu").score(SAMPLES)
    assert sig == pytest.approx(torch.sigmoid(torch.tensor(ref)).tolist(), abs=1e-5)
    assert rm_messages(SAMPLES[0])[0]["content"].startswith("Some numbers") and judge_messages(SAMPLES[2])


def test_cooper_pairs_and_loss_by_hand():
    rule = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, float("nan")])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    assert cooper_pairs(rule, groups) == [(1, 0), (4, 3)]  # group 2 has no positive: masked out
    sp, sn = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    want = (-torch.log(torch.sigmoid(torch.tensor(1.0))) - torch.log(torch.sigmoid(torch.tensor(-2.0)))) / (2 + 1e-6)
    assert cooper_loss(sp, sn, torch.ones(2)).item() == pytest.approx(want.item(), rel=1e-6)
    assert cooper_loss(sp, sn, torch.tensor([1.0, 0.0])).item() == pytest.approx(
        -torch.log(torch.sigmoid(torch.tensor(1.0))).item() / (1 + 1e-6), rel=1e-6)


def test_online_update_trains_the_rm(tiny_model_dir):
    torch.manual_seed(0)
    s = build_scorer(ScorerConfig(name="longrm", longrm=LongRMSection(
        model=_mcfg(tiny_model_dir), mode="discriminative", update=True, update_lr=1e-3, device="cpu")))
    assert has_hook(s, "update")
    rule = torch.tensor([1.0, 0.0, 1.0, 0.0])
    before = {k: v.clone() for k, v in s.model.named_parameters()}
    scores0 = torch.tensor(s.score(SAMPLES))
    batch = UpdateBatch(SAMPLES, scores0, rule, torch.zeros(4))
    m = s.update(batch)
    # the loss of the step is Cooper's loss on the pre-update scores of the (positive, negative) pairs
    want = cooper_loss(scores0[[0, 2]], scores0[[1, 3]], torch.ones(2)).item()
    assert m["rm/pairs"] == 2 and m["rm/loss"] == pytest.approx(want, abs=1e-5)
    changed = [k for k, v in s.model.named_parameters() if not torch.equal(v, before[k])]
    assert any("score" in k for k in changed) and any("layers" in k for k in changed)
    for _ in range(5):
        s.update(batch)
    scores = torch.tensor(s.score(SAMPLES))
    margin0 = (scores0[[0, 2]] - scores0[[1, 3]]).mean()
    assert (scores[[0, 2]] - scores[[1, 3]]).mean() > margin0 + 0.1  # positives now outrank negatives by more
    assert s.update(UpdateBatch(SAMPLES, scores, torch.zeros(4), torch.zeros(4))) == {"rm/pairs": 0.0}


def test_update_needs_discriminative():
    with pytest.raises(ValueError, match="discriminative"):
        LongRMScorer(None, mode="generative", update=True, generator=RecordingGenerator([]))


def test_verify_format_and_threshold(tiny_model_dir):
    from longrm.scorers.longrm_rm import verify_text

    long = "x" * 600 + "HEAD" + "y" * 500 + "TAIL" + "z" * 996  # 2,104 characters; HEAD in the dropped middle
    t = verify_text(Sample("What is 2+3?", long, "5"))
    assert t.startswith("<question>What is 2+3?</question>\n<reference_answer>5</reference_answer>\n<completion>")
    body = t.split("<completion>")[1].removesuffix("</completion>")
    assert len(body) == 1500 and body == long[:500] + long[-1000:] and "HEAD" not in body and "TAIL" in body
    mc = _mcfg(tiny_model_dir)
    torch.manual_seed(0)
    raw = LongRMScorer(mc, mode="discriminative", input_format="verify", device="cpu").score(SAMPLES)
    torch.manual_seed(0)
    thr = LongRMScorer(mc, mode="discriminative", input_format="verify", threshold=True, device="cpu").score(SAMPLES)
    assert thr == [float(r > 0) for r in raw]  # 1[σ(s) > 0.5] = 1[s > 0]
    torch.manual_seed(0)
    chat = LongRMScorer(mc, mode="discriminative", device="cpu").score(SAMPLES)
    assert chat != pytest.approx(raw)  # the two input formats are different texts


class Rewriter:
    """An assistant LLM stand-in answering from per-question queues; records temperatures."""

    def __init__(self, answers):
        self.answers, self.temps, self.convs = {k: list(v) for k, v in answers.items()}, [], []

    def generate(self, convs, temperature=0.0):
        self.temps.append(temperature)
        self.convs += convs
        return [self.answers[next(q for q in self.answers if q in c[1]["content"])].pop(0) for c in convs]


def test_assistant_negatives_accept_only_different_answers():
    from longrm.scorers.longrm_rm import assistant_negatives
    from longrm.scorers.rule import RuleScorer

    pos = [Sample("What is 2 + 3?", "2 + 3 = 5", "5", 0), Sample("What is 4 + 4?", "8", "8", 1)]
    gen = Rewriter({"2 + 3": ["2 + 3 = 5, so 5", "2 + 3 = 6"],          # try 1 keeps the answer: rejected
                    "4 + 4": ["8", "", "The answer is 8", "8.0"]})       # never different: no negative
    texts, rejected = assistant_negatives(pos, gen, RuleScorer("exact"), temperature=0.7, retries=3)
    assert texts == ["2 + 3 = 6", None] and rejected == 5  # 1 for the first, 4 tries (1 + 3 retries) for the second
    assert gen.temps == [0.7] * 4 and "Correct solution:\n2 + 3 = 5" in gen.convs[0][1]["content"]
    assert len(gen.convs) == 2 + 2 + 1 + 1  # only the positives still open are asked again


def test_update_with_assistant_negatives(tiny_model_dir):
    from longrm.scorers.longrm_rm import rm_messages
    from longrm.scorers.rule import RuleScorer

    torch.manual_seed(0)
    gen = Rewriter({"2 + 3": ["It is 6.", "unused"], "4 + 4": ["9"]})
    s = LongRMScorer(_mcfg(tiny_model_dir), mode="discriminative", update=True, update_lr=1e-3, device="cpu",
                     negatives="assistant", assistant=gen, rule=RuleScorer("exact"))
    rule = torch.tensor([1.0, 0.0, 0.0, 0.0])  # group 0 has a positive (sample 0), group 1 has none: masked out
    neg = Sample(SAMPLES[0].prompt, "It is 6.", "5", 0, SAMPLES[0].context)
    with torch.no_grad():
        sp, sn = s.raw_scores([SAMPLES[0], neg]).tolist()
    m = s.update(UpdateBatch(SAMPLES, torch.tensor(s.score(SAMPLES)), rule, torch.zeros(4)))
    want = cooper_loss(torch.tensor([sp]), torch.tensor([sn]), torch.ones(1)).item()
    assert m["rm/pairs"] == 1 and m["rm/rewrites_rejected"] == 0 and m["rm/loss"] == pytest.approx(want, abs=1e-5)
    assert rm_messages(neg)[-1]["content"] == "It is 6."
    with pytest.raises(ValueError, match="assistant"):
        LongRMScorer(_mcfg(tiny_model_dir), mode="discriminative", update=True, negatives="assistant", device="cpu")


def test_assistant_negatives_real_tiny_assistant(tiny_model_dir):
    mc = _mcfg(tiny_model_dir)
    torch.manual_seed(0)
    s = build_scorer(ScorerConfig(name="longrm", longrm=LongRMSection(
        model=mc, mode="discriminative", update=True, update_lr=1e-3, device="cpu", negatives="assistant",
        assistant=mc, assistant_max_new_tokens=8)))
    before = [p.clone() for p in s.model.parameters()]
    m = s.update(UpdateBatch(SAMPLES, torch.tensor(s.score(SAMPLES)), torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.zeros(4)))
    # a random-init assistant writes text whose answer differs from the reference: both groups get a negative
    assert m["rm/pairs"] == 2 and m["rm/loss"] > 0
    assert any(not torch.equal(p, b) for p, b in zip(s.model.parameters(), before))


def test_state_dict_roundtrip(tiny_model_dir):
    mc = _mcfg(tiny_model_dir)
    torch.manual_seed(0)
    a = LongRMScorer(mc, mode="discriminative", update=True, update_lr=1e-3, device="cpu")
    a.update(UpdateBatch(SAMPLES, torch.tensor(a.score(SAMPLES)), torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.zeros(4)))
    torch.manual_seed(1)  # a different fresh score head
    b = LongRMScorer(mc, mode="discriminative", update=True, update_lr=1e-3, device="cpu")
    assert b.score(SAMPLES) != pytest.approx(a.score(SAMPLES))
    b.load_state_dict(a.state_dict())
    assert b.score(SAMPLES) == pytest.approx(a.score(SAMPLES), abs=1e-6)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    k = next(iter(sa["state"]))
    assert torch.equal(sa["state"][k]["exp_avg"], sb["state"][k]["exp_avg"])
    assert LongRMScorer(mc, mode="discriminative", device="cpu").state_dict() == {}  # nothing to resume


def test_generative_server_backend():
    """The generative judge behind an OpenAI-compatible server (the eval tests' fake judge: it scores a response
    by its length, [Score: min(10, len // 6)])."""
    import threading
    from http.server import ThreadingHTTPServer

    from eval_fakes import _Handler

    _Handler.calls = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        s = build_scorer(ScorerConfig(name="longrm", longrm=LongRMSection(
            mode="generative", backend="server", server={"base_url": url, "model": "judge"}, max_new_tokens=64)))
        completions = ["5", "It is 5.", "x" * 30, "y" * 200]
        out = s.score([Sample("What is 2 + 3?", c, "5", 0) for c in completions])
        assert out == pytest.approx([min(10, len(c) // 6) / 10 for c in completions])
        assert len(_Handler.calls) == 4 and all(b["model"] == "judge" and b["temperature"] == 0.0 for b in _Handler.calls)
        sent = sorted("".join(m["content"] for m in b["messages"]) for b in _Handler.calls)  # concurrent: any order
        for c in completions:  # each completion was judged in exactly one request
            assert sum(f"<response>\n{c}\n</response>" in text for text in sent) == 1, c
        failing = build_scorer(ScorerConfig(name="longrm", longrm=LongRMSection(
            mode="generative", backend="server", server={"base_url": url + "/fail"}, default_score=0.4)))
        from longrm.eval.backends import ServerError

        with pytest.raises(ServerError):  # every request failed: the server is taken to be down
            failing.score([Sample("q", "a", "a", 0)])
    finally:
        srv.shutdown()
