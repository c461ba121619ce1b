"""Graded tests, chapter 10: batches, and a training loop that reaches a target accuracy.

The task: a stream in which token t is always followed by PERM[t] (a fixed permutation).
A correct loop takes a tiny model to (nearly) 100% next-token accuracy in a few seconds; a
loop that does not zero its gradients, shifts its targets wrongly or never steps does not.
"""

import numpy as np
import pytest

from companion import Transformer, preset
from companion.grading.adapter import expect
from companion.grading.messages import expect_array, expect_tuple

CHAPTER = "ch10"
pytestmark = pytest.mark.ch10
TARGET_ACCURACY = 0.95


def stream(n=3000, V=16, seed=0):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(V)
    data = np.empty(n, dtype=np.int64)
    data[0] = 0
    for i in range(1, n):
        # mostly the permutation, with a random restart now and then so every token occurs
        data[i] = perm[data[i - 1]] if rng.random() > 0.1 else rng.integers(V)
    return data, perm


# ------------------------------------------------------------------ 10.1 get_batch


@pytest.mark.exercise("10.1", "get_batch")
@pytest.mark.points(2)
def test_get_batch_windows(impl):
    data = np.arange(100) * 3  # distinct values: a window's start can be read off it
    got = expect_tuple(impl.get_batch(data, 8, 32, np.random.default_rng(0)), 2, "get_batch must return (x, y)")
    x, y = (expect_array(a, name, dtype=None) for a, name in zip(got, "xy"))
    expect(x.shape == (32, 8) and y.shape == (32, 8), f"x and y should have shape (32, 8), got {x.shape} and {y.shape}")
    expect(x.dtype.kind in "iu" and y.dtype.kind in "iu", "x and y must be integer token ids")
    for row_x, row_y in zip(x, y):
        start = row_x[0] // 3
        expect(np.array_equal(row_x, data[start:start + 8]), "each row of x must be a contiguous window of data")
        expect(not np.array_equal(row_y, row_x), "targets off by one: y equals x; y must be the window shifted by one")
        expect(not np.array_equal(row_y, data[start + 2:start + 10]), "targets off by one: y is shifted by two positions")
        expect(np.array_equal(row_y, data[start + 1:start + 9]), "y must be x's window shifted by one: y[t] = data[i + t + 1]")


@pytest.mark.exercise("10.1", "get_batch")
@pytest.mark.points(1)
def test_get_batch_covers_the_data(impl):
    data = np.arange(20)
    x, y = expect_tuple(impl.get_batch(data, 4, 2000, np.random.default_rng(1)), 2, "get_batch must return (x, y)")
    x = expect_array(x, "x", (2000, 4), dtype=None)
    starts = set(x[:, 0].tolist())
    expect(max(starts) == 15, f"the last possible window (start 15 = len(data) - block_size - 1) was never drawn; "
                              f"largest start drawn {max(starts)} (use rng.integers(0, len(data) - block_size))")
    expect(min(starts) == 0, "the first window (start 0) was never drawn")
    expect(expect_array(y, "y", (2000, 4), dtype=None).max() <= 19, "a window ran past the end of the data")


# ------------------------------------------------------------------ 10.2 training loop


def accuracy(model, data, rng, block_size=16):
    starts = rng.integers(0, len(data) - block_size, size=64)
    x = np.stack([data[i:i + block_size] for i in starts])  # (B, T)
    y = np.stack([data[i + 1:i + block_size + 1] for i in starts])
    pred = model.forward(x).argmax(-1)  # (B, T)
    return float((pred == y).mean())


@pytest.mark.exercise("10.2", "train")
@pytest.mark.points(4)
def test_training_reaches_target_accuracy(impl):
    data, _ = stream()
    train_data, test_data = data[:2400], data[2400:]
    model = Transformer(preset("tiny", n_layer=1, block_size=16), np.random.default_rng(0))
    before = accuracy(model, test_data, np.random.default_rng(5))
    steps = 120
    losses = impl.train(model, train_data, steps, 16, 16, 1e-2, np.random.default_rng(1))
    expect(hasattr(losses, "__len__") and len(losses) == steps, f"train should return {steps} losses, one per step")
    losses = np.asarray(losses, dtype=float)
    expect(np.all(np.isfinite(losses)), "a training loss is NaN or inf: is the learning rate right? the gradients clipped?")
    after = accuracy(model, test_data, np.random.default_rng(5))
    # with a 10% random restart, the best possible accuracy is about 0.9 + 0.1/16
    ceiling = 0.9 + 0.1 / 16
    expect(losses[-10:].mean() < losses[:10].mean() * 0.5,
           f"the loss did not fall (first 10 steps {losses[:10].mean():.3f}, last 10 {losses[-10:].mean():.3f}): "
           "is the optimizer stepping on gradients from model.backward, zeroed before each backward?")
    expect(not (losses[-10:].mean() < 0.1 and after < 0.5),
           f"the training loss fell to {losses[-10:].mean():.3f} yet next-token accuracy is {after:.3f}: targets off by one "
           "(the model was trained to copy its input: y must be x shifted by one)")
    expect(after >= TARGET_ACCURACY * ceiling,
           f"next-token accuracy {after:.3f} after training (from {before:.3f}), target {TARGET_ACCURACY * ceiling:.3f} "
           f"({TARGET_ACCURACY:.0%} of the best possible {ceiling:.3f}): check that targets are the inputs shifted by one, "
           "that gradients are zeroed every step, and the learning-rate schedule")
