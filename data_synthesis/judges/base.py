"""The judge interface shared by every backend (ARCHITECTURE: "Judge" seam)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = ["JudgeRequest", "Judgement", "Judge", "build_judge"]


@dataclass
class JudgeRequest:
    messages: list[dict]                       # chat messages (system + user)
    hint: dict = field(default_factory=dict)   # for simulated judges only (gold grades); real backends ignore it
    key: str = ""                              # stable id (seeds sampling, names log lines)


@dataclass
class Judgement:
    text: str | None                           # None when the judge failed to answer
    error: str | None = None                   # short reason (server error, prompt too long, ...)


class Judge(ABC):
    """``judge(requests, n)`` returns ``n`` judgements per request (``[len(requests)][n]``); it never raises
    for one bad request — failures come back as ``Judgement(None, error)``."""

    name: str = "judge"

    @abstractmethod
    def judge(self, requests: list[JudgeRequest], n: int = 1) -> list[list[Judgement]]:
        ...

    def close(self) -> None:  # pragma: no cover - trivial
        pass


def build_judge(cfg) -> Judge:
    """A backend from a :class:`data_synthesis.config.JudgeConfig`."""
    if cfg.backend == "oracle":
        from .oracle import OracleJudge
        return OracleJudge(name=cfg.name or "oracle", noise=cfg.oracle.noise, fail_rate=cfg.oracle.fail_rate,
                           position_bias=cfg.oracle.position_bias, seed=cfg.oracle.seed,
                           delay_s=cfg.oracle.delay_s, quote=cfg.oracle.quote, blind=cfg.oracle.blind)
    if cfg.backend == "http":
        from .http import HTTPJudge
        s = cfg.server
        if not s.model:
            raise ValueError("judges: an http judge needs server.model")
        return HTTPJudge(base_url=s.base_url, model=s.model, name=cfg.name or s.model, api_key_env=s.api_key_env,
                         concurrency=s.concurrency, timeout=s.timeout, max_retries=s.max_retries, backoff=s.backoff,
                         max_backoff=s.max_backoff, n_per_request=s.n_per_request, extra_body=dict(s.extra_body),
                         temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=cfg.seed)
    if cfg.backend == "hf":
        from .local import LocalJudge
        return LocalJudge(cfg.model, name=cfg.name or cfg.model.name_or_path, batch_size=cfg.batch_size,
                          max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_prompt_tokens=cfg.max_prompt_tokens, seed=cfg.seed)
    raise ValueError(f"unknown judge backend {cfg.backend!r}")
