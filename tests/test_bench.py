"""The benchmark: its FLOP count is right (by hand, and by PyTorch's own FLOP counter), and a
2-step run reports every field. No timing is asserted: a unit test cannot know the machine."""

import json
import os

import numpy as np
import pytest

from companion import Transformer, preset
from companion.tools.bench import flops_per_step, run_bench, sgemm_peak
from companion.tools.cli import main


def test_flops_hand_count_tiny():
    # B=1, T=2, C=4, 2 heads, FFN 8, vocab 5, one layer. A matmul (m,k)@(k,n) costs 2mkn:
    cfg = preset("tiny", vocab_size=5, block_size=2, n_layer=1, n_head=2, n_embd=4, ffn_hidden=8)
    qkv = 2 * 2 * 4 * 12  # (2, 4) @ (4, 12)                  = 192
    scores = 2 * (2 * 2 * 2 * 2)  # 2 heads of (2, 2) @ (2, 2) = 32
    mix = 2 * (2 * 2 * 2 * 2)  # 2 heads of (2, 2) @ (2, 2)    = 32
    proj = 2 * 2 * 4 * 4  # (2, 4) @ (4, 4)                   = 64
    mlp = 2 * 2 * 4 * 8 + 2 * 2 * 8 * 4  # fc and proj       = 256
    head = 2 * 2 * 4 * 5  # (2, 4) @ (4, 5)                   = 80
    forward = qkv + scores + mix + proj + mlp + head  # 656
    got = flops_per_step(cfg, batch_size=1)
    assert got["forward"] == forward == 656
    assert got["total"] == 3 * 656  # backward: two matmuls of the same size per forward matmul
    # SwiGLU has three matrices of the same size instead of two
    swiglu = flops_per_step(cfg.replace(ffn="swiglu"), batch_size=1)
    assert swiglu["forward"] == forward + 2 * 2 * 4 * 8
    # batch size scales everything linearly
    assert flops_per_step(cfg, batch_size=3)["total"] == 3 * got["total"]


@pytest.mark.parametrize("overrides", [{}, {"family": "llama"}, {"tie_weights": False, "n_layer": 1}])
def test_flops_match_torch_flop_counter(overrides):
    torch = pytest.importorskip("torch", reason="torch's FlopCounterMode is the independent count")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from companion.tools.torch_twin import build_torch_model, copy_weights

    cfg = preset("tiny", **overrides)
    model = Transformer(cfg, np.random.default_rng(0))
    twin = build_torch_model(cfg)
    copy_weights(model, twin)
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, cfg.vocab_size, size=(3, cfg.block_size)))
    # the twin calls scaled_dot_product_attention; FlopCounterMode does not count the fused CPU
    # kernel, so the count runs on SDPA's reference ("math") backend, plain matmuls
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = twin(idx, idx)
        loss.backward()
    assert flops_per_step(cfg, batch_size=3)["total"] == counter.get_total_flops()


def test_sgemm_peak_is_a_rate():
    gflops = sgemm_peak(threads=1, n=128, repeats=2)
    assert np.isfinite(gflops) and gflops > 0


def test_run_bench_fields_small_config():
    cfg = preset("tiny", dtype="float32")
    r = run_bench(steps=2, warmup=1, threads=1, config=cfg, batch_size=2, memory=True, sgemm_n=128)
    c = r["companion"]
    assert r["config"] == "tiny" and r["params"] == Transformer(cfg, np.random.default_rng(0)).num_params()
    assert c["peak_step_alloc_bytes"] > 0
    if os.path.exists("/proc/self/status"):  # resident memory is Linux's VmHWM, measured in a child (bench_memory)
        assert c["rss_peak_bytes"] >= c["rss_base_bytes"] > 0
    else:  # macOS, Windows: no VmHWM to read, so the figure is missing rather than made up
        assert "rss_peak_bytes" not in c
    for key in ("median_s", "p25_s", "p75_s", "min_s", "tokens_per_second", "gflops", "fraction_of_sgemm_peak"):
        assert np.isfinite(c[key]) and c[key] > 0, key
    assert r["flops_per_step"] == flops_per_step(cfg, 2)["total"]
    assert c["tokens_per_second"] == pytest.approx(2 * cfg.block_size / c["median_s"])
    assert c["first_loss"] == pytest.approx(np.log(cfg.vocab_size), rel=0.05)  # ~uniform at init
    with pytest.raises(ValueError, match="steps must be >= 1"):
        run_bench(steps=0, config=cfg)


def test_interleaving_covers_every_step_once_in_order():
    from companion.tools.bench import _interleaving

    assert [list(b) for b in _interleaving(4, threads=1)] == [[0], [1], [2], [3]]  # step by step
    blocks = _interleaving(12, threads=2)
    assert [list(b) for b in blocks] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def test_vs_torch_with_two_threads_times_every_step_of_both():
    pytest.importorskip("torch", reason="bench --vs-torch times the PyTorch twin")
    cfg = preset("tiny", dtype="float32")
    r = run_bench(steps=6, warmup=1, threads=2, vs_torch=True, config=cfg, batch_size=2, memory=False, sgemm_n=128)
    assert r["threads"] == 2 and r["max_loss_diff"] < 1e-4  # the same steps, in blocks, on the same batches
    assert r["ratio_stepwise_median"] > 0 and np.isfinite(r["ratio_companion_over_torch"])


def test_cli_bench_two_steps_json(capsys):
    pytest.importorskip("torch", reason="bench --vs-torch times the PyTorch twin")
    assert main(["bench", "--steps", "2", "--warmup", "1", "--threads", "1", "--vs-torch", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    r = json.loads(out[-1])
    assert "ratio companion / torch" in "\n".join(out[:-1])  # the human report comes first
    for key in ("params", "threads", "flops_per_step", "sgemm_peak_gflops", "companion", "torch",
                "ratio_companion_over_torch", "ratio_stepwise_median", "max_loss_diff"):
        assert key in r, key
    assert r["threads"] == 1 and r["steps"] == 2 and r["batch_size"] == 12 and r["block_size"] == 64
    assert r["params"] == Transformer(preset("baby"), np.random.default_rng(0)).num_params()
    for side in ("companion", "torch"):
        for key in ("median_s", "tokens_per_second", "gflops"):
            assert r[side][key] > 0, (side, key)
        # resident memory is Linux's VmHWM (bench_memory); elsewhere it is missing, not made up
        assert r[side]["rss_peak_bytes"] > 0 if os.path.exists("/proc/self/status") else "rss_peak_bytes" not in r[side]
    assert r["companion"]["peak_step_alloc_bytes"] > 0
    assert r["ratio_companion_over_torch"] == pytest.approx(r["companion"]["median_s"] / r["torch"]["median_s"])
    # same weights, same batches: the two frameworks compute the same losses (float32 rounding)
    assert r["max_loss_diff"] < 1e-3
    assert abs(r["companion"]["first_loss"] - r["torch"]["first_loss"]) < 1e-4


def test_profile_rows_account_for_the_step_and_leave_the_model_as_it_was():
    from companion.tools.bench import run_profile

    cfg = preset("tiny", dtype="float32")
    r = run_profile(steps=3, warmup=1, threads=1, config=cfg, batch_size=2)
    c = r["companion"]
    ops = {row["op"] for row in c["rows"]}
    for op in ("linear (matmuls)", "attention core (scores, mask, softmax, mix)", "norm", "activation (GELU / ReLU)",
               "optimizer (AdamW)", "cross-entropy", "embeddings", "zero_grad"):
        assert op in ops, op
    total = sum(row["total_ms"] for row in c["rows"])
    # the rows are self times of the whole step: together they are nearly all of it, never more
    assert 0.7 * c["step_ms"] <= total <= 1.001 * c["step_ms"]
    assert all(row["forward_ms"] >= 0 and row["backward_ms"] >= 0 for row in c["rows"])
    assert [row["total_ms"] for row in c["rows"]] == sorted((row["total_ms"] for row in c["rows"]), reverse=True)


def test_profiled_removes_its_timers():
    from companion import AdamW
    from companion.tools.profile import StepProfile, profiled

    model = Transformer(preset("tiny"), np.random.default_rng(0))
    opt = AdamW(model.parameters(), model.gradients())
    with profiled(model, opt, StepProfile()):
        assert "forward" in vars(model.blocks[0].attn)
    assert all("forward" not in vars(m) and "backward" not in vars(m) for _, m in model.named_modules())
    assert "step" not in vars(opt) and "zero_grad" not in vars(model)


def test_cli_profile_vs_torch(capsys):
    pytest.importorskip("torch", reason="the profile's second table is torch.profiler's")
    assert main(["bench", "--profile", "--vs-torch", "--steps", "2", "--warmup", "1", "--threads", "1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    text, r = "\n".join(out[:-1]), json.loads(out[-1])
    assert "linear (matmuls)" in text and "aten::" in text and "Self CPU" in text
    assert r["torch"]["rows"] and all(row["self_ms"] >= 0 for row in r["torch"]["rows"])
    assert r["companion"]["step_ms"] > 0 and r["torch"]["step_ms"] > 0


def test_recipe_side_by_side_short():
    pytest.importorskip("torch", reason="the recipe trains the PyTorch twin beside the companion")
    from companion.tools.recipe import format_recipe, run_recipe

    r = run_recipe(steps=4, threads=1, max_chars=20_000, max_eval_windows=8)
    assert r["recipe"]["steps"] == 4 and r["recipe"]["batch_size"] == 12 and r["val_windows"] == 8
    assert r["config"]["bias"] is False and r["config"]["tie_weights"] is True and r["config"]["n_layer"] == 4
    assert r["wall_s"]["companion"] > 0 and r["wall_s"]["torch"] > 0
    # same weights, same batches, same schedule: after 4 steps the two agree to float32 rounding
    assert abs(r["val_loss_diff"]) < 1e-3
    assert abs(r["last_train_loss"]["companion"] - r["last_train_loss"]["torch"]) < 1e-3
    assert r["val_loss"]["companion"] < np.log(r["vocab_size"]) + 0.1  # a real loss, near or below uniform
    assert "final validation loss" in format_recipe(r)
