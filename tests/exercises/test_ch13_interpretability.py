"""Graded tests, chapter 13: the induction score, and removing one head through W_O's rows.

13.1 is checked on hand-made attention patterns whose scores are known, and on random patterns
against the reference; 13.2 loads the learner's matrix into a model and compares its logits with
the same model whose head had its values zeroed (the head then contributes nothing).
"""

import numpy as np
import pytest

from companion import Transformer, preset
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array

CHAPTER = "ch13"
pytestmark = pytest.mark.ch13


def random_attention(rng, B, nh, T):
    scores = rng.standard_normal((B, nh, T, T)) * 2  # (B, nh, T, T)
    scores[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = -np.inf  # causal
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(att, periods, offset=1, start=None, all_repeats=False):
    B, T = att.shape[0], att.shape[-1]
    out = []
    for b in range(B):
        p = int(periods[b])
        i = np.arange(p if start is None else start, T if all_repeats else min(2 * p, T))  # the first repeat
        i = i[i - p + offset >= 0]
        out.append(att[b, :, i, i - p + offset].mean(axis=0))
    return np.mean(out, axis=0)


# ------------------------------------------------------------------ 13.1 induction score


@pytest.mark.exercise("13.1", "induction_scores")
@pytest.mark.points(2)
def test_induction_score_of_hand_made_heads(impl):
    B, T, p = 1, 10, 4
    att = np.zeros((B, 3, T, T))
    att[0, :, 0, 0] = 1.0
    i = np.arange(1, T)
    att[0, 0, i, i - 1] = 1.0  # head 0: previous token
    att[0, 1, :p, 0] = 1.0
    att[0, 1, np.arange(p, T), np.arange(1, T - p + 1)] = 1.0  # head 1: induction, key i - p + 1
    att[0, 2] = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # head 2: uniform
    got = expect_array(impl.induction_scores(att, np.array([p])), "induction_scores(att, periods)", (3,))
    bugs = {"the weight on the earlier occurrence itself (key i - p), not on the token after it (key i - p + 1)":
            reference(att, [p], offset=0)}
    expect_close(got[1:2], [1.0], "the induction head's score (head 1 attends to key i - p + 1 at every query i >= p)",
                 bugs={k: v[1:2] for k, v in bugs.items()})
    expect_close(got[0:1], [0.0], "the previous-token head's score (it never attends to key i - p + 1)",
                 hint="a previous-token head attends to i - 1, which is i - p + 1 only when p = 2")
    expect_close(got[2:3], reference(att, [p])[2:3], "the uniform head's score",
                 bugs={"an average over every query, including those before the repeat (i < p)":
                       reference(att, [p], start=p - 1)[2:3]},
                 hint="average only over queries i = p .. min(2p, T) - 1 (the first repeat)")


@pytest.mark.exercise("13.1", "induction_scores")
@pytest.mark.points(2)
def test_induction_score_with_a_period_per_sequence(impl):
    rng = np.random.default_rng(0)
    B, nh, T = 5, 4, 12
    att = random_attention(rng, B, nh, T)
    periods = np.array([2, 3, 5, 6, 4])
    want = reference(att, periods)
    flat = np.mean(np.concatenate([att[b, :, np.arange(p, min(2 * p, T)), np.arange(1, min(p + 1, T - p + 1))]
                                   for b, p in enumerate(periods)]), axis=0)  # every query pooled: a different average
    got = impl.induction_scores(att.copy(), periods.copy())
    expect_close(got, want, "induction_scores on random attention with a period per sequence", bugs={
        "the same period (the first sequence's) for every sequence": reference(att, np.full(B, periods[0])),
        "the weight on key i - p instead of i - p + 1": reference(att, periods, offset=0),
        "queries before the repeat included (start at i = 0, not i = p)": reference(att, periods, start=0),
        "every repeat averaged (queries up to T - 1), not the first repeat alone (up to 2p - 1)":
            reference(att, periods, all_repeats=True),
        "all queries pooled before averaging, instead of a mean per sequence and then over sequences": flat,
    })


# ------------------------------------------------------------------ 13.2 zero ablation through W_O


@pytest.mark.exercise("13.2", "zero_head_rows")
@pytest.mark.points(2)
def test_zero_head_rows_leaves_the_input_alone_and_zeroes_rows(impl):
    rng = np.random.default_rng(1)
    C, n_head, head = 8, 4, 2
    w = rng.standard_normal((C, C))
    saved = w.copy()
    got = expect_array(impl.zero_head_rows(w, head, n_head), "zero_head_rows(w_proj, 2, 4)", (C, C))
    expect(np.array_equal(w, saved), "w_proj was changed in place: return a copy (w_proj.copy()) and zero that")
    want = saved.copy()
    want[4:6] = 0.0
    cols = saved.copy()
    cols[:, 4:6] = 0.0
    off = saved.copy()
    off[2:4] = 0.0
    expect_close(got, want, "zero_head_rows(w_proj, head=2, n_head=4)", bugs={
        "columns zeroed instead of rows: that silences output channels of every head, not head 2's input":
            cols,
        "the rows of head 1 zeroed (rows 2:4 are head 1's; head 2 owns rows 4:6 with head_size 2)": off,
    })


@pytest.mark.exercise("13.2", "zero_head_rows")
@pytest.mark.points(2)
def test_zero_head_rows_removes_the_head_from_a_model(impl):
    model = Transformer(preset("tiny", dtype="float64"), np.random.default_rng(0))
    rng = np.random.default_rng(2)
    for p in model.parameters().values():
        p += rng.normal(0.0, 0.3, size=p.shape)
    idx = rng.integers(0, 16, size=(2, 9))
    C, n_head, hs = model.config.n_embd, model.config.n_head, model.config.head_size
    layer, head = 1, 1
    proj = model.blocks[layer].attn.c_proj.params
    saved = proj["w"].copy()
    new = expect_array(impl.zero_head_rows(saved.copy(), head, n_head), "zero_head_rows", saved.shape)
    proj["w"][...] = new
    ablated = model.forward(idx).copy()
    proj["w"][...] = saved
    c_attn = model.blocks[layer].attn.c_attn.params
    cols = slice(2 * C + head * hs, 2 * C + (head + 1) * hs)  # the head's value channels
    c_attn["w"][:, cols], c_attn["b"][cols] = 0.0, 0.0
    silenced = model.forward(idx)
    expect_close(ablated, silenced, "the model's logits with your W_O (head 1 of layer 1 removed)",
                 hint="they should equal the logits of the same model whose head 1 outputs zeros", atol=1e-10)
