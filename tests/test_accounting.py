"""The resource accounting agrees with the model it describes and with published counts."""

from __future__ import annotations

import numpy as np
import pytest

from companion import accounting
from companion.bench import flops_per_step
from companion.config import PRESETS, ModelConfig, preset
from companion.model import Transformer


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_matches_the_built_model_for_every_preset(name):
    config = preset(name)
    built = Transformer(config, np.random.default_rng(0)).num_params()
    assert accounting.parameter_counts(config)["total"] == built


@pytest.mark.parametrize("changes", [
    dict(tie_weights=True), dict(tie_weights=False), dict(norm_placement="post"), dict(positions="sinusoidal"),
    dict(positions="rope"), dict(ffn="relu", bias=False), dict(family="llama"), dict(family="llama", norm="layernorm"),
    dict(family="llama", ffn="gelu", bias=True),
])
def test_parameter_count_matches_the_built_model_for_every_variant(changes):
    config = preset("tiny", **changes)
    built = Transformer(config, np.random.default_rng(0)).num_params()
    assert accounting.parameter_counts(config)["total"] == built, changes


def test_published_parameter_counts_of_gpt2_small_and_llama_7b():
    # GPT-2 small as released (head tied to wte), and LLaMA-7B as in Touvron et al. 2023.
    assert accounting.parameter_counts(accounting.reference_config("gpt2-124m"))["total"] == 124_439_808
    assert accounting.parameter_counts(accounting.reference_config("llama-7b"))["total"] == 6_738_415_616


def test_forward_flops_agree_with_the_benchmark_count():
    config = preset("baby")
    step = flops_per_step(config, 12)
    assert accounting.training_step_flops(config, 12) == step["total"]
    assert accounting.forward_flops(config, 12)["total"] == step["forward"]


def test_training_step_flops_approach_six_n_d_when_context_is_short():
    config = accounting.reference_config("gpt2-124m")
    n = accounting.parameter_counts(config)["total"] - config.vocab_size * config.n_embd  # no lookup FLOPs
    flops = accounting.training_step_flops(config, batch_size=1, seq_len=8)
    n_matmul = n - config.block_size * config.n_embd + config.vocab_size * config.n_embd  # head is a matmul
    assert flops == pytest.approx(6 * n_matmul * 8, rel=0.01)


def test_memory_and_kv_cache_bytes():
    config = preset("baby")
    n = Transformer(config, np.random.default_rng(0)).num_params()
    mem = accounting.training_memory(config, "float32", "adamw")
    assert mem == {"weights": 4 * n, "gradients": 4 * n, "optimizer_state": 8 * n, "total": 16 * n}
    model = Transformer(config, np.random.default_rng(0))
    cache = model.new_kv_cache(3)
    held = sum(a.nbytes for a in cache.k + cache.v)  # one (B, nh, block_size, hs) array per layer each
    assert accounting.kv_cache_bytes(config, 3) == held
    with pytest.raises(ValueError, match="dtype"):
        accounting.kv_cache_bytes(config, 1, dtype="int8")
    with pytest.raises(ValueError, match="optimizer"):
        accounting.training_memory(config, optimizer="lion")
    with pytest.raises(ValueError, match="reference shape"):
        accounting.reference_config("gpt5")
