"""GPT-2's Hugging Face formats, proven offline on a randomly initialised GPT2LMHeadModel and a
tokenizer trained here with Hugging Face `tokenizers` (test-only dependencies, skipped if absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from companion.hf_gpt2 import (GPT2FilesTokenizer, load_gpt2, read_safetensors, save_gpt2, special_ids,
                               write_safetensors)
from companion.loss import cross_entropy_forward

torch = pytest.importorskip("torch", reason="PyTorch (CPU) runs the reference GPT-2")
transformers = pytest.importorskip("transformers", reason="transformers provides the reference GPT-2")


def hf_model(tie: bool = True):
    config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_embd=32, n_layer=2, n_head=4,
                                     tie_word_embeddings=tie, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # GPT-2 initialises biases and LayerNorm to 0 and 1: make them matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def hf_logits(model, idx):
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.numpy()


@pytest.mark.parametrize("tie", [True, False])
def test_a_hugging_face_gpt2_loads_with_the_same_logits_and_loss(tmp_path, tie):
    ref = hf_model(tie)
    ref.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_gpt2(tmp_path)
    assert ours.config.tie_weights == tie
    idx = np.random.default_rng(0).integers(0, 97, size=(3, 24))
    want, got = hf_logits(ref, idx), ours.forward(idx)
    assert np.abs(got - want).max() <= 1e-4
    targets = np.roll(idx, -1, axis=1)
    want_loss = torch.nn.functional.cross_entropy(torch.from_numpy(want).reshape(-1, 97),
                                                  torch.from_numpy(targets).reshape(-1)).item()
    got_loss, _ = cross_entropy_forward(got, targets)
    assert abs(float(got_loss) - want_loss) <= 1e-5 * want_loss


@pytest.mark.parametrize("tie", [True, False])
def test_the_companions_save_loads_back_through_from_pretrained(tmp_path, tie):
    hf_model(tie).save_pretrained(tmp_path / "a", safe_serialization=True)
    ours = load_gpt2(tmp_path / "a")
    save_gpt2(ours, tmp_path / "b")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "b").eval()
    idx = np.random.default_rng(1).integers(0, 97, size=(2, 24))
    assert np.abs(hf_logits(back, idx) - ours.forward(idx)).max() <= 1e-4


def test_pickled_checkpoints_are_refused_and_foreign_configs_named(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickled PyTorch checkpoint"):
        load_gpt2(tmp_path)
    hf_model().save_pretrained(tmp_path / "m", safe_serialization=True)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["activation_function"] = "relu"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="activation_function"):
        load_gpt2(tmp_path / "m")


def test_safetensors_round_trip_and_bad_files(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int64)}
    write_safetensors(tmp_path / "x.safetensors", arrays)
    back = read_safetensors(tmp_path / "x.safetensors")
    assert set(back) == {"a", "b"} and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    from safetensors.numpy import load_file  # the reference reader agrees with our writer
    assert np.array_equal(load_file(tmp_path / "x.safetensors")["a"], arrays["a"])
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 12)
    with pytest.raises(ValueError, match="header length"):
        read_safetensors(tmp_path / "bad.safetensors")


def test_a_tokenizer_trained_with_hugging_face_encodes_identically(tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers trains the reference")
    rng = np.random.default_rng(0)
    words = ["the", "king", "queen", "crown", "thee", "thou", "hath", "don't", "we'll", "é", "naïve", "2024",
             "x_y", "!!", "?", "--", "Straße", "中文"]
    def text(n):
        parts = rng.choice(words, size=n).tolist()
        seps = rng.choice([" ", "  ", "\n", ", ", ". ", "\t", " \n"], size=n).tolist()
        return "".join(w + s for w, s in zip(parts, seps))
    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator([text(400) for _ in range(20)], vocab_size=400, min_frequency=2,
                                special_tokens=["<|endoftext|>"])
    trainer.save_model(str(tmp_path))
    ours = GPT2FilesTokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert special_ids(ours) == {"<|endoftext|>": trainer.token_to_id("<|endoftext|>")}
    for _ in range(30):
        sample = text(int(rng.integers(1, 60)))
        want = trainer.encode(sample).ids
        assert ours.encode(sample) == want, sample
        assert ours.decode(want) == sample


def test_a_base_gpt2model_checkpoint_without_the_transformer_prefix_loads_tied(tmp_path):
    # the published openai-community/gpt2 model.safetensors is a GPT2Model file: 'wte.weight',
    # 'h.0.attn.c_attn.weight', ... with no 'transformer.' prefix and no lm_head (the head is tied)
    ref = hf_model(tie=True)
    ref.transformer.save_pretrained(tmp_path, safe_serialization=True)
    names = set(read_safetensors(tmp_path / "model.safetensors"))
    assert "wte.weight" in names and "h.0.attn.c_attn.weight" in names
    assert not any(n.startswith("transformer.") or n.startswith("lm_head") for n in names)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gpt2"
    ours = load_gpt2(tmp_path)
    assert ours.config.tie_weights
    idx = np.random.default_rng(2).integers(0, 97, size=(2, 24))
    with torch.no_grad():
        want_hidden = ref.transformer(torch.from_numpy(idx)).last_hidden_state.numpy()  # after ln_f
    x = ours.wte(idx) + ours.wpe(idx.shape[1], 0)  # (B, T, C)
    for block in ours.blocks:
        x = block(x, None, None)
    hidden = ours.norm_f(x)  # (B, T, C)
    assert np.abs(hidden - want_hidden).max() <= 1e-4
    logits = ours.forward(idx)  # through the head tied to wte
    assert np.abs(logits - hidden @ ours.parameters()["wte.w"].T).max() <= 1e-4
    assert np.abs(logits - hf_logits(ref, idx)).max() <= 1e-4
