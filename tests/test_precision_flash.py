"""bfloat16 emulation (bit-exact against torch.bfloat16) and tiled attention (exact against the plain one)."""

from __future__ import annotations

import numpy as np
import pytest

from companion.attention import attention_forward, causal_mask
from companion.flash_attention import flash_attention_forward, peak_score_bytes
from companion.precision import largest_finite, round_to_bf16, round_to_fp16


def awkward_float32s(rng) -> np.ndarray:
    """Normal, huge, tiny and subnormal values, exact ties, the largest finite, inf and NaN."""
    normal = (rng.standard_normal(20_000) * 10.0 ** rng.integers(-30, 30, 20_000)).astype(np.float32)
    raw = rng.integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)  # every bit pattern
    ties = (rng.integers(0, 2**16, 2000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exactly half-way
    special = np.array([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).max,
                        -np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45], dtype=np.float32)
    return np.concatenate([normal, raw, ties, special])


def test_bf16_rounding_is_bit_exact_against_torch():
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for bfloat16 rounding")
    x = awkward_float32s(np.random.default_rng(0))
    ours = round_to_bf16(x)
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))


def test_bf16_keeps_7_mantissa_bits_and_rounds_ties_to_even():
    one_plus = np.array([1 + 2**-7, 1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)
    # 1 + 2^-7 is representable; 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> the even one, 1;
    # 1 + 3*2^-8 is a tie between 1 + 2^-7 and 1 + 2^-6 -> the even one, 1 + 2^-6.
    assert round_to_bf16(one_plus).tolist() == [1 + 2**-7, 1.0, 1 + 2**-6]
    with pytest.raises(TypeError, match="float32"):
        round_to_bf16(np.ones(3))


def test_fp16_overflows_where_bf16_does_not():
    x = np.array([70000.0, 1e30], dtype=np.float32)
    assert np.isinf(round_to_fp16(x)).all()
    assert np.isfinite(round_to_bf16(x)).all()
    assert largest_finite("float16") == 65504.0
    assert largest_finite("bfloat16") == pytest.approx(3.3895e38, rel=1e-4)
    with pytest.raises(ValueError, match="fmt"):
        largest_finite("int8")


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("T_q,T_k,bq,bk", [(37, 37, 16, 16), (37, 37, 5, 11), (1, 29, 4, 8), (7, 20, 64, 3)])
def test_tiled_attention_equals_the_plain_one(dtype, tol, T_q, T_k, bq, bk):
    rng = np.random.default_rng(T_q * 100 + T_k)
    q = rng.standard_normal((2, 3, T_q, 8)).astype(dtype)  # (B, nh, T_q, hs)
    # float64 gets larger scores, so the running maximum changes often; float32 gets unit-scale
    # inputs, where the plain float32 attention is itself within about 1e-6 of the exact result
    k = rng.standard_normal((2, 3, T_k, 8)).astype(dtype) * (3 if dtype == np.float64 else 1)
    v = rng.standard_normal((2, 3, T_k, 8)).astype(dtype)
    want, _ = attention_forward(q, k, v, causal_mask(T_q, T_k))
    got = flash_attention_forward(q, k, v, causal=True, block_q=bq, block_k=bk)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    full, _ = attention_forward(q, k, v, np.ones((T_q, T_k), dtype=bool))
    np.testing.assert_allclose(flash_attention_forward(q, k, v, causal=False, block_q=bq, block_k=bk), full,
                               rtol=0, atol=tol)


def test_tiled_attention_refuses_bad_shapes_and_counts_its_memory():
    q = np.zeros((1, 1, 4, 2))
    with pytest.raises(ValueError, match="T_q <= T_k"):
        flash_attention_forward(q, q[:, :, :2], q[:, :, :2])
    with pytest.raises(ValueError, match="block sizes"):
        flash_attention_forward(q, q, q, block_q=0)
    assert peak_score_bytes(1024, 1024, 1, 12, 4) == 1024 * 1024 * 12 * 4
    assert peak_score_bytes(1024, 1024, 1, 12, 4, 64, 64) == 64 * 64 * 12 * 4
