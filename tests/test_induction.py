"""Repeated-token batches: the repeat is exact, the masks split the targets, the measurements read a model."""

from __future__ import annotations

import numpy as np
import pytest

from companion.config import preset
from companion.induction import OFFSETS, first_step_above, first_step_below, measure, repeated_tokens
from companion.interpret import induction_scores
from companion.model import Transformer


def test_each_sequence_repeats_its_own_period_and_the_masks_split_the_targets():
    b = repeated_tokens(np.random.default_rng(0), 50, 20, 30, min_period=3, max_period=9, first_id=4)
    assert b.idx.shape == b.targets.shape == b.repeated.shape == b.first.shape == (50, 20)
    assert b.idx.min() >= 4 and b.idx.max() < 30
    assert set(b.periods.tolist()) <= set(range(3, 10)) and len(set(b.periods.tolist())) > 3
    np.testing.assert_array_equal(b.targets[:, :-1], b.idx[:, 1:])  # targets are the next tokens
    for row, p in enumerate(b.periods):
        seq = np.append(b.idx[row], b.targets[row, -1])  # (T + 1,)
        np.testing.assert_array_equal(seq[p:], seq[:-p])  # period p exactly
        assert len(set(seq[:p].tolist())) == p  # a period's tokens are all different: induction is unambiguous
        assert b.repeated[row].tolist() == [float(t >= p) for t in range(20)]
        assert b.first[row].tolist() == [float(t <= p - 2) for t in range(20)]
    assert np.all(b.repeated * b.first == 0)  # no target in both parts
    with pytest.raises(ValueError, match="max_period"):
        repeated_tokens(np.random.default_rng(0), 2, 10, 30, min_period=4, max_period=10)
    with pytest.raises(ValueError, match="all different"):
        repeated_tokens(np.random.default_rng(0), 2, 40, 12, min_period=4, max_period=10, first_id=4)
    with pytest.raises(TypeError, match="Generator"):
        repeated_tokens(0, 2, 10, 30)


def test_stop_keeps_the_first_repeat_alone():
    T, p = 12, 3
    att = np.zeros((1, 1, T, T))
    att[0, 0, 0, 0] = 1.0
    i = np.arange(1, T)
    earliest = np.where((i + 1) % p == 0, p, (i + 1) % p)  # the first key (>= 1) holding the next token
    att[0, 0, i, earliest] = 1.0  # every query looks at the earliest continuation of its token
    assert induction_scores(att, p, 2 * p)[0] == 1.0  # on the first repeat the earliest is the previous one
    assert induction_scores(att, p)[0] == pytest.approx(3 / 9)  # later repeats have several
    with pytest.raises(ValueError, match="stop"):
        induction_scores(att, p, p)


def test_measure_reports_losses_and_per_head_scores_that_ablation_would_see():
    model = Transformer(preset("tiny", attn_only=True, dtype="float64"), np.random.default_rng(0))
    b = repeated_tokens(np.random.default_rng(1), 16, 12, 16, min_period=3, first_id=4)
    m = measure(model, b)
    assert m["previous_token"].shape == m["induction"].shape == (2, 2)
    assert abs(m["repeated_loss"] - np.log(16)) < 0.5 and abs(m["first_loss"] - np.log(16)) < 0.5  # untrained
    assert np.all((m["induction"] > 0) & (m["induction"] < 1))
    assert m["by_offset"].shape == (len(OFFSETS), 2, 2)
    np.testing.assert_array_equal(m["by_offset"][OFFSETS.index(1)], m["induction"])  # k = 1 is the induction key


def test_first_step_below_and_above():
    steps, values = [0, 10, 20, 30], [3.0, 2.5, 1.0, 0.5]
    assert first_step_below(steps, values, 1.75) == 20
    assert first_step_below(steps, values, 0.1) is None
    assert first_step_above(steps, [0.1, 0.2, 0.5, 0.6], 0.3) == 20
