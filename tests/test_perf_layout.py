"""Where attention writes its result (chapter 11, "Making NumPy fast", section 8): the product
att @ v goes straight into (B, T, nh, hs) memory, so the layer's merge of the heads into
(B, T, C) is a view, not a copy; and the numbers are those of the plain product."""

import numpy as np

from companion.attention import attention_forward, causal_mask, softmax_rows


def test_attention_output_merges_into_b_t_c_without_a_copy():
    rng = np.random.default_rng(0)
    B, nh, T, hs = 2, 3, 5, 4
    q, k, v = (rng.standard_normal((B, nh, T, hs)).astype(np.float32) for _ in range(3))
    out, (_, _, _, att, scale) = attention_forward(q, k, v, causal_mask(T, T))
    assert out.shape == (B, nh, T, hs)
    merged = out.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)  # what CausalSelfAttention does
    assert np.shares_memory(merged, out), "the merge of the heads copied: att @ v was not written in (B, T, nh, hs) order"
    np.testing.assert_allclose(out, att @ v, rtol=1e-6, atol=1e-7)


def test_softmax_rows_sum_to_one_and_match_the_textbook_formula():
    # the reciprocal of each row's sum, then a multiplication: equal to exp / sum up to rounding
    rng = np.random.default_rng(1)
    s = rng.standard_normal((3, 4, 6, 6)).astype(np.float32) * 10
    s += np.where(causal_mask(6, 6), 0.0, -np.inf).astype(np.float32)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(softmax_rows(s), e / e.sum(axis=-1, keepdims=True), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(softmax_rows(s).sum(axis=-1), 1.0, rtol=1e-6)
