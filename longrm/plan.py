"""What a training config asks of a cluster, worked out without a GPU and without a download.

``longrm plan --config configs/cluster/qwen3_8b_align.yaml [--plan.nodes 1 --plan.gpus_per_node 8]`` loads
the config with its stage's own schema (sft / align / disrm, found from the config's sections), and prints:

- the layout: world size = nodes x GPUs, DP x SP groups (``parallel.sp_size`` must divide the world), the
  head stride, global batch (micro batch x accumulation x DP) and tokens per optimizer step;
- tokens per rank: one packed row of ``data.max_length`` tokens is split over the ``sp_size`` ranks of a group;
- the model: parameters computed from the architecture in ``config.json`` (a local folder, the local HF cache,
  or a built-in table for Qwen3-8B and Llama-3.1-8B when the weights are not on this machine);
- a per-GPU memory estimate under the config's ZeRO stage, dtype and offload: bf16 weights, gradients, fp32
  master weights + AdamW moments (partitioned over the world by ZeRO), activations under gradient
  checkpointing at the per-rank token count, the K/V all-gathered under SP, the chunked LM head, DeepSpeed's
  communication buckets, and a margin for the CUDA context and fragmentation;
- the DeepSpeed config the run will generate (ZeRO section, optimizer, schedule), with ``train.deepspeed_config``
  merged in.

The memory figures are estimates (±20%): they size a job, they do not replace a first run.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ARCH_TABLE", "Arch", "arch_from_config", "find_arch", "param_count", "memory_estimate", "Plan",
           "build_plan", "detect_stage"]

GiB = 1024 ** 3

# config.json fields of the two named models (public model cards), for planning where the weights are absent.
ARCH_TABLE: dict[str, dict[str, Any]] = {
    "qwen3-8b": {"model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
                 "tie_word_embeddings": False, "max_position_embeddings": 40960, "attention_bias": False},
    "llama-3.1-8b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                     "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
                     "attention_bias": False},
}
# name fragments (lower case, '_' -> '-') that select a table entry: hub ids, and our output folders
_ALIASES = {"qwen3-8b": "qwen3-8b", "llama-3.1-8b": "llama-3.1-8b", "llama3.1-8b": "llama-3.1-8b",
            "llama31-8b": "llama-3.1-8b"}


@dataclass
class Arch:
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    max_positions: int | None
    attention_bias: bool
    source: str  # where the numbers came from
    rope_scaling: dict | None = None

    @property
    def context_limit(self) -> int | None:
        """max_position_embeddings, or factor x original window when config.json sets a RoPE scaling."""
        rs = self.rope_scaling or {}
        scaled = None
        if rs.get("factor") and rs.get("original_max_position_embeddings"):
            scaled = int(float(rs["factor"]) * int(rs["original_max_position_embeddings"]))
        if self.max_positions is None:
            return scaled
        return max(int(self.max_positions), scaled or 0)

    @property
    def qk_norm(self) -> bool:
        return self.model_type == "qwen3"


def arch_from_config(cfg: dict, source: str) -> Arch:
    g = cfg.get
    text = cfg.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in cfg:  # multimodal wrappers keep the LM in text_config
        return arch_from_config({**text, "model_type": text.get("model_type", g("model_type"))}, source)
    hidden, heads = int(g("hidden_size")), int(g("num_attention_heads"))
    return Arch(model_type=str(g("model_type", "")), hidden=hidden, intermediate=int(g("intermediate_size")),
                layers=int(g("num_hidden_layers")), heads=heads, kv_heads=int(g("num_key_value_heads") or heads),
                head_dim=int(g("head_dim") or hidden // heads), vocab=int(g("vocab_size")),
                tied=bool(g("tie_word_embeddings", False)), max_positions=g("max_position_embeddings"),
                attention_bias=bool(g("attention_bias", g("model_type") == "qwen2")), source=source,
                rope_scaling=next((r for r in (g("rope_scaling"), g("rope_parameters"))  # transformers 4 / 5 names
                                   if isinstance(r, dict) and r.get("factor")), None))


def _cached_config(repo_id: str, revision: str | None) -> Path | None:
    """config.json of ``repo_id`` if it is already in the local HF cache (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    try:
        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id, etc.
        return None
    return Path(hit) if isinstance(hit, str) else None


def find_arch(name_or_path: str, revision: str | None = None, hint: str | None = None) -> Arch:
    """The architecture of ``name_or_path``: its config.json (folder, or local HF cache), else the built-in
    table by name (``hint`` first: a table name, a folder or a config.json path)."""
    for cand in ([hint] if hint else []) + [name_or_path]:
        p = Path(cand)
        if p.is_file() and p.name.endswith(".json"):
            return arch_from_config(json.loads(p.read_text()), str(p))
        if (p / "config.json").is_file():
            return arch_from_config(json.loads((p / "config.json").read_text()), str(p / "config.json"))
    if name_or_path.startswith("tiny:") or name_or_path == "smollm2":
        from .models import resolve_model_path

        folder = Path(resolve_model_path(name_or_path))
        return arch_from_config(json.loads((folder / "config.json").read_text()), f"{name_or_path} (built-in)")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name_or_path):
        hit = _cached_config(name_or_path, revision)
        if hit is not None:
            return arch_from_config(json.loads(hit.read_text()), f"{name_or_path} (local HF cache)")
    for cand in ([hint] if hint else []) + [name_or_path]:
        key = cand.lower().replace("_", "-")
        for frag, entry in _ALIASES.items():
            if frag in key:
                return arch_from_config(ARCH_TABLE[entry], f"built-in table '{entry}' (matched '{cand}')")
    raise ValueError(f"model {name_or_path!r}: no config.json here or in the local HF cache, and not one of the "
                     f"built-in architectures ({', '.join(ARCH_TABLE)}); give --plan.model with a config.json path "
                     "or a table name")


def param_count(a: Arch, head: str = "lm") -> dict[str, int]:
    """Parameters of a Llama/Qwen-style decoder: embeddings, layers, final norm and the head.

    ``head``: ``lm`` (vocabulary projection, shared with the embeddings when tied) or ``score`` (a scalar
    head, as AutoModelForSequenceClassification builds for a discriminative RM).
    """
    q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
    attn = a.hidden * q + 2 * a.hidden * kv + q * a.hidden
    if a.attention_bias:
        attn += q + 2 * kv
    if a.qk_norm:
        attn += 2 * a.head_dim
    mlp = 3 * a.hidden * a.intermediate
    layer = attn + mlp + 2 * a.hidden
    embed = a.vocab * a.hidden
    head_params = a.hidden if head == "score" else (0 if a.tied else a.vocab * a.hidden)
    parts = {"embeddings": embed, "layers": layer * a.layers, "final_norm": a.hidden, "head": head_params}
    parts["total"] = sum(parts.values())
    return parts


def memory_estimate(a: Arch, params: int, *, world: int, sp: int, tokens_per_rank: int, total_tokens: int,
                    zero_stage: int, bf16: bool, param_bytes: int, offload_optimizer: bool,
                    gradient_checkpointing: bool, head_stride: int, lm_head_chunk: int | None,
                    buckets: int) -> dict[str, float]:
    """Per-GPU bytes by part (see the module docstring); ``total`` includes a 10% + 1 GiB margin."""
    P, W, T, H = params, world, tokens_per_rank, a.hidden
    mixed = bf16 and param_bytes == 2  # bf16 weights and grads, fp32 master copy in the optimizer
    weights = param_bytes * P / (W if zero_stage == 3 else 1)
    grads = param_bytes * P / (W if zero_stage >= 2 else 1)
    opt_bytes = (12 if mixed else 8) * P  # fp32 master (mixed only) + AdamW m and v
    optimizer = 0.0 if offload_optimizer else opt_bytes / (W if zero_stage >= 1 else 1)
    act = param_bytes
    # one layer's working set (q, k, v, attention output, MLP in/out) recomputed or kept per layer
    layer_ws = T * (6 * H + 3 * a.intermediate) * act
    if gradient_checkpointing:
        activations = a.layers * T * H * act + 2 * layer_ws
    else:
        activations = a.layers * layer_ws
    kv_heads = a.kv_heads if head_stride in (0, None) else min(head_stride, a.kv_heads)
    kv_gather = 0.0 if sp == 1 else 2 * (2 * total_tokens * kv_heads * a.head_dim * act)  # K and V, fwd + bwd
    lm_head = 0.0 if lm_head_chunk is None else 2 * lm_head_chunk * a.vocab * 4  # fp32 logits chunk + its grad
    comm = buckets * param_bytes if zero_stage >= 1 else 0.0
    parts = {"weights": weights, "gradients": grads, "optimizer": optimizer, "activations": activations,
             "sp_kv_gather": kv_gather, "lm_head_chunk": lm_head, "comm_buckets": comm}
    subtotal = sum(parts.values())
    parts["margin"] = 0.10 * subtotal + GiB
    parts["total"] = subtotal + parts["margin"]
    return parts


def detect_stage(tree: dict) -> str:
    """``align`` / ``disrm`` / ``sft`` from the config's own section; a config with none of them is an SFT one
    (the sft section is optional)."""
    for stage in ("align", "disrm", "sft"):
        if stage in tree:
            return stage
    return "sft"


@dataclass
class Plan:
    stage: str
    cfg: Any
    arch: Arch
    nodes: int
    gpus_per_node: int
    gpu_memory_gb: float
    params: dict[str, int]
    memory: dict[str, float]
    ds_config: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def world(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def sp(self) -> int:
        return self.cfg.parallel.sp_size

    @property
    def dp(self) -> int:
        return self.world // self.sp

    @property
    def tokens_per_rank(self) -> int:
        return -(-self.cfg.data.max_length // self.sp)

    @property
    def global_batch(self) -> int:
        t = self.cfg.train
        return t.micro_batch_size * t.gradient_accumulation_steps * self.dp

    @property
    def fits(self) -> bool:
        return self.memory["total"] <= self.gpu_memory_gb * 1e9

    def render(self) -> str:
        c, a, t = self.cfg, self.arch, self.cfg.train
        gb = lambda b: f"{b / 1e9:6.1f} GB"  # noqa: E731
        zero = self.ds_config["zero_optimization"]
        sched = self.ds_config["scheduler"]["params"]
        out = [
            f"longrm plan: {self.stage} with {c.model.name_or_path}",
            f"  hardware      {self.nodes} node(s) x {self.gpus_per_node} GPU(s) of {self.gpu_memory_gb:g} GB",
            f"  world size    {self.world} = dp {self.dp} x sp {self.sp} (head stride "
            f"{c.parallel.head_stride or 'all'}, kernel {c.parallel.kernel})",
            f"  tokens/rank   {self.tokens_per_rank:,} per micro step (a packed row of {c.data.max_length:,} tokens "
            f"split over {self.sp} rank(s))",
            f"  batch         micro {t.micro_batch_size} x accumulation {t.gradient_accumulation_steps} x dp {self.dp}"
            f" = {self.global_batch} rows per optimizer step (<= {self.global_batch * c.data.max_length:,} tokens)",
            f"  optimizer     AdamW lr {t.lr:g}, betas {tuple(t.adam_betas)}, weight decay {t.weight_decay:g}, "
            f"clip {t.grad_clip:g}; warmup {t.warmup_ratio:g} then cosine to {t.min_lr_ratio:g} x lr "
            f"({sched['cos_min_ratio'] * t.lr:g})",
            f"  precision     weights {c.model.dtype}, DeepSpeed bf16 {self.ds_config['bf16']['enabled']}, ZeRO stage "
            f"{zero['stage']}" + (", optimizer offloaded to CPU" if "offload_optimizer" in zero else "")
            + (f", overlap_comm {zero.get('overlap_comm')}" if zero["stage"] else ""),
            f"  model         {a.model_type}: hidden {a.hidden}, {a.layers} layers, {a.heads} heads / {a.kv_heads} KV "
            f"heads x {a.head_dim}, MLP {a.intermediate}, vocab {a.vocab}, context window {a.context_limit}",
            f"                from {a.source}",
            f"  parameters    {self.params['total'] / 1e9:.2f} B (embeddings {self.params['embeddings'] / 1e9:.2f} B, "
            f"layers {self.params['layers'] / 1e9:.2f} B, head {self.params['head'] / 1e9:.2f} B)",
            "  memory/GPU    estimate (±20%):",
        ]
        for k in ("weights", "gradients", "optimizer", "activations", "sp_kv_gather", "lm_head_chunk",
                  "comm_buckets", "margin"):
            out.append(f"                {k:<14}{gb(self.memory[k])}")
        verdict = "fits" if self.fits else "does NOT fit"
        out.append(f"                {'total':<14}{gb(self.memory['total'])}  -> {verdict} in "
                   f"{self.gpu_memory_gb:g} GB")
        out += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(out)

    def as_dict(self) -> dict:
        return {"stage": self.stage, "world_size": self.world, "dp": self.dp, "sp": self.sp,
                "tokens_per_rank": self.tokens_per_rank, "global_batch": self.global_batch,
                "params": self.params, "memory_bytes": self.memory, "fits": self.fits,
                "gpu_memory_gb": self.gpu_memory_gb, "arch_source": self.arch.source, "warnings": self.warnings}


def build_plan(stage: str, cfg: Any, *, nodes: int = 1, gpus_per_node: int = 8, gpu_memory_gb: float = 80.0,
               model_hint: str | None = None) -> Plan:
    """The plan of a validated stage config ``cfg`` (a stage's ``Config``) on ``nodes`` x ``gpus_per_node``."""
    from .engine.ds_config import build_ds_config

    world = nodes * gpus_per_node
    sp = cfg.parallel.sp_size
    if world % sp:
        raise ValueError(f"parallel.sp_size {sp} does not divide the world size {world} "
                         f"({nodes} node(s) x {gpus_per_node} GPU(s))")
    arch = find_arch(cfg.model.name_or_path, cfg.model.revision, model_hint)
    if cfg.model.rope_scaling:  # applied on load over the checkpoint's (longrm.models)
        arch.rope_scaling = {**(arch.rope_scaling or {}), **cfg.model.rope_scaling}
    params = param_count(arch, head="score" if stage == "disrm" else "lm")
    bf16 = bool(cfg.train.bf16 or cfg.model.dtype == "bfloat16")
    ds = build_ds_config(cfg.train, cfg.train.max_steps or 1000, bf16=bf16)
    zero = ds["zero_optimization"]
    stage_n = int(zero.get("stage", cfg.train.zero_stage))
    buckets = 0
    if stage_n >= 1:
        buckets = int(zero.get("reduce_bucket_size", 5e8)) + int(zero.get("allgather_bucket_size", 5e8))
    section = getattr(cfg, stage, None)
    chunk = getattr(section, "logprob_chunk_size", None) if stage != "disrm" else None
    tokens_per_rank = -(-cfg.data.max_length // sp)
    param_bytes = 2 if cfg.model.dtype in ("bfloat16", "float16") else 4
    mem = memory_estimate(arch, params["total"], world=world, sp=sp, tokens_per_rank=tokens_per_rank,
                          total_tokens=cfg.data.max_length, zero_stage=stage_n, bf16=bf16, param_bytes=param_bytes,
                          offload_optimizer="offload_optimizer" in zero,
                          gradient_checkpointing=cfg.model.gradient_checkpointing,
                          head_stride=cfg.parallel.head_stride, lm_head_chunk=chunk, buckets=buckets)
    plan = Plan(stage, cfg, arch, nodes, gpus_per_node, gpu_memory_gb, params, mem, ds)
    if arch.context_limit and cfg.data.max_length > arch.context_limit:
        plan.warnings.append(
            f"data.max_length {cfg.data.max_length} > the model's context window {arch.context_limit}: "
            "extend the RoPE range with model.rope_scaling (Qwen3, as its model card describes: "
            "{rope_type: yarn, factor: 4.0, original_max_position_embeddings: 32768})")
    if cfg.parallel.head_stride and arch.kv_heads % cfg.parallel.head_stride:
        plan.warnings.append(f"parallel.head_stride {cfg.parallel.head_stride} does not divide the "
                             f"{arch.kv_heads} KV heads")
    if cfg.train.zero_stage != stage_n:
        plan.warnings.append(f"train.deepspeed_config sets ZeRO stage {stage_n}, train.zero_stage says "
                             f"{cfg.train.zero_stage}: the JSON wins")
    if not plan.fits:
        plan.warnings.append("the estimate exceeds the GPU memory: raise parallel.sp_size (more GPUs per row), "
                             "use train.zero_stage 3 or train.offload_optimizer, or lower data.max_length")
    if sp > gpus_per_node:
        plan.warnings.append(f"sp_size {sp} > {gpus_per_node} GPUs per node: SP all-gathers cross nodes")
    return plan
