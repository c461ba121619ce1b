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
    return {"losses": losses, "wte": to_numpy(model.wte.params["w"]).ravel()[:8].tolist()}


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
        np.asarray(model.wte.params["w"])  # a stray host conversion of a device array
    except TypeError as err:
        return {"caught": str(err)}
    return {"caught": None}


def text_task_training() -> dict:
    """The course's own training loop on the text task: batches drawn on the host, moved per step."""
    from companion.tasks import make_task
    from companion.train import default_train_config, train

    task = make_task("text", seed=0, max_chars=20000, block_size=32)
    model = companion.Transformer(companion.preset("baby", vocab_size=task.tokenizer.vocab_size, block_size=32,
                                                   n_layer=1, n_embd=32), np.random.default_rng(0))
    cfg = default_train_config(task, steps=3, batch_size=4, eval_every=0, eval_size=4, warmup_steps=1)
    history = train(model, task, cfg, np.random.default_rng(1), progress=False)
    val = {k: v for k, v in history.last.items() if k != "seconds"}  # the wall clock differs run to run
    return {"losses": history.train_losses, "val": val}


def evaluation() -> dict:
    """evaluate() on ListOps (teacher-forced loss and accuracy, greedy exact match) and on text."""
    from companion.evaluate import evaluate
    from companion.tasks import make_task

    task = make_task("listops", seed=0)
    model = companion.Transformer(companion.preset("listops"), np.random.default_rng(0))
    listops = evaluate(model, task, "val", max_problems=24)
    text_task = make_task("text", seed=0, max_chars=20000, block_size=32)
    text_model = companion.Transformer(companion.preset("baby", vocab_size=text_task.tokenizer.vocab_size,
                                                        block_size=32, n_layer=1, n_embd=32), np.random.default_rng(0))
    return {"listops": listops, "text": evaluate(text_model, text_task, "val", max_problems=4)}


def visualizer_data() -> dict:
    """The visualizers' data (companion.viz) and the interpretability scores: host arrays at the edge."""
    from companion import interpret
    from companion.tokenizers import CharTokenizer
    from companion.viz import run_model, take_snapshot
    from companion.viz.static import StaticExplorer

    tok = CharTokenizer("()0123456789 aimnx")
    model = companion.Transformer(companion.preset("tiny", vocab_size=tok.vocab_size, n_head=2, dtype="float64"),
                                  np.random.default_rng(0))
    rec = run_model(model, tok, tok.encode("max(3 7 1)"))
    page = StaticExplorer(model, tok, ["max(3 7 1)"], snapshots=[take_snapshot(model)]).to_html()
    idx = asarray(np.random.default_rng(1).integers(0, tok.vocab_size, size=(2, 12)))
    att = model.attention_weights(idx)[0]
    stream = interpret.residual_stream(model, idx)[-1]  # (B, T, C), on the device
    feats, labels = stream.reshape(-1, stream.shape[-1]), idx.reshape(-1)
    probe = interpret.fit_probe(feats, labels, tok.vocab_size)
    with interpret.ablate(model, 1, 0, mean_over=idx):
        ablated = to_numpy(model.forward(idx))
    return {"weights": rec.weights.ravel()[::7].tolist(), "probs": rec.probs[-1].tolist(), "html_len": len(page),
            "prev": interpret.previous_token_scores(att).tolist(),
            "induction": interpret.induction_scores(att, 3).tolist(),
            "probe_acc": interpret.probe_accuracy(probe, feats, labels),
            "ablated": ablated.ravel()[::11].tolist()}


SCENARIOS = {f.__name__: f for f in (train_steps, generation, checkpoint, gradient_check, planted_leak,
                                     text_task_training, evaluation, visualizer_data)}

if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    result = SCENARIOS[name]()
    result["backend"] = BACKEND
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
