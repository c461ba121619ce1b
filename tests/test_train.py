"""The training loop: masked loss, the NaN guard, determinism, exact resumption, the
evaluation cadence, the History, and the config's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from companion import Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.evaluate import evaluate
from companion.optim import AdamW
from companion.tasks import make_task
from companion.train import History, TrainConfig, default_train_config, train


def tiny_model(task, seed: int = 0, **overrides) -> Transformer:
    cfg = preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size, **overrides)
    return Transformer(cfg, np.random.default_rng(seed))


def quick(**changes) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=3e-3, min_lr=3e-4, warmup_steps=2, eval_every=5, eval_size=40)
    return TrainConfig(**{**base, **changes})


def test_loss_is_taken_on_answer_tokens_only():
    task = make_task("addition")
    model = tiny_model(task, dtype="float64")
    batch = task.batch("train", 16, np.random.default_rng(0))
    logits = model.forward(batch.idx)
    _, cache = cross_entropy_forward(logits, batch.targets, batch.loss_mask)
    dlogits = cross_entropy_backward(cache)
    masked = batch.loss_mask == 0
    assert masked.any() and (~masked).any()
    assert np.all(dlogits[masked] == 0.0)  # question and padding positions get no gradient
    assert np.all(np.abs(dlogits[~masked]).sum(axis=-1) > 0)
    # changing the targets where the mask is 0 changes neither the loss nor any weight's gradient
    model.zero_grad()
    model.backward(dlogits)
    grads = {k: v.copy() for k, v in model.gradients().items()}
    other = np.where(masked, (batch.targets + 5) % task.vocab_size, batch.targets)
    loss2, cache2 = cross_entropy_forward(model.forward(batch.idx), other, batch.loss_mask)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache2))
    assert loss2 == pytest.approx(cross_entropy_forward(logits, batch.targets, batch.loss_mask)[0], rel=1e-12)
    for k, g in model.gradients().items():
        np.testing.assert_array_equal(g, grads[k], err_msg=k)


def test_nan_guard_names_the_step_and_the_cure():
    task = make_task("listops")
    model = tiny_model(task)
    cfg = quick(steps=100, lr=1e6, min_lr=0.0, warmup_steps=0, grad_clip=None, eval_every=0)
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match=r"at step \d+: training diverged\. Try a lower learning rate"):
            train(model, task, cfg, np.random.default_rng(0), progress=False)


def test_same_seed_same_history():
    task = make_task("listops")
    runs = []
    for _ in range(2):
        model = tiny_model(task, seed=3)
        h = train(model, task, quick(), np.random.default_rng(3), progress=False)
        d = h.to_dict()
        for r in d["records"]:
            r.pop("seconds")
        runs.append((d["train_losses"], d["records"]))
    assert runs[0] == runs[1]
    model = tiny_model(task, seed=3)
    other = train(model, task, quick(), np.random.default_rng(4), progress=False)
    assert other.train_losses != runs[0][0]  # a different data seed is a different run


def test_resuming_reproduces_the_uninterrupted_run_exactly():
    task = make_task("addition")
    cfg = quick(steps=10, eval_every=4)
    full = train(tiny_model(task, seed=5), task, cfg, np.random.default_rng(5), progress=False)

    saved = {}

    def snapshot(step, model, optimizer, rng, history):
        if step == 6:  # what a checkpoint stores, as copies
            saved.update(params={k: v.copy() for k, v in model.parameters().items()},
                         opt={k: np.array(v, copy=True) for k, v in optimizer.state_dict().items()},
                         rng=rng.bit_generator.state, history=json.loads(json.dumps(history.to_dict())))

    train(tiny_model(task, seed=5), task, cfg.replace(steps=10), np.random.default_rng(5), progress=False,
          callback=snapshot)
    model = tiny_model(task, seed=99)  # different initial weights, overwritten below
    for k, v in model.parameters().items():
        v[...] = saved["params"][k]
    opt = AdamW(model.parameters(), model.gradients(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    opt.load_state_dict(saved["opt"])
    rng = np.random.default_rng(0)
    rng.bit_generator.state = saved["rng"]
    resumed = train(model, task, cfg, rng, optimizer=opt, start_step=6, history=History.from_dict(saved["history"]),
                    progress=False)
    assert resumed.train_losses == full.train_losses
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h.records]  # noqa: E731
    assert strip(resumed) == strip(full)


def test_eval_cadence_and_callback():
    task = make_task("listops")
    calls = []
    h = train(tiny_model(task), task, quick(steps=12, eval_every=5), np.random.default_rng(0), progress=False,
              callback=lambda step, *rest: calls.append(step))
    assert [r["step"] for r in h.records] == [5, 10, 12]  # every 5 steps, and at the end
    assert calls == list(range(1, 13))
    assert len(h.train_losses) == len(h.lrs) == 12
    r = h.records[0]
    assert set(r) == {"step", "train_loss", "val_loss", "token_accuracy", "exact_match", "per_op_accuracy",
                      "lr", "seconds"}
    assert set(r["per_op_accuracy"]) == {"First", "Second", "Last", "Max", "Min"}
    assert r["train_loss"] == pytest.approx(np.mean(h.train_losses[:5]))
    h0 = train(tiny_model(task), task, quick(steps=7, eval_every=0), np.random.default_rng(0), progress=False)
    assert [r["step"] for r in h0.records] == [7]


def test_learning_rate_follows_warmup_then_cosine():
    task = make_task("listops")
    h = train(tiny_model(task), task, quick(steps=20, lr=1e-2, min_lr=1e-3, warmup_steps=4, eval_every=0),
              np.random.default_rng(0), progress=False)
    assert h.lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert all(a >= b - 1e-12 for a, b in zip(h.lrs[3:], h.lrs[4:]))  # decays after the warm-up
    assert h.lrs[-1] > 1e-3 and h.lrs[-1] == pytest.approx(1e-3, abs=2e-4)


def test_no_output_without_progress(capsys):
    task = make_task("listops")
    train(tiny_model(task), task, quick(steps=3), np.random.default_rng(0), progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_history_round_trips_through_json_and_plots():
    task = make_task("listops")
    h = train(tiny_model(task), task, quick(), np.random.default_rng(0), progress=False)
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back == h and back.records == h.records
    import matplotlib

    matplotlib.use("Agg")
    fig = h.plot()
    assert len(fig.axes) == 2 and fig.axes[0].lines and fig.axes[1].lines
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(ValueError, match="missing the field"):
        History.from_dict({"records": []})


def test_train_config_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="min_lr must be between 0 and the peak lr="):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="betas must be two numbers"):
        TrainConfig(betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="no default training config for task 'chess'"):
        default_train_config("chess")
    cfg = default_train_config("listops", steps=7)
    assert cfg.steps == 7 and TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_model_too_small_for_the_task_is_refused():
    task = make_task("listops", max_value=99)
    model = Transformer(preset("tiny", vocab_size=20, block_size=16), np.random.default_rng(0))
    with pytest.raises(ValueError, match="vocab_size 20 is smaller than the task's vocabulary 112"):
        train(model, task, quick(), np.random.default_rng(0), progress=False)
    model = Transformer(preset("tiny", vocab_size=112, block_size=4), np.random.default_rng(0))
    with pytest.raises(ValueError, match="block_size 4 is shorter"):
        evaluate(model, task)


def test_evaluate_scores_a_perfect_oracle_as_perfect():
    """A 'model' that returns the true next token's one-hot logits must score 1.0 everywhere:
    this checks the bookkeeping of exact match, per-op accuracy and the <eos> rule."""
    task = make_task("listops", max_value=4)

    class Oracle:
        config = preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size)

        def __init__(self):
            self.answers = {}
            for c in range(task.space_size):
                prompt, answer, _ = task.encode_problem(c)
                seq = prompt + answer
                for i in range(1, len(seq)):
                    self.answers[tuple(seq[:i])] = seq[i]

        def new_kv_cache(self, B):
            return {"ctx": None}

        def forward(self, idx, kv_cache=None):
            idx = np.asarray(idx)
            if kv_cache is not None:
                kv_cache["ctx"] = idx if kv_cache["ctx"] is None else np.concatenate([kv_cache["ctx"], idx], 1)
                ctx, start = kv_cache["ctx"], kv_cache["ctx"].shape[1] - idx.shape[1]
            else:
                ctx, start = idx, 0
            kv_cache is not None and kv_cache.__setitem__("length", ctx.shape[1])
            B, T = idx.shape
            logits = np.zeros((B, T, task.vocab_size), dtype=np.float32)
            for b in range(B):
                for t in range(T):
                    logits[b, t, self.answers.get(tuple(ctx[b, : start + t + 1]), 0)] = 10.0
            return logits

    class Cache(dict):
        @property
        def length(self):
            return self.get("length", 0)

    oracle = Oracle()
    oracle.new_kv_cache = lambda B: Cache(ctx=None)
    r = evaluate(oracle, task, "test")
    assert r["exact_match"] == 1.0 and r["token_accuracy"] == 1.0
    assert set(r["per_op_accuracy"].values()) == {1.0}
    assert r["n"] == len(task.test)


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_bits_per_character_is_the_total_nll_over_the_characters(tmp_path, tokenizer):
    """bits per character = (sum of the scored tokens' -log p) / (characters they spell) / ln 2,
    recomputed here by hand from the logits; the BPE model also gets bits per byte."""
    import math

    from companion.data import consecutive_windows
    from companion.loss import log_softmax

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"Ça va, {i}? To be, or not to be: line {i * 7 % 1000}.\n" for i in range(300)),
                      encoding="utf-8")
    task = make_task("text", corpus=str(corpus), tokenizer=tokenizer, block_size=16, vocab_size=300)
    model = Transformer(preset("tiny", vocab_size=task.vocab_size, dtype="float64"), np.random.default_rng(0))
    got = evaluate(model, task, "val", max_problems=5)
    windows = consecutive_windows(task.val, 16, 5)  # (N, 17), N <= 5
    n = windows.shape[0] * 16  # scored tokens
    assert got["n"] == windows.shape[0] >= 2
    logp = log_softmax(model.forward(windows[:, :-1]))  # (N, 16, V)
    nll = -np.take_along_axis(logp, windows[:, 1:, None], axis=-1).sum()
    text = task.decode(task.val[1 : n + 1].tolist())  # the characters the n targets spell
    assert got["bits_per_char"] == pytest.approx(nll / len(text) / math.log(2), rel=1e-9)
    assert got["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-9)
    if tokenizer == "char":
        assert len(text) == n and "bits_per_byte" not in got
    else:
        assert len(text) > n  # BPE tokens hold several characters each
        assert got["bits_per_byte"] == pytest.approx(nll / len(text.encode("utf-8")) / math.log(2), rel=1e-9)
        assert got["bits_per_byte"] < got["bits_per_char"]  # "Ç" is two bytes


def test_history_records_text_metrics_and_saves_a_png(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    task = make_task("text", corpus=str(corpus), block_size=16)
    model = Transformer(preset("tiny", vocab_size=task.vocab_size), np.random.default_rng(0))
    h = train(model, task, TrainConfig(steps=6, batch_size=4, eval_every=3, eval_size=4, warmup_steps=1),
              np.random.default_rng(0), progress=False)
    assert [sorted(set(r) - {"step", "train_loss", "val_loss", "token_accuracy", "lr", "seconds"})
            for r in h.records] == [["bits_per_char", "perplexity"]] * 2
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    png = h.save_plot(tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
