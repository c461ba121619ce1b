"""The resource accounting agrees with the model it describes and with published counts."""

from __future__ import annotations

import numpy as np
import pytest

from companion import accounting
from companion.tools.bench import flops_per_step
from companion.config import PRESETS, preset
from companion.model import Transformer


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_matches_the_built_model_for_every_preset(name):
    config = preset(name)
    built = Transformer(config, np.random.default_rng(0)).num_params()
    assert accounting.parameter_counts(config)["total"] == built


@pytest.mark.parametrize("changes", [
    dict(tie_weights=True), dict(tie_weights=False), dict(norm_placement="post"), dict(positions="sinusoidal"),
    dict(positions="rope"), dict(ffn="relu", bias=False), dict(family="llama"), dict(family="llama", norm="layernorm"),
    dict(family="llama", ffn="gelu", bias=True), dict(family="llama", bias=True),
    dict(family="llama", n_head=4, n_kv_head=2), dict(family="llama", n_head=4, n_kv_head=1, bias=True),
    dict(family="llama", ffn="gelu", bias=True), dict(attn_only=True), dict(family="llama", attn_only=True),
    dict(attn_only=True, norm_placement="post"),
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


ACTIVATION_VARIANTS = [dict(), dict(norm_placement="post"), dict(positions="sinusoidal"), dict(positions="rope"),
                       dict(ffn="relu", bias=False), dict(family="llama"), dict(family="llama", norm="layernorm"),
                       dict(family="llama", ffn="gelu", bias=True), dict(family="llama", norm_placement="post"),
                       dict(dtype="float64")]


def assert_activation_formula_matches(config, B, T):
    model = Transformer(config, np.random.default_rng(0))
    model.forward(np.random.default_rng(1).integers(0, config.vocab_size, (B, T)))
    measured = accounting.cached_activation_bytes(model)
    formula = accounting.activation_bytes(config, B, T)
    differing = [f"{k}: activation_bytes says {formula[k]:,} bytes, the model's caches hold {measured[k]:,}"
                 for k in accounting.ACTIVATION_COMPONENTS if formula[k] != measured[k]]
    # When a kernel changes what it caches, this names the component whose line in
    # accounting.activation_bytes must change with it.
    assert not differing, "; ".join(differing)
    assert formula["total"] == measured["total"] == sum(formula[k] for k in accounting.ACTIVATION_COMPONENTS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_activation_bytes_match_the_caches_of_every_preset(name):
    config = preset(name)
    assert_activation_formula_matches(config, 2, min(config.block_size, 13))


@pytest.mark.parametrize("changes", ACTIVATION_VARIANTS)
def test_activation_bytes_match_the_caches_of_every_variant(changes):
    assert_activation_formula_matches(preset("tiny", **changes), 3, 11)


def test_cached_bytes_leave_parameters_out_and_count_a_view_as_the_array_it_keeps_alive():
    config = preset("tiny")  # gpt: caches reference the weights (w of every Linear, the tied wte)
    model = Transformer(config, np.random.default_rng(0))
    model.forward(np.zeros((2, 8), dtype=np.int64))
    naive = sum(a.nbytes for _, m in model.named_modules() if m.cache is not None
                for a in accounting._arrays(m.cache))  # every array, views and weights included
    measured = accounting.cached_activation_bytes(model)["total"]
    weights = sum(a.nbytes for a in model.parameters().values())
    assert measured < naive - weights // 2, "the weights that caches reference were counted as activations"
    assert accounting.activation_bytes(config, 2, 8)["total"] == measured
    with pytest.raises(ValueError, match="dtype"):
        accounting.activation_bytes(config, 2, 8, dtype="int8")
    rope = preset("tiny", positions="rope")  # q and k are rotated copies; v is a view of qkv (2, 8, 3C)
    model = Transformer(rope, np.random.default_rng(0))
    model.forward(np.zeros((2, 8), dtype=np.int64))
    v = model.blocks[0].attn.cache[0][2]
    assert v.nbytes == 2 * 8 * 16 * 4 and accounting._root(v).nbytes == 3 * v.nbytes
    assert accounting.cached_activation_bytes(model) == accounting.activation_bytes(rope, 2, 8)


def test_the_component_table_adds_up_to_each_total():
    config = accounting.reference_config("llama-7b")
    table = accounting.by_component(config, 1, 16, "bfloat16")
    assert table["total"]["params"] == 6_738_415_616
    assert table["total"]["forward_flops"] == accounting.forward_flops(config, 1, 16)["total"]
    assert table["total"]["activation_bytes"] == accounting.activation_bytes(config, 1, 16, "bfloat16")["total"]
    assert table["head"]["params"] == 4096 * 32000 and table["norms"]["forward_flops"] == 0
