"""Graded tests, chapter 12: attention with the online softmax, a GPT-2's parameter count and
the bytes of a KV cache.

The references are written here (plain softmax attention) or taken from the companion's
accounting (checked against GPT-2 small's and LLaMA-7B's published counts); each likely bug
is computed beside them so that a failure can name it.
"""

import math
import tracemalloc

import numpy as np
import pytest

from companion import accounting
from companion.config import ModelConfig
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array

CHAPTER = "ch12"
pytestmark = pytest.mark.ch12


def plain_attention(q, k, v, scale=True):
    s = q @ k.T / (math.sqrt(q.shape[1]) if scale else 1.0)  # (T_q, T_k)
    a = np.exp(s - s.max(axis=1, keepdims=True))
    return (a / a.sum(axis=1, keepdims=True)) @ v  # (T_q, hs)


def without_rescaling(q, k, v, block_k):
    """The likely bug: sums from earlier blocks are never multiplied by exp(m - m_new)."""
    q = q / math.sqrt(q.shape[1])
    m, l, o = np.full((len(q), 1), -np.inf), np.zeros((len(q), 1)), np.zeros((len(q), v.shape[1]))
    for j in range(0, len(k), block_k):
        s = q @ k[j:j + block_k].T
        m = np.maximum(m, s.max(axis=1, keepdims=True))
        p = np.exp(s - m)
        l, o = l + p.sum(axis=1, keepdims=True), o + p @ v[j:j + block_k]
    return o / l


# ------------------------------------------------------------------ 12.1 online softmax


@pytest.mark.exercise("12.1", "online_softmax_attention")
@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_online_softmax_equals_plain_attention(impl, seed):
    rng = np.random.default_rng(seed)
    T_q, T_k, hs = int(rng.integers(1, 9)), int(rng.integers(5, 40)), int(rng.choice([3, 4, 7]))
    q, k, v = (rng.standard_normal((n, hs)) * 2.0 for n in (T_q, T_k, T_k))
    want = plain_attention(q, k, v)
    for block_k in (1, 4, 7, T_k + 3):  # uneven last block, and one block bigger than all the keys
        got = expect_array(impl.online_softmax_attention(q.copy(), k.copy(), v.copy(), block_k),
                           f"online_softmax_attention (block_k={block_k})", (T_q, hs))
        expect_close(got, want, f"online_softmax_attention with T_q={T_q}, T_k={T_k}, hs={hs}, block_k={block_k}",
                     bugs={"the sums l and o from earlier blocks are not rescaled by exp(m - m_new) when the "
                           "maximum grows": without_rescaling(q, k, v, block_k),
                           "the scores are not divided by sqrt(hs)": plain_attention(q, k, v, scale=False)},
                     rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("12.1", "online_softmax_attention")
@pytest.mark.points(1)
def test_online_softmax_survives_large_scores(impl):
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((3, 4)) * 40.0, rng.standard_normal((20, 4)) * 40.0, rng.standard_normal((20, 4))
    with np.errstate(over="ignore", invalid="ignore"):
        got = expect_array(impl.online_softmax_attention(q, k, v, 6), "online_softmax_attention", (3, 4))
    expect(np.isfinite(got).all(), "scores in the hundreds give inf or NaN: subtract the running maximum m "
                                   "before exp, so that no exp ever sees a positive number")
    expect_close(got, plain_attention(q, k, v), "online_softmax_attention on scores in the hundreds",
                 rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("12.1", "online_softmax_attention")
@pytest.mark.points(1)
def test_online_softmax_never_holds_the_score_matrix(impl):
    rng = np.random.default_rng(6)
    T_q, T_k, hs, block_k = 256, 4096, 8, 64
    q, k, v = rng.standard_normal((T_q, hs)), rng.standard_normal((T_k, hs)), rng.standard_normal((T_k, hs))
    full = T_q * T_k * 8  # bytes of the (T_q, T_k) float64 score matrix
    tracemalloc.start()
    try:
        got = impl.online_softmax_attention(q, k, v, block_k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expect(peak < full / 4, f"online_softmax_attention allocated {peak / 1e6:.1f} MB at once; the whole (T_q, T_k) "
                            f"score matrix is {full / 1e6:.1f} MB: build only a (T_q, block_k) tile of scores at a time")
    expect_close(expect_array(got, "online_softmax_attention", (T_q, hs)), plain_attention(q, k, v),
                 "online_softmax_attention with T_k=4096", rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ 12.2 GPT-2 parameters


def gpt2_counts(V, T, L, C):
    """The right count (from the companion's accounting) and the likely wrong ones."""
    right = accounting.parameter_counts(ModelConfig(family="gpt", vocab_size=V, block_size=T, n_layer=L,
                                                    n_head=1, n_embd=C, tie_weights=True))["total"]
    biases = L * (3 * C + C + 4 * C + C + 4 * C) + 2 * C  # linear biases, LayerNorm biases, final norm bias
    return right, {
        "the output head is counted, but it is tied to the token embedding and adds nothing": right + V * C,
        "the biases (of every linear layer and LayerNorm) are missing": right - biases,
        "the learned position embeddings (block_size x n_embd) are missing": right - T * C,
        "the final LayerNorm (2 n_embd) is missing": right - 2 * C,
        "the MLP's hidden width should be 4 * n_embd": right - L * (4 * C * C + 3 * C),
    }


def check_count(got, want, bugs, what):
    expect(isinstance(got, (int, np.integer)) or (isinstance(got, float) and got.is_integer()),
           f"{what} should be a whole number, got {got!r}")
    for bug, value in bugs.items():
        expect(got != value or value == want, f"{what}: got {int(got):,}, expected {want:,}: {bug}")
    expect(got == want, f"{what}: got {int(got):,}, expected {want:,}")


@pytest.mark.exercise("12.2", "gpt2_parameter_count")
@pytest.mark.points(1)
def test_gpt2_small_has_124_million_parameters(impl):
    want, bugs = gpt2_counts(50257, 1024, 12, 768)
    assert want == 124_439_808  # the published count: the reference itself is right
    check_count(impl.gpt2_parameter_count(50257, 1024, 12, 768), want, bugs, "gpt2_parameter_count for GPT-2 small")


@pytest.mark.exercise("12.2", "gpt2_parameter_count")
@pytest.mark.points(1)
@pytest.mark.parametrize("sizes", [(65, 64, 4, 128), (11, 7, 3, 5), (1000, 32, 1, 48)])
def test_gpt2_parameter_count_of_other_sizes(impl, sizes):
    want, bugs = gpt2_counts(*sizes)
    check_count(impl.gpt2_parameter_count(*sizes), want, bugs,
                "gpt2_parameter_count(vocab_size={}, block_size={}, n_layer={}, n_embd={})".format(*sizes))


# ------------------------------------------------------------------ 12.3 KV-cache bytes


@pytest.mark.exercise("12.3", "kv_cache_bytes")
@pytest.mark.points(2)
@pytest.mark.parametrize("shape", [
    dict(n_layer=32, n_head=32, n_kv_head=32, n_embd=4096, seq_len=2048, batch_size=1, dtype="bfloat16"),  # LLaMA-7B
    dict(n_layer=32, n_head=32, n_kv_head=8, n_embd=4096, seq_len=8192, batch_size=4, dtype="bfloat16"),  # grouped
    dict(n_layer=5, n_head=6, n_kv_head=1, n_embd=192, seq_len=128, batch_size=3, dtype="float32"),  # multi-query
])
def test_kv_cache_bytes(impl, shape):
    s = dict(shape)
    config = ModelConfig(family="llama", vocab_size=10, block_size=s["seq_len"], n_layer=s["n_layer"],
                         n_head=s["n_head"], n_kv_head=s["n_kv_head"], n_embd=s["n_embd"])
    want = accounting.kv_cache_bytes(config, s["batch_size"], s["seq_len"], s["dtype"])
    hs, size = config.head_size, accounting.BYTES_PER[s["dtype"]]
    args = (s["n_layer"], s["n_head"], s["n_kv_head"], hs, s["seq_len"], s["batch_size"], size)
    bugs = {
        "every query head is counted; the cache stores only the n_kv_head shared heads": want * s["n_head"] // s["n_kv_head"],
        "only keys (or only values) are counted; the cache holds both": want // 2,
        "that is bits, not bytes": want * 8,
    }
    check_count(impl.kv_cache_bytes(*args), want, bugs, f"kv_cache_bytes{args}")
