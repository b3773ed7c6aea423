"""Policy rollouts through an OpenAI-compatible server (vLLM, SGLang, ...) for ``longrm cotrain``.

``rollout.backend`` picks who samples the G rollouts per prompt:

- ``local`` (default): TRL's own ``model.generate`` on the policy being trained.
- ``server``: :class:`ServerRollout`, passed to TRL's ``GRPOTrainer`` as its public ``rollout_func`` hook.  TRL hands
  it the rank's prompt rows (each prompt's G copies next to each other); it sends **one request per prompt** with
  ``n = G``, ``temperature`` / ``top_p`` from ``grpo``, ``max_tokens = grpo.max_completion_length`` (and
  ``logprobs`` when asked) to ``/completions`` (the prompt as the policy's token ids, tokenized by TRL exactly as
  for local generation) or ``/chat/completions`` (the prompt's messages), and returns the prompt ids, the sampled
  completion ids and, optionally, their log-probs.  Everything after that — rewards, the scorer hooks, advantages,
  the loss and the optimizer step — is TRL's / :class:`~longrm.cotrain.trainer.CoTrainer`'s, unchanged.
  Weight sync (``rollout.server.weight_sync``): ``disk`` saves the policy (``trainer.save_model``) to
  ``sync_dir/step-N`` and asks the server to reload from that folder (SGLang's ``POST /update_weights_from_disk``
  ``{"model_path": ...}``) before the first generation of every optimizer step — the cadence of TRL's own vLLM
  sync; ``none`` never updates the server (its rollouts then come from the weights it was started with: off-policy
  after step 1; a warning says so).
- ``trl_vllm``: TRL's own vLLM server mode (``GRPOConfig(use_vllm=True, vllm_mode="server")``): completions from
  ``/v1/completions`` with token ids, weights streamed over NCCL by vLLM's weight-transfer engine, TRL's truncated
  importance-sampling correction on.  GPU-only (see :func:`check_trl_vllm`).

Why not TRL's server mode on CPU: its ``VLLMGeneration`` imports ``vllm`` in the trainer and, in server mode, opens the
NCCL weight-update group at construction (``VLLMClient.init_communicator`` raises ``NotImplementedError`` on a
non-CUDA device), so it cannot even be built here.  ``rollout_func`` is the public TRL seam that works without it.
"""
from __future__ import annotations

import logging
import os
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..config import Section

__all__ = ["RolloutServerSection", "RolloutSection", "RolloutServerError", "ServerRollout", "check_trl_vllm",
           "server_root"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RolloutServerSection(Section):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root (vLLM, SGLang, ...); "
                          "for trl_vllm the server root (a trailing /v1 is dropped)")
    model: str | None = Field(None, description="model name sent in requests; default: the first id of GET /models")
    api: Literal["completions", "chat"] = Field(
        "completions", description="completions: the prompt as the policy's token ids (as TRL tokenizes it); chat: the "
        "prompt's messages (the server's chat template must be the policy's)")
    token_ids: bool = Field(False, description="ask for the sampled token ids (vLLM's return_token_ids); otherwise the "
                            "returned text is tokenized with the policy tokenizer, plus EOS when finish_reason is stop")
    logprobs: bool = Field(False, description="ask for each sampled token's log-prob and hand them to TRL as the "
                           "rollouts' sampling log-probs (they must align with the token ids: use token_ids on vLLM)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="more request fields, e.g. "
                                       "{top_k: 20, repetition_penalty: 1.0, seed: 0}")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key (optional)")
    concurrency: int = Field(8, ge=1, description="requests in flight per process")
    timeout: float = Field(600.0, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, description="retries of a request on connection errors, timeouts, 429 and 5xx")
    retry_backoff: float = Field(1.0, ge=0, description="seconds before the first retry (doubled each retry)")
    weight_sync: Literal["disk", "none"] = Field(
        "disk", description="disk: save the policy to sync_dir/step-N and POST it to sync_url before each optimizer "
        "step's rollouts; none: the server keeps its weights (off-policy after step 1)")
    sync_url: str | None = Field(None, description="weight-reload endpoint; default <server root>/update_weights_from_disk "
                                 "(SGLang; body {model_path})")
    sync_dir: str | None = Field(None, description="where the policy is saved for the server to load (a path the server "
                                 "can read); default <train.output_dir>/rollout_weights")
    group_port: int = Field(51216, ge=1, description="trl_vllm: port of TRL's NCCL weight-update group")


class RolloutSection(Section):
    backend: Literal["local", "server", "trl_vllm"] = Field(
        "local", description="local: TRL generates with the policy; server: an OpenAI-compatible server through TRL's "
        "rollout_func (CPU-tested); trl_vllm: TRL's vLLM server mode with NCCL weight sync (GPU-only)")
    server: RolloutServerSection = RolloutServerSection()


class RolloutServerError(RuntimeError):
    """The rollout server is down, refused a request, or answered something the loop cannot use."""


def server_root(base_url: str) -> str:
    """``http://host:port/v1`` → ``http://host:port`` (the root holding non-OpenAI endpoints such as weight reloads)."""
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def check_trl_vllm() -> None:
    """Refuse ``rollout.backend: trl_vllm`` where it cannot run, with one message saying why."""
    import torch
    from trl.import_utils import is_vllm_available

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA device")
    if not is_vllm_available():
        missing.append("the vllm package in the trainer's environment")
    if missing:
        # GPU-only: TRL's vLLM server mode opens vLLM's NCCL weight-transfer group at construction (CUDA only).
        raise RolloutServerError(
            "rollout.backend trl_vllm is GPU-only: TRL's vLLM server mode streams the policy's weights to the server over "
            f"NCCL (vLLM's weight-transfer engine) and needs {' and '.join(missing)}. On this machine use "
            "rollout.backend: server (any OpenAI-compatible server, weight sync through disk) or local.")


class ServerRollout:
    """TRL ``rollout_func``: ``f(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs"}``.

    ``prompts`` are the rank's rows, each prompt's ``G`` copies next to each other (TRL's layout); one request per
    prompt asks for ``n = G`` samples.  Prompt ids come from TRL's own tokenization (``trainer._tokenize_prompts``),
    so the loss sees the same prompt tokens as with local generation.  ``stats`` counts requests, retries and syncs;
    per-batch increments are logged as ``rollout/*``.
    """

    __name__ = "server_rollout"

    def __init__(self, cfg: RolloutServerSection, *, temperature: float, top_p: float, max_tokens: int,
                 sync_dir: str | Path):
        import httpx

        self.cfg = cfg
        self.base = cfg.base_url.rstrip("/")
        self.url = self.base + ("/completions" if cfg.api == "completions" else "/chat/completions")
        self.sync_url = cfg.sync_url or server_root(self.base) + "/update_weights_from_disk"
        self.sync_dir = Path(sync_dir)
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self.max_tokens = max_tokens
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"  # only ever in the header; never logged
        self.client = httpx.Client(timeout=cfg.timeout, headers=headers, limits=httpx.Limits(
            max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency))
        self.stats = {"requests": 0, "sync_requests": 0, "retries": 0, "syncs": 0}
        self._lock = threading.Lock()  # requests run in a thread pool
        self._logged = dict(self.stats)
        self.last_synced: int | None = None
        self.model = self._served_model()
        if cfg.weight_sync == "none":
            log.warning("rollout.server.weight_sync is none: the server at %s keeps the weights it was started with, so "
                        "rollouts are sampled from those, not from the policy being trained (off-policy after step 1)",
                        self.base)

    def __repr__(self) -> str:  # no headers (the key)
        return f"ServerRollout(url={self.url!r}, model={self.model!r}, weight_sync={self.cfg.weight_sync!r})"

    # -- HTTP --------------------------------------------------------------------------------------------------
    def _served_model(self) -> str:
        """Health check + model name: GET <base>/models.  A server that cannot be reached stops here, once."""
        import httpx

        try:
            resp = self.client.get(self.base + "/models", timeout=min(self.cfg.timeout, 30.0))
        except httpx.TransportError as e:
            raise RolloutServerError(
                f"rollout server {self.base} is not reachable ({type(e).__name__}: {e}); start it (vllm serve / "
                "python -m sglang.launch_server) or set rollout.backend: local") from None
        if resp.status_code == 200:
            try:
                served = resp.json()["data"][0]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                served = None
            if self.cfg.model or served:
                return self.cfg.model or served
        if self.cfg.model:
            return self.cfg.model
        raise RolloutServerError(f"rollout server {self.base}: GET /models answered HTTP {resp.status_code} without a "
                                 "model id; set rollout.server.model")

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _post(self, url: str, body: dict, stat: str = "requests") -> dict:
        """POST with retries (connection errors, timeouts, 429, 5xx, unreadable JSON); other 4xx fail at once.
        ``stat``: the counter of attempts (``requests`` for generation, ``sync_requests`` for weight reloads)."""
        import httpx

        last = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(self.cfg.retry_backoff * (2 ** (attempt - 1)) * (0.75 + 0.5 * random.random()))
            self._count(stat)
            try:
                resp = self.client.post(url, json=body)
            except httpx.TimeoutException:
                last = f"timeout after {self.cfg.timeout:g}s"
                continue
            except httpx.TransportError as e:
                last = f"connection error ({type(e).__name__})"
                continue
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    last = "unreadable JSON"
                    continue
            if resp.status_code not in _RETRY_STATUS:
                raise RolloutServerError(f"rollout server {url}: HTTP {resp.status_code}: {resp.text[:300]!r}")
            last = f"HTTP {resp.status_code}"
        raise RolloutServerError(f"rollout server {url}: {last} after {self.cfg.max_retries + 1} attempts; is the "
                                 "server still up? (a rerun resumes from the last checkpoint)")

    # -- requests ----------------------------------------------------------------------------------------------
    def _body(self, prompt: Any, prompt_ids: list[int], n: int) -> dict:
        body: dict[str, Any] = {"model": self.model, "n": n, **self.sampling}
        if self.cfg.api == "completions":
            body["prompt"] = list(prompt_ids)
            if self.cfg.logprobs:
                body["logprobs"] = 1
        else:
            if not isinstance(prompt, list):
                raise RolloutServerError("rollout.server.api chat needs chat-message prompts; this prompt set has plain "
                                         "text prompts: use api: completions")
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in prompt]
            if self.cfg.logprobs:
                body["logprobs"] = True
        if self.cfg.token_ids:
            body["return_token_ids"] = True  # vLLM extension: the sampled token ids in each choice
        body.update(self.cfg.extra_body)
        return body

    def _parse(self, choice: dict, tok, eos: int) -> tuple[list[int], list | None]:
        """One choice → (completion token ids, their log-probs or None)."""
        ids = choice.get("token_ids") if self.cfg.token_ids else None
        appended = False
        if ids is None:
            text = choice.get("text") if self.cfg.api == "completions" else (choice.get("message") or {}).get("content")
            if not isinstance(text, str):
                raise RolloutServerError(f"rollout server {self.url}: a choice without text: {str(choice)[:200]}")
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if choice.get("finish_reason") == "stop":  # the model ended its turn: the text leaves the EOS out
                ids, appended = ids + [eos], True
        ids = [int(i) for i in ids][: self.max_tokens]
        if not self.cfg.logprobs:
            return ids, None
        lp = choice.get("logprobs") or {}
        if self.cfg.api == "completions":
            vals = lp.get("token_logprobs")
        else:
            vals = [e.get("logprob") for e in lp.get("content") or []] if lp.get("content") is not None else None
        if vals is None:
            raise RolloutServerError(f"rollout server {self.url} returned no log-probs; set rollout.server.logprobs false")
        vals = list(vals)
        if appended and len(vals) == len(ids) - 1:
            vals.append(None)  # the EOS added here has no server log-prob: TRL reads None as NaN (no correction)
        vals = vals[: self.max_tokens]
        if len(vals) != len(ids):
            raise RolloutServerError(
                f"rollout server {self.url}: {len(vals)} log-probs for {len(ids)} completion tokens; log-probs must align "
                "with the token ids: set rollout.server.token_ids true (vLLM) or logprobs false")
        return ids, vals

    def _sample(self, prompt: Any, prompt_ids: list[int], n: int, tok, eos: int) -> list[tuple[list[int], list | None]]:
        """``n`` samples of one prompt; a server that returns fewer choices than ``n`` is asked again for the rest."""
        got: list = []
        for _ in range(n):
            data = self._post(self.url, self._body(prompt, prompt_ids, n - len(got)))
            choices = data.get("choices") if isinstance(data, dict) else None
            if not choices:
                raise RolloutServerError(f"rollout server {self.url}: an answer without choices: {str(data)[:200]}")
            choices = sorted(choices, key=lambda c: c.get("index", 0))[: n - len(got)]
            got.extend(self._parse(c, tok, eos) for c in choices)
            if len(got) == n:
                return got
        raise RolloutServerError(f"rollout server {self.url}: fewer than n={n} choices after {n} requests")

    # -- weight sync -------------------------------------------------------------------------------------------
    def sync(self, trainer) -> None:
        """Save the policy as it is now and have the server load it (every rank calls; the main process posts)."""
        step = trainer.state.global_step
        path = self.sync_dir / f"step-{step}"
        t0 = time.time()
        trainer.save_model(str(path))  # collective under ZeRO-3 / FSDP; the main process writes
        if trainer.accelerator.is_main_process:
            answer = self._post(self.sync_url, {"model_path": str(path.resolve())}, stat="sync_requests")
            if isinstance(answer, dict) and answer.get("success") is False:
                raise RolloutServerError(f"rollout server {self.sync_url} did not load {path}: {answer.get('message')}")
            for old in self.sync_dir.glob("step-*"):
                if old != path:
                    shutil.rmtree(old, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        self.last_synced = step
        self.stats["syncs"] += 1
        trainer._metrics["train" if trainer.model.training else "eval"]["rollout/sync_s"].append(time.time() - t0)

    # -- the TRL hook --------------------------------------------------------------------------------------------
    def __call__(self, prompts: list, trainer) -> dict:
        mode = "train" if trainer.model.training else "eval"
        g = trainer.num_generations if mode == "train" else trainer.num_generations_eval
        if len(prompts) % g:
            raise RuntimeError(f"{len(prompts)} prompt rows are not whole groups of {g}")
        if self.cfg.weight_sync == "disk" and trainer.state.global_step != self.last_synced:
            self.sync(trainer)
        prompt_ids = [list(p) for p in trainer._tokenize_prompts(prompts)[0]]
        for s in range(0, len(prompts), g):
            if any(prompt_ids[i] != prompt_ids[s] for i in range(s, s + g)):
                raise RuntimeError(f"rows {s}..{s + g - 1} are not one prompt's {g} copies")
        tok = getattr(trainer, "_tokenizer", None) or trainer.processing_class
        eos = trainer.eos_token_ids[0]
        t0 = time.time()
        starts = range(0, len(prompts), g)
        with ThreadPoolExecutor(max_workers=max(1, min(self.cfg.concurrency, len(starts)))) as ex:
            groups = list(ex.map(lambda s: self._sample(prompts[s], prompt_ids[s], g, tok, eos), starts))
        rows = [r for grp in groups for r in grp]
        m = trainer._metrics[mode]
        m["rollout/generate_s"].append(time.time() - t0)
        for k in ("requests", "retries"):
            m[f"rollout/{k}"].append(float(self.stats[k] - self._logged[k]))
            self._logged[k] = self.stats[k]
        m["rollout/weight_syncs"].append(float(self.stats["syncs"]))
        return {"prompt_ids": prompt_ids, "completion_ids": [ids for ids, _ in rows],
                "logprobs": [lp for _, lp in rows] if self.cfg.logprobs else None}

    def close(self) -> None:
        self.client.close()
