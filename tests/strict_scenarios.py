"""Scenarios run once under the NumPy backend and once under the strict CuPy double
(COMPANION_BACKEND=strict), each in its own process; tests/test_strict_backend.py compares them.

    python tests/strict_scenarios.py SCENARIO OUT_JSON
"""

from __future__ import annotations

import json
import sys
import tempfile

import numpy as np

import companion
from companion.backend import BACKEND, asarray, to_numpy
from companion.generate import generate
from companion.loss import cross_entropy_backward, cross_entropy_forward


def train_steps() -> dict:
    model = companion.Transformer(companion.preset("tiny"), np.random.default_rng(0))
    opt = companion.AdamW(model.parameters(), model.gradients(), lr=1e-2)
    rng, losses = np.random.default_rng(1), []
    for _ in range(3):
        idx = asarray(rng.integers(0, 16, size=(2, 8)))  # drawn on the host, moved to the device
        targets = asarray(rng.integers(0, 16, size=(2, 8)))
        loss, cache = cross_entropy_forward(model.forward(idx), targets)
        model.zero_grad()
        model.backward(cross_entropy_backward(cache))
        companion.clip_grad_norm(model.gradients(), 1.0)
        opt.step()
        losses.append(float(loss))  # the one scalar a step sends to the host
    return {"losses": losses, "wte": to_numpy(model.wte.params["weight"]).ravel()[:8].tolist()}


def generation() -> dict:
    model = companion.Transformer(companion.preset("tiny", family="llama"), np.random.default_rng(0))
    greedy = generate(model, [1, 5, 7], 6, greedy=True)
    sampled = generate(model, [1, 5, 7], 6, rng=np.random.default_rng(3), top_k=5)
    return {"greedy": [int(t) for t in greedy], "sampled": [int(t) for t in sampled]}


def checkpoint() -> dict:
    model = companion.Transformer(companion.preset("tiny"), np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as d:
        companion.save_checkpoint(d, model)
        back = companion.load_checkpoint(d)
    loaded = back["model"] if isinstance(back, dict) else getattr(back, "model", back)
    same = all(np.array_equal(to_numpy(a), to_numpy(b))
               for a, b in zip(model.parameters().values(), loaded.parameters().values()))
    return {"same": same, "n": len(loaded.parameters())}


def gradient_check() -> dict:
    model = companion.Transformer(companion.preset("tiny", dtype="float64"), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    idx, targets = asarray(rng.integers(0, 16, (2, 6))), asarray(rng.integers(0, 16, (2, 6)))
    errors = companion.check_model(model, idx, targets, max_entries=10, rng=np.random.default_rng(2))
    return {"max_error": max(errors.values())}


def planted_leak() -> dict:
    model = companion.Transformer(companion.preset("tiny"), np.random.default_rng(0))
    try:
        np.asarray(model.wte.params["weight"])  # a stray host conversion of a device array
    except TypeError as err:
        return {"caught": str(err)}
    return {"caught": None}


SCENARIOS = {f.__name__: f for f in (train_steps, generation, checkpoint, gradient_check, planted_leak)}

if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    result = SCENARIOS[name]()
    result["backend"] = BACKEND
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
