"""Scorers for policy/reward co-training (ARCHITECTURE.md "Scorer" seam): ``build_scorer(cfg)`` → a scorer.

Registered: ``rule`` (verifier, {0, 1}), ``longrm`` (generative judge or discriminative RM; Cooper-style
online update of the discriminative RM), ``hero`` (HERO stratified rewards + variance-aware advantage weights
over the ``longrm`` RM), ``rubric`` (weighted binary criteria from a JSON-answering judge, REFERENCE §4),
``spark`` (verifier reward + pointwise / pairwise judge tasks and reflection tasks recycled into the loop, §5).
Rubric refinement by progressive differentiation (§4): :mod:`.rubric_refine`.  SPARK's test-time answer →
self-judge → reflect procedure (§5): :mod:`.spark_infer` (``longrm spark_infer``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import ModelConfig, Section
from .base import GroupTransform, Sample, Scorer, UpdateBatch, group_ids, has_hook

__all__ = ["RuleSection", "LongRMSection", "HeroSection", "RubricSection", "RubricRefineSection", "SparkSection", "ScorerConfig", "build_scorer", "SCORERS",
           "Sample", "GroupTransform", "UpdateBatch", "Scorer", "has_hook", "group_ids"]


class RuleSection(Section):
    mode: Literal["auto", "math_verify", "exact"] = Field(
        "auto", description="answer checker: math-verify, plain normalised exact match, or auto (math-verify if installed)")


class JudgeServerSection(Section):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root (vLLM, SGLang, ...)")
    model: str | None = Field(None, description="served model name (default: the model's name_or_path)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key, if any")
    concurrency: int = Field(8, ge=1, description="requests in flight")


class LongRMSection(Section):
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False),
                               description="the trained LongRM (folder / hub id / tiny:qwen2)")
    mode: Literal["generative", "discriminative"] = Field(
        "generative", description="generative: pointwise [Score: N] judge; discriminative: scalar head at the last token")
    backend: Literal["local", "server"] = Field("local", description="generative: local from_pretrained model, or "
                                                "an OpenAI-compatible server (scorer.longrm.server)")
    server: JudgeServerSection = JudgeServerSection()
    max_new_tokens: int = Field(512, ge=1, description="generative: greedy judge budget")
    default_score: float = Field(0.0, description="generative: reward when the judge output has no [Score: N] (0-1 scale)")
    sigmoid: bool = Field(False, description="discriminative: reward sigma(s) instead of s (Cooper's RL reward)")
    threshold: bool = Field(False, description="discriminative: reward 1[sigma(s) > 0.5] (Cooper's optional threshold)")
    input_format: Literal["chat", "verify"] = Field(
        "chat", description="discriminative input: chat (prompt + assistant turn, chat template) or verify "
        "(Cooper VerifyRM text with the reference answer)")
    batch_size: int = Field(8, ge=1, description="sequences per RM forward")
    device: str = Field("auto", description="auto: GPU if available, else CPU")
    update: bool = Field(False, description="discriminative: Cooper-style online RM step per batch (negatives: "
                         "the group's rule-0 rollouts)")
    update_lr: float = Field(1e-5, gt=0, description="online RM learning rate (Cooper: 1e-5)")
    negatives: Literal["group", "assistant"] = Field(
        "group", description="online update negatives: the group's rule-0 rollout, or an assistant LLM's wrong "
        "rewrite of the positive (Cooper)")
    assistant: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False),
                                   description="negatives=assistant: the rewriting chat LM")
    assistant_temperature: float = Field(0.7, gt=0, description="rewrite sampling temperature (Cooper: 0.7)")
    assistant_retries: int = Field(3, ge=0, description="extra rewrite tries per positive (Cooper: up to 3)")
    assistant_max_new_tokens: int = Field(512, ge=1)


class HeroSection(Section):
    alpha: float = Field(0.05, ge=0, description="α: half-width of the rule-0 band [-α, α] (0.1 for mixed/hard data)")
    beta: float = Field(0.05, ge=0, description="β: half-width of the rule-1 band [1-β, 1+β]")
    eps: float = Field(1e-6, gt=0, description="ε in the min/max normalisation")
    w_min: float = Field(0.4, description="variance weight floor (other source: 0.5)")
    w_max: float = Field(3.0, description="variance weight ceiling (other source: 2.0)")
    k: float = Field(6.0, description="variance weight slope (other source: 5.0)")
    ema_momentum: float = Field(0.9, ge=0, lt=1, description="momentum of the running mean σ̄ of per-prompt RM std")


class RubricRefineSection(Section):
    proposer: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False),
                                  description="the LLM that rewrites the rubric from a compared pair")
    proposer_backend: Literal["local", "server"] = Field("local", description="local from_pretrained model, or an "
                                                         "OpenAI-compatible server (proposer_server)")
    proposer_server: JudgeServerSection = JudgeServerSection()
    rounds: int = Field(4, ge=1, description="refinement rounds per prompt (the paper: 4)")
    pairs: list[Literal["top", "diverse", "random"]] = Field(
        ["top"], min_length=1, description="pair kind per round, cycled: top (the two highest-scoring: great vs "
        "good; the paper's loop), diverse (least alike among those >= the median), random (ablation)")
    exclude: bool = Field(True, description="compared responses are not picked again in later rounds")
    temperature: float = Field(0.7, ge=0, description="proposer temperature")
    retry_temperature: float = Field(1.0, gt=0, description="proposer temperature of the one retry after an "
                                     "unparsable rubric")
    max_new_tokens: int = Field(1024, ge=1, description="proposer budget per call")
    seed: int = Field(0, description="seed of the A/B order (and of random pairs)")


class RubricSection(Section):
    judge: ModelConfig = Field(default_factory=lambda: ModelConfig(dtype="float32", gradient_checkpointing=False),
                               description="the rubric judge (a chat LM answering JSON)")
    criteria: list[dict] = Field(default_factory=list, description="default rubric [{criterion, weight}] for prompts "
                                 "without a 'rubric' column")
    max_new_tokens: int = Field(256, ge=1, description="judge budget per call")
    temperature: float = Field(0.0, ge=0, description="judge temperature (0: greedy)")
    retry_temperature: float = Field(0.7, gt=0, description="temperature of the one retry after a parse failure")
    batch_size: int = Field(8, ge=1)
    device: str = Field("auto", description="auto: GPU if available, else CPU")
    backend: Literal["local", "server"] = Field("local", description="the judge: local from_pretrained model, or an "
                                                "OpenAI-compatible server (scorer.rubric.server)")
    server: JudgeServerSection = JudgeServerSection()
    refine: RubricRefineSection = Field(RubricRefineSection(), description="offline rubric refinement "
                                        "(python -m longrm.scorers.rubric_refine IN OUT --config ...)")


class SparkSection(Section):
    p_pointwise: float = Field(0.3, ge=0, le=1, description="mixed groups: probability of a pointwise (else pairwise) task")
    reflection: bool = Field(False, description="also emit a reflection task per group with a wrong rollout (question "
                             "+ that wrong answer -> corrected answer, label = the reference)")
    task_ratios: dict[str, float] = Field(default_factory=dict, description="injected task mix by kind, e.g. "
                                          "{pointwise: 1, pairwise: 1, reflection: 2} (smooth weighted round-robin; "
                                          "kinds with weight 0 are not emitted); empty: oldest task first")
    inject_fraction: float = Field(0.5, gt=0, le=1, description="at most this fraction of each batch's prompt groups "
                                   "is replaced by queued judge tasks")
    max_queue: int = Field(1024, ge=1, description="queued judge tasks kept (oldest dropped first)")
    seed: int = Field(0, description="seed of the task choices")

    @model_validator(mode="after")
    def _check_mix(self):
        if self.task_ratios:
            from .spark import TaskMix

            mix = TaskMix(self.task_ratios)  # unknown kinds, negative weights, zero sum
            if self.reflection != mix.wants("reflection"):
                raise ValueError("task_ratios: give reflection a positive weight exactly when reflection is true")
        return self


class ScorerConfig(Section):
    name: Literal["rule", "longrm", "hero", "rubric", "spark"] = Field("rule", description="which scorer gives the policy's reward")
    rule: RuleSection = RuleSection()
    longrm: LongRMSection = LongRMSection()
    hero: HeroSection = Field(HeroSection(), description="hero: uses scorer.longrm as the RM, scorer.rule as verifier")
    rubric: RubricSection = RubricSection()
    spark: SparkSection = Field(SparkSection(), description="spark: reward from scorer.rule; judge tasks fed back")


def _rule(cfg: ScorerConfig):
    from .rule import RuleScorer

    return RuleScorer(cfg.rule.mode)


def _longrm(cfg: ScorerConfig):
    from .longrm_rm import LongRMScorer

    c = cfg.longrm
    assistant = rule = None
    if c.update and c.negatives == "assistant":
        from .sampling import LocalSampler

        assistant = LocalSampler(c.assistant, max_new_tokens=c.assistant_max_new_tokens, batch_size=c.batch_size,
                                 device=c.device)
        rule = _rule(cfg)
    return LongRMScorer(c.model, mode=c.mode, max_new_tokens=c.max_new_tokens, default_score=c.default_score,
                        sigmoid=c.sigmoid, threshold=c.threshold, input_format=c.input_format,
                        batch_size=c.batch_size, device=c.device, update=c.update, update_lr=c.update_lr,
                        negatives=c.negatives, assistant=assistant, assistant_temperature=c.assistant_temperature,
                        assistant_retries=c.assistant_retries, rule=rule,
                        server=c.server.model_dump() if c.mode == "generative" and c.backend == "server" else None)


def _hero(cfg: ScorerConfig):
    from .hero import HeroScorer

    h = cfg.hero
    return HeroScorer(_longrm(cfg), alpha=h.alpha, beta=h.beta, eps=h.eps, w_min=h.w_min, w_max=h.w_max, k=h.k,
                      ema_momentum=h.ema_momentum)


def _rubric_judge(r: RubricSection):
    """The rubric judge: a local chat LM or an OpenAI-compatible server, ``generate(convs, temperature)``."""
    from .rubric_refine import make_sampler

    return make_sampler(r.backend, r.judge, r.server, max_new_tokens=r.max_new_tokens, batch_size=r.batch_size,
                        device=r.device)


def _rubric(cfg: ScorerConfig):
    from .rubric import RubricScorer

    r = cfg.rubric
    return RubricScorer(_rubric_judge(r), criteria=r.criteria or None, temperature=r.temperature,
                        retry_temperature=r.retry_temperature)


def _spark(cfg: ScorerConfig):
    from .spark import SparkScorer

    sp = cfg.spark
    return SparkScorer(_rule(cfg), p_pointwise=sp.p_pointwise, seed=sp.seed, reflection=sp.reflection,
                       task_ratios=sp.task_ratios or None)


SCORERS = {"rule": _rule, "longrm": _longrm, "hero": _hero, "rubric": _rubric, "spark": _spark}


def build_scorer(cfg: ScorerConfig):
    """The scorer ``cfg.name`` names, built from its section (models load via ``from_pretrained``)."""
    try:
        factory = SCORERS[cfg.name]
    except KeyError:
        raise ValueError(f"unknown scorer {cfg.name!r}; choose from {', '.join(SCORERS)}") from None
    return factory(cfg)
