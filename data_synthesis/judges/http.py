"""OpenAI-compatible HTTP judge (vLLM, SGLang, TGI, any ``/v1/chat/completions`` server).

- ``base_url`` + ``model`` from the config; the API key is read from the environment variable the config
  names (``api_key_env``) and only ever placed in the ``Authorization`` header — never logged or stored;
- at most ``concurrency`` requests in flight (an ``asyncio.Semaphore`` over one ``httpx.AsyncClient``);
- each request has a ``timeout``; timeouts, connection errors, HTTP 429/5xx and malformed answers (bad JSON,
  no ``choices``) are retried up to ``max_retries`` times with exponential backoff and jitter (a numeric
  ``Retry-After`` is honoured, capped at ``max_backoff``); other 4xx answers fail at once;
- ``n`` samples per request come from the ``n`` parameter (``n_per_request``) — missing choices are fetched
  with further requests — or from ``n`` separate requests.
A request that still fails yields ``Judgement(None, reason)``; :meth:`HTTPJudge.judge` never raises for one.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import time

import httpx

from .base import Judge, Judgement, JudgeRequest

__all__ = ["HTTPJudge"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class HTTPJudge(Judge):
    def __init__(self, base_url: str, model: str, *, name: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, timeout: float = 300.0, max_retries: int = 4, backoff: float = 1.0,
                 max_backoff: float = 30.0, n_per_request: bool = True, extra_body: dict | None = None,
                 temperature: float = 0.7, top_p: float = 0.95, max_tokens: int = 512, seed: int = 0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.name = model, name or model
        self.concurrency, self.timeout = concurrency, timeout
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.n_per_request, self.extra_body = n_per_request, dict(extra_body or {})
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if key:
                self._headers["Authorization"] = f"Bearer {key}"
            else:
                log.info("judge %s: environment variable %s is not set; sending no API key", self.name, api_key_env)
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

    def __repr__(self) -> str:  # no headers (the key) in reprs
        return f"HTTPJudge(name={self.name!r}, url={self.url!r}, model={self.model!r})"

    def _payload(self, messages: list[dict], n: int) -> dict:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "top_p": self.top_p}
        if n > 1:
            body["n"] = n
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = self.backoff * (2 ** attempt)
        return min(self.max_backoff, base * (0.5 + random.random()))

    async def _post(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, messages: list[dict], n: int,
                    key: str) -> list[str]:
        """Texts of up to ``n`` choices; raises ``RuntimeError(reason)`` after the last retry."""
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with sem:
                self.stats["requests"] += 1
                try:
                    resp = await client.post(self.url, json=self._payload(messages, n), headers=self._headers)
                except httpx.TimeoutException:
                    last = f"timeout after {self.timeout:g}s"
                except httpx.TransportError as e:
                    last = f"connection error: {type(e).__name__}"
                else:
                    if resp.status_code == 200:
                        try:
                            data = resp.json()
                            texts = [c["message"]["content"] for c in data["choices"]]
                            if not texts or not all(isinstance(t, str) for t in texts):
                                raise ValueError("no text choices")
                            return texts[:n]
                        except (ValueError, KeyError, TypeError) as e:
                            last = f"malformed response ({type(e).__name__})"
                    elif resp.status_code in _RETRY_STATUS:
                        last = f"HTTP {resp.status_code}"
                        retry_after = resp.headers.get("retry-after")
                    else:
                        self.stats["failures"] += 1
                        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]!r}")
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                log.debug("judge %s request %s: %s, retry %d", self.name, key, last, attempt + 1)
                await asyncio.sleep(self._delay(attempt, retry_after))
        self.stats["failures"] += 1
        log.warning("judge %s request %s failed after %d attempts: %s", self.name, key, self.max_retries + 1, last)
        raise RuntimeError(last)

    async def _one(self, client, sem, req: JudgeRequest, n: int) -> list[Judgement]:
        out: list[Judgement] = []
        try:
            if self.n_per_request:
                while len(out) < n:
                    texts = await self._post(client, sem, req.messages, n - len(out), req.key)
                    out.extend(Judgement(t) for t in texts)
            else:
                results = await asyncio.gather(*(self._post(client, sem, req.messages, 1, req.key)
                                                  for _ in range(n)), return_exceptions=True)
                for r in results:
                    out.append(Judgement(None, str(r)) if isinstance(r, BaseException) else Judgement(r[0]))
        except RuntimeError as e:
            out.extend(Judgement(None, str(e)) for _ in range(n - len(out)))
        return out[:n]

    async def ajudge(self, requests: list[JudgeRequest], n: int = 1) -> list[list[Judgement]]:
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            return list(await asyncio.gather(*(self._one(client, sem, r, n) for r in requests)))

    def judge(self, requests: list[JudgeRequest], n: int = 1) -> list[list[Judgement]]:
        t0 = time.time()
        out = asyncio.run(self.ajudge(requests, n))
        log.info("judge %s: %d requests x %d samples in %.1fs", self.name, len(requests), n, time.time() - t0)
        return out
