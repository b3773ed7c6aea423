"""``longrm`` scorer: a trained LongRM judging policy rollouts (REFERENCE §1.1, §1.6), with an optional
Cooper-style online update of the discriminative RM (REFERENCE §2).

Two modes, both loaded through the real ``from_pretrained`` path (:mod:`longrm.models`):

- ``generative`` — the pointwise judge prompt (:func:`longrm.judging.prompts.pointwise_messages`: context,
  question, response → ``[Analysis] … [Score: N]``), greedy generation by a local model
  (:class:`longrm.eval.backends.LocalGenerator`) or an OpenAI-compatible server such as vLLM
  (:class:`longrm.eval.backends.ServerGenerator`; a request that still fails after its retries parses as a failure),
  parsed with :func:`longrm.judging.parsers.parse_pointwise`; reward = (N − lo)/(hi − lo) ∈ [0, 1] with
  (lo, hi) = (0, 10).  A parse failure gets ``default_score`` (on the same [0, 1] scale) and is counted.
- ``discriminative`` — ``AutoModelForSequenceClassification`` (scalar head): reward = the head's output at the
  last real token of ``prompt messages + [assistant: completion]`` through the chat template (the layout
  ``longrm eval`` scores; ``input_format="chat"``) or of Cooper's VerifyRM text (``input_format="verify"``, §2:
  ``<question>{q}</question>\n<reference_answer>{a}</reference_answer>\n<completion>{c}</completion>``, a and c
  cut to their first 500 + last 1000 characters when longer than 1,500; no chat template).  With ``sigmoid``
  the reward is σ(s) (Cooper's RL reward, §2); with ``threshold`` it is 1[σ(s) > 0.5].

Online update (discriminative only, ``update=True``): after the GRPO advantages of a batch are computed and
before the policy step, one AdamW step on the RM with Cooper's loss (§2)

    L = Σ_i m_i·[−log σ(s(x_i, y_i⁺) − s(x_i, y_i⁻))] / (Σ_i m_i + 1e-6)

over prompt groups i: y⁺ = the first rollout with rule score 1, m_i = 1 when the group has one.  The negative
y⁻ comes from ``negatives``:

- ``"assistant"`` (Cooper): an assistant LLM rewrites y⁺ into a plausible but wrong solution at temperature
  0.7; a rewrite is accepted only if the rule verifier says its answer differs from the reference (which y⁺
  matches); up to ``assistant_retries`` more tries; still none → m_i = 0.
- ``"group"`` (our default, no extra model): the group's first rollout with rule score 0 (a real wrong answer of
  the same policy; m_i = 0 when there is none).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch

from ..data.tokenize import encode_scored, pad_batch
from .base import Sample, UpdateBatch

__all__ = ["LongRMScorer", "judge_messages", "rm_messages", "verify_text", "normalize_score", "cooper_pairs",
           "cooper_loss", "rewrite_messages", "assistant_negatives", "positives"]

REWRITE_SYSTEM = ("You write flawed solutions for training a verifier. Rewrite the given correct solution so that "
                  "it still looks plausible but reaches a different, wrong final answer. Keep the style and length. "
                  "Output only the rewritten solution.")


def judge_messages(s: Sample) -> list[dict]:
    """Pointwise judge prompt for one rollout: context (may be empty), question = prompt, response = completion."""
    from ..judging.prompts import pointwise_messages

    return pointwise_messages(s.context or "", s.prompt, s.completion)


def rm_messages(s: Sample) -> list[dict]:
    """Conversation a discriminative RM scores: the prompt messages (or one user turn) + the assistant completion."""
    if s.messages:
        prompt = [dict(m) for m in s.messages]
    else:
        user = f"{s.context}\n\n{s.prompt}" if s.context else s.prompt
        prompt = [{"role": "user", "content": user}]
    return prompt + [{"role": "assistant", "content": s.completion}]


def _cut(text: str, head: int = 500, tail: int = 1000) -> str:
    return text if len(text) <= head + tail else text[:head] + text[-tail:]


def verify_text(s: Sample) -> str:
    """Cooper's VerifyRM input (REFERENCE §2) for one rollout; reference answer and completion cut head 500 +
    tail 1000 characters when longer than 1,500 (an absent reference is empty)."""
    return (f"<question>{s.prompt}</question>\n<reference_answer>{_cut(s.answer or '')}</reference_answer>\n"
            f"<completion>{_cut(s.completion)}</completion>")


def normalize_score(n: int, lo: int = 0, hi: int = 10) -> float:
    """Judge score N ∈ [lo, hi] → (N − lo)/(hi − lo) ∈ [0, 1]."""
    return (n - lo) / (hi - lo)


def cooper_pairs(rule_scores: torch.Tensor, groups: torch.Tensor) -> list[tuple[int, int]]:
    """Per group, ``(index of the first rule-1 rollout, index of the first rule-0 rollout)``; groups lacking
    either are left out (their mask m_i is 0).  ``rule_scores``, ``groups``: [N]."""
    pairs = []
    for g in torch.unique(groups):
        idx = (groups == g).nonzero(as_tuple=True)[0].tolist()
        pos = [i for i in idx if rule_scores[i] >= 0.5]
        neg = [i for i in idx if rule_scores[i] < 0.5]  # NaN (no reference) is neither
        if pos and neg:
            pairs.append((pos[0], neg[0]))
    return pairs


def positives(rule_scores: torch.Tensor, groups: torch.Tensor) -> list[int]:
    """Per group, the index of its first rule-1 rollout (groups without one are left out)."""
    out = []
    for g in torch.unique(groups):
        idx = (groups == g).nonzero(as_tuple=True)[0].tolist()
        pos = [i for i in idx if rule_scores[i] >= 0.5]
        if pos:
            out.append(pos[0])
    return out


def rewrite_messages(s: Sample) -> list[dict]:
    """Assistant-LLM request: rewrite the correct solution ``s.completion`` to ``s.prompt`` into a wrong one."""
    return [{"role": "system", "content": REWRITE_SYSTEM},
            {"role": "user", "content": f"Question:\n{s.prompt}\n\nCorrect solution:\n{s.completion}"}]


def assistant_negatives(pos: list[Sample], generator, rule, *, temperature: float = 0.7, retries: int = 3
                        ) -> tuple[list[str | None], int]:
    """Cooper negatives (REFERENCE §2): for each positive, sample rewrites (first try + up to ``retries`` more,
    batched over the positives still open) and keep the first whose answer the verifier finds *different* from
    the reference (``not rule.check(rewrite, answer)``, non-empty).  Returns ([P] texts or None, rejected count)."""
    out: list[str | None] = [None] * len(pos)
    open_ = list(range(len(pos)))
    rejected = 0
    for _ in range(1 + retries):
        if not open_:
            break
        texts = generator.generate([rewrite_messages(pos[i]) for i in open_], temperature=temperature)
        still = []
        for i, t in zip(open_, texts):
            if isinstance(t, str) and t.strip() and not rule.check(t, pos[i].answer):
                out[i] = t
            else:
                rejected += 1
                still.append(i)
        open_ = still
    return out, rejected


def cooper_loss(s_pos: torch.Tensor, s_neg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cooper RM loss (REFERENCE §2): Σ m_i·[−log σ(s⁺_i − s⁻_i)] / (Σ m_i + 1e-6); all inputs [P]."""
    m = mask.to(s_pos.dtype)
    return (m * -torch.nn.functional.logsigmoid(s_pos - s_neg)).sum() / (m.sum() + 1e-6)


class LongRMScorer:
    """A LongRM (generative judge or discriminative RM) as a co-training scorer. See the module docstring."""

    name = "longrm"

    def __init__(self, model_cfg, *, mode: Literal["generative", "discriminative"] = "generative",
                 max_new_tokens: int = 512, default_score: float = 0.0, sigmoid: bool = False, threshold: bool = False,
                 input_format: Literal["chat", "verify"] = "chat", batch_size: int = 8, device: str = "cpu",
                 update: bool = False, update_lr: float = 1e-5, negatives: Literal["group", "assistant"] = "group",
                 assistant=None, assistant_temperature: float = 0.7, assistant_retries: int = 3, rule=None,
                 generator=None, server: dict | None = None):
        from ..eval.backends import pick_device

        self.mode, self.default_score, self.sigmoid, self.batch_size = mode, default_score, sigmoid, batch_size
        self.threshold, self.input_format = threshold, input_format
        self.negatives, self.assistant, self.rule = negatives, assistant, rule
        self.assistant_temperature, self.assistant_retries = assistant_temperature, assistant_retries
        if update and negatives == "assistant" and (assistant is None or rule is None):
            raise ValueError("negatives='assistant' needs an assistant LLM and a rule verifier")
        self.parse_failures = 0
        self.device = pick_device(device)
        self.generator = generator
        self.model = self.tok = self.optimizer = None
        if update and mode != "discriminative":
            raise ValueError("scorer.longrm.update is implemented for the discriminative RM only")
        if mode == "generative":
            if self.generator is None and server is not None:
                from ..eval.backends import ServerGenerator

                self.generator = ServerGenerator(server["base_url"], server.get("model") or model_cfg.name_or_path,
                                                 max_new_tokens=max_new_tokens, api_key_env=server["api_key_env"],
                                                 concurrency=server["concurrency"])
            elif self.generator is None:
                from ..eval.backends import LocalGenerator

                self.generator = LocalGenerator(model_cfg, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                                device=str(self.device))
        elif mode == "discriminative":
            from ..models import load_seq_cls, load_tokenizer

            self.tok = load_tokenizer(model_cfg)
            self.model = load_seq_cls(model_cfg).to(self.device).eval()
            self.head = getattr(self.model, "score", None) or getattr(self.model, "classifier", None)
            if self.head is None:
                raise ValueError(f"{model_cfg.name_or_path}: no 'score'/'classifier' head on the sequence classifier")
            self._per_token = None
            self.head.register_forward_hook(lambda m, i, o: setattr(self, "_per_token", o))
            self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        else:
            raise ValueError(f"unknown longrm scorer mode {mode!r}")
        if update:
            self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                               lr=update_lr, weight_decay=0.0)
        else:
            self.update = None  # no hook: has_hook(self, "update") is False

    # -- discriminative -------------------------------------------------------------------------------------
    def _encode(self, s: Sample) -> list[int]:
        if self.input_format == "verify":
            return list(self.tok(verify_text(s), add_special_tokens=False)["input_ids"])
        return encode_scored(self.tok, rm_messages(s))  # the DisRM's training encoding (reward at the EOS)

    def raw_scores(self, samples: Sequence[Sample]) -> torch.Tensor:
        """[N] samples → [N] head outputs at each sequence's last real token (with autograd when enabled)."""
        ids = [self._encode(s) for s in samples]
        out = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            inp, mask = pad_batch(chunk, self.pad_id)
            self.model(input_ids=inp.to(self.device), attention_mask=mask.to(self.device))
            last = torch.tensor([len(x) - 1 for x in chunk], device=self.device)
            out.append(self._per_token[torch.arange(len(chunk), device=self.device), last, 0].float())
            self._per_token = None
        return torch.cat(out)

    # -- Scorer ---------------------------------------------------------------------------------------------
    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] rewards: normalised judge score (generative) or RM output s / σ(s) / 1[σ(s) > 0.5]."""
        if not samples:
            return []
        if self.mode == "generative":
            from ..eval.protocol import verdict_text
            from ..judging.parsers import parse_pointwise

            texts = self.generator.generate([judge_messages(s) for s in samples])
            out = []
            for t in texts:
                p = parse_pointwise(verdict_text(t))
                if p.ok:
                    out.append(normalize_score(p.value))
                else:
                    self.parse_failures += 1
                    out.append(float(self.default_score))
            return out
        with torch.inference_mode():
            s = self.raw_scores(samples)
        if self.threshold:
            return (torch.sigmoid(s) > 0.5).float().tolist()
        return (torch.sigmoid(s) if self.sigmoid else s).tolist()

    def update(self, batch: UpdateBatch) -> dict[str, float]:
        """One Cooper RM step on the batch (module docstring); returns ``{"rm/loss", "rm/pairs"[, "rm/rewrites_rejected"]}``.

        A batch without any (positive, negative) pair makes no step and returns ``{"rm/pairs": 0}``.

        Data parallel (``batch.dp.size > 1``, each rank holding whole prompt groups): every rank builds the pairs of
        its own groups and computes Σ_local m_i·ℓ_i / (Σ_all m_i + 1e-6), the global pair count coming from an
        all-reduce; the parameter gradients are then summed over the ranks, which gives exactly the gradient of
        Cooper's loss over the whole batch, and every rank applies the same AdamW step (the RM stays identical
        across ranks).  Metrics are global.
        """
        dp = batch.dp
        groups = torch.tensor([s.group for s in batch.samples])
        rejected = 0
        if self.negatives == "assistant":
            pos = [batch.samples[i] for i in positives(batch.rule_scores, groups)]
            texts, rejected = assistant_negatives(pos, self.assistant, self.rule, temperature=self.assistant_temperature,
                                                  retries=self.assistant_retries) if pos else ([], 0)
            keep = [k for k, t in enumerate(texts) if t is not None]
            neg = [Sample(pos[k].prompt, texts[k], pos[k].answer, pos[k].group, pos[k].context, pos[k].messages)
                   for k in keep]
            pos = [pos[k] for k in keep]
        else:
            pairs = cooper_pairs(batch.rule_scores, groups)
            pos = [batch.samples[i] for i, _ in pairs]
            neg = [batch.samples[j] for _, j in pairs]
        counts = dp.all_reduce_sum(torch.tensor([float(len(pos)), float(rejected)], dtype=torch.float64,
                                                device=self.device))
        n_pairs, n_rejected = float(counts[0]), float(counts[1])
        metrics = {"rm/rewrites_rejected": n_rejected} if self.negatives == "assistant" else {}
        if n_pairs == 0:
            return {**metrics, "rm/pairs": 0.0}
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        if pos:
            s = self.raw_scores(pos + neg)
            # Cooper's loss with m_i = 1 on the kept pairs, normalised by the pair count of the whole batch
            local = -torch.nn.functional.logsigmoid(s[:len(pos)] - s[len(pos):]).sum() / (n_pairs + 1e-6)
            local.backward()
            loss = local.detach().double()
        dp.sum_grads(self.model.parameters())
        self.optimizer.step()
        self.model.eval()
        return {**metrics, "rm/loss": float(dp.all_reduce_sum(loss.reshape(1))[0]), "rm/pairs": n_pairs}

    def state_dict(self) -> dict:
        """What an online-updated RM needs to resume: RM weights + its AdamW state (empty without ``update``)."""
        if self.optimizer is None:
            return {}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a no-op for an empty state)."""
        if state:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])

    def save(self, path) -> None:
        """Save the discriminative RM (weights + tokenizer) as an HF folder (after online updates)."""
        if self.model is None:
            raise ValueError("only the discriminative RM has weights to save")
        self.model.save_pretrained(str(path), safe_serialization=True)
        self.tok.save_pretrained(str(path))
