"""Rollouts through an OpenAI-compatible server (``rollout.backend: server``), against the fake server of
``rollout_fakes`` on 127.0.0.1: the GRPO step trains on exactly the server's completions, the requests carry the
batch's prompts / n / temperature / max_tokens, the policy is synced to the server (by disk) before each step's
rollouts, a server that is down or goes down stops the run with one clear error, and TRL's own vLLM server mode
(``trl_vllm``) is refused on this CPU machine as GPU-only."""
import json
import logging
import socket

import pytest
import torch

from cotrain_helpers import overrides, recording_trainer
from longrm.config import load_config
from longrm.cotrain.rollout import RolloutServerError, RolloutServerSection, ServerRollout
from longrm.cotrain.run import CotrainConfig, _grpo_args, build_trainer, run_cotrain
from rollout_fakes import FakeRolloutServer, answer_of, sample_text

G, P = 4, 2


def _tok(policy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(policy))


def _cfg(policy, out, url, **extra):
    base = {"scorer.name": "rule", "grpo.num_generations": G, "grpo.prompts_per_step": P, "train.max_steps": 2,
            "grpo.temperature": 0.7, "grpo.max_completion_length": 4, "train.lr": 1e-3,
            "rollout.backend": "server", "rollout.server.base_url": url}
    base.update(extra)
    return load_config(CotrainConfig, None, overrides(policy, out, **base))


def _recorder():
    """Records, per generation batch: the policy's weight total when the batch starts (what the sync must have
    shipped) and TRL's ``sampling_per_token_logps`` (the server's log-probs, when asked for)."""
    base = recording_trainer()

    class Rec(base):
        def _generate_and_score_completions(self, inputs):
            total = sum(float(p.detach().double().sum()) for p in self.model.parameters())
            self.__dict__.setdefault("weight_totals", []).append(total)
            out = super()._generate_and_score_completions(inputs)
            self.__dict__.setdefault("sampling_logps", []).append(out.get("sampling_per_token_logps"))
            return out

    return Rec


@pytest.mark.parametrize("variant", ["completions+token_ids+logprobs", "chat+text"])
def test_grpo_step_trains_on_the_servers_completions(variant, warm_policy, tmp_path):
    tok = _tok(warm_policy)
    eos = tok.eos_token_id
    chat = variant.startswith("chat")
    with FakeRolloutServer(tok, eos) as fake:
        out = tmp_path / "run"
        cfg = _cfg(warm_policy, out, fake.url, **{
            "rollout.server.api": "chat" if chat else "completions", "rollout.server.token_ids": not chat,
            "rollout.server.logprobs": not chat})
        tr = run_cotrain(cfg, trainer_cls=_recorder())
    gen_path = "/v1/chat/completions" if chat else "/v1/completions"
    # Call order: before each step's rollouts, one weight sync; then one request per prompt (n = G).
    assert [p for p, _ in fake.calls] == ["/update_weights_from_disk", gen_path, gen_path] * 2
    gens = [b for p, b in fake.calls if p == gen_path]
    for b in gens:
        assert (b["n"], b["temperature"], b["max_tokens"], b["top_p"], b["model"]) == (G, 0.7, 4, 1.0, "fake-policy")
        assert b.get("return_token_ids", False) == (not chat) and bool(b.get("logprobs")) == (not chat)
    assert len(tr.gens) == 2
    for step, gen in enumerate(tr.gens):
        keys, scores = gen["keys"], gen["scores"]
        assert len(keys) == P * G
        # The requests of this step carried exactly this batch's prompts: token ids as TRL tokenized them
        # (completions API) or the prompt's messages (chat API).
        sent = gens[step * P:(step + 1) * P]
        group_prompts = [keys[g * G][0] for g in range(P)]
        if chat:
            assert all([m["role"] for m in b["messages"]] == ["user"] for b in sent)
            for p in group_prompts:  # each group's question was asked in exactly one request
                assert sum(b["messages"][0]["content"] in tok.decode(list(p)) for b in sent) == 1
        else:
            assert sorted(tuple(b["prompt"]) for b in sent) == sorted(group_prompts)
        for g in range(P):
            question = tok.decode(list(group_prompts[g]))
            ans = answer_of(question)
            for j in range(G):
                i = g * G + j
                assert keys[i][0] == group_prompts[g]  # one prompt's G copies
                text = tok.decode(list(keys[i][1]), skip_special_tokens=True)
                assert text == sample_text(question, j)  # the server's j-th sample, in its order
                assert list(keys[i][1]) == tok(text, add_special_tokens=False)["input_ids"] + [eos]
                assert float(scores[i]) == float(text == str(ans))  # reward on exactly that text
        if not chat:  # the server's log-probs reached TRL as the sampling log-probs, token by token
            lp = tr.sampling_logps[step]
            for i in range(P * G):
                n_tok = len(keys[i][1])
                assert lp[i, :n_tok].tolist() == pytest.approx([-0.1 * (k + 1) for k in range(n_tok)], abs=1e-6)
        else:
            assert tr.sampling_logps[step] is None
    # Advantages reaching the loss = group-normalised rewards of those texts (TRL: Bessel std + 1e-4).
    want = {}
    for gen in tr.gens:
        r = gen["scores"].double().view(P, G)
        adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1)
        want.update({k: float(a) for k, a in zip(gen["keys"], adv)})
    assert any(abs(a) > 0.5 for a in want.values())  # right and wrong answers in the groups: real advantages
    for keys, adv in tr.losses:
        for k, a in zip(keys, adv.tolist()):
            assert a == pytest.approx(want[k], abs=1e-5)
    # Weight sync: the server loaded the policy as it was when each step's rollouts began; the policy moved.
    assert [p.rsplit("/", 1)[1] for p, _ in fake.syncs] == ["step-0", "step-1"]
    assert [t for _, t in fake.syncs] == pytest.approx(tr.weight_totals, rel=1e-9, abs=1e-9)
    assert tr.weight_totals[0] != pytest.approx(tr.weight_totals[1], rel=1e-9, abs=1e-9)
    assert sorted(x.name for x in (out / "rollout_weights").iterdir()) == ["step-1"]  # older copies removed
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "reward" in json.loads(x)]
    assert [(r["rollout/requests"], r["rollout/weight_syncs"], r["rollout/retries"]) for r in rows] == [(2, 1, 0), (2, 2, 0)]


def test_server_down_or_failing_gives_one_clear_error(warm_policy, tmp_path, caplog):
    tok = _tok(warm_policy)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _cfg(warm_policy, tmp_path / "down", f"http://127.0.0.1:{port}/v1")
    with pytest.raises(RolloutServerError, match=rf"rollout server http://127.0.0.1:{port}/v1 is not reachable"):
        build_trainer(cfg)  # before any model is loaded
    # The server answers step 1, then fails (HTTP 503) from the 3rd request on: one retry, then one error.
    with FakeRolloutServer(tok, tok.eos_token_id, fail_after=2) as fake, caplog.at_level(logging.WARNING):
        cfg = _cfg(warm_policy, tmp_path / "fails", fake.url, **{
            "rollout.server.weight_sync": "none", "rollout.server.max_retries": 1, "rollout.server.retry_backoff": 0.01})
        with pytest.raises(RolloutServerError, match=r"/v1/completions: HTTP 503 after 2 attempts; is the server still up"):
            run_cotrain(cfg)
    assert "weight_sync is none" in caplog.text and "off-policy" in caplog.text  # the note for a fixed server
    assert all(p == "/v1/completions" for p, _ in fake.calls) and len(fake.calls) == 2 + 2 * 2  # no sync calls
    # A server without the reload endpoint (vLLM's OpenAI server): the first sync stops the run, naming it.
    with FakeRolloutServer(tok, tok.eos_token_id, reload=False) as fake:
        cfg = _cfg(warm_policy, tmp_path / "noreload", fake.url)
        with pytest.raises(RolloutServerError, match=r"update_weights_from_disk: HTTP 404"):
            run_cotrain(cfg)


def test_sampler_asks_again_when_the_server_ignores_n(tiny_tokenizer):
    """A server that returns one choice per request whatever n is asked again for the rest; misaligned log-probs
    are refused."""
    tok = tiny_tokenizer
    with FakeRolloutServer(tok, tok.eos_token_id, max_n=1) as fake:
        ro = ServerRollout(RolloutServerSection(base_url=fake.url), temperature=1.0, top_p=1.0, max_tokens=8,
                           sync_dir="/nonexistent")
        q = "What is 3 + 4? Answer with the number only."
        ids = tok(q)["input_ids"]
        got = ro._sample(q, ids, 4, tok, tok.eos_token_id)
        assert [tok.decode(c[:-1]) for c, _ in got] == ["7", "8", "7", "10"]  # samples 0..3 of the fake
        assert [b["n"] for _, b in fake.calls] == [4, 3, 2, 1]
        bad = ServerRollout(RolloutServerSection(base_url=fake.url, logprobs=True), temperature=1.0, top_p=1.0,
                            max_tokens=8, sync_dir="/nonexistent")
        with pytest.raises(RolloutServerError, match="must align with the token ids"):
            bad._parse({"text": "12", "finish_reason": "length", "logprobs": {"token_logprobs": [-1.0, -2.0, -3.0]}},
                       tok, tok.eos_token_id)


def test_trl_vllm_backend_maps_to_trl_and_is_gpu_only(warm_policy, tmp_path):
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, tmp_path / "v", **{
        "rollout.backend": "trl_vllm", "rollout.server.base_url": "http://10.0.0.7:8000/v1",
        "rollout.server.timeout": 120, "rollout.server.group_port": 51300}))
    args = _grpo_args(cfg)  # TRL's own server mode through its public config
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://10.0.0.7:8000")
    assert (args.vllm_server_timeout, args.vllm_group_port) == (120, 51300)
    assert args.vllm_importance_sampling_correction  # TRL's truncated IS correction stays on
    assert not _grpo_args(load_config(CotrainConfig, None, overrides(warm_policy, tmp_path / "l"))).use_vllm
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: the GPU-only refusal is not what happens here")
    with pytest.raises(RolloutServerError, match="rollout.backend trl_vllm is GPU-only.*a CUDA device"):
        build_trainer(cfg)


@pytest.mark.slow
@pytest.mark.distributed
def test_server_rollouts_two_processes(warm_policy, tmp_path):
    """torchrun, 2 CPU processes (gloo): each rank asks the server for its own prompt groups, rank 0 alone saves and
    posts the weights (once per step, after which every rank waits), and each rank trains on exactly its samples."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dp_rollout_worker import G as G2, P_PER_RANK, STEPS

    tok = _tok(warm_policy)
    repo = Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               TRL_EXPERIMENTAL_SILENCE="1", PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with FakeRolloutServer(tok, tok.eos_token_id) as fake:
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                            "127.0.0.1", "--master_port", str(port), str(Path(__file__).with_name("dp_rollout_worker.py")),
                            str(warm_policy), str(tmp_path), fake.url], cwd=repo, env=env, capture_output=True, text=True,
                           timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # Calls: per step one sync (rank 0), then the 2 ranks x P_PER_RANK prompt requests, never interleaved.
    paths = [p for p, _ in fake.calls]
    per_step = ["/update_weights_from_disk"] + ["/v1/completions"] * (2 * P_PER_RANK)
    assert paths == per_step * STEPS
    assert ranks[0]["stats"]["sync_requests"] == STEPS and ranks[1]["stats"]["sync_requests"] == 0
    assert [r["stats"]["requests"] for r in ranks] == [STEPS * P_PER_RANK] * 2
    for t in range(STEPS):
        # the weights the server loaded = the policy on both ranks when step t's rollouts began
        assert fake.syncs[t][0].endswith(f"step-{t}")
        assert fake.syncs[t][1] == pytest.approx(ranks[0]["rec"][t]["total"], rel=1e-9)
        assert ranks[1]["rec"][t]["total"] == pytest.approx(ranks[0]["rec"][t]["total"], rel=1e-12)
        calls = fake.calls[t * len(per_step) + 1:(t + 1) * len(per_step)]
        asked = sorted(tok.decode(b["prompt"]) for _, b in calls)
        held = sorted(r["rec"][t]["prompts"][g * G2] for r in ranks for g in range(P_PER_RANK))
        assert asked == held and all(b["n"] == G2 and b["temperature"] == 0.7 for _, b in calls)
        assert ranks[0]["rec"][t]["prompts"] != ranks[1]["rec"][t]["prompts"]  # each rank its own groups
        for r in ranks:
            rec = r["rec"][t]
            for i, (q, c, s) in enumerate(zip(rec["prompts"], rec["completions"], rec["scores"])):
                assert c == sample_text(q, i % G2)  # the server's sample i mod G of that prompt
                assert s == float(c == str(answer_of(q)))
    assert fake.syncs[0][1] != pytest.approx(fake.syncs[1][1], rel=1e-9)  # the policy moved between the syncs
