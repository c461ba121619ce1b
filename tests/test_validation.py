"""Bad input gets a clear error that names the problem: the model's config, the optimizers'
hyperparameters (checked as torch.optim checks them), the learning-rate schedule, an empty
batch, backward before forward, a KV cache of another batch size, and a BPE pattern that
would drop text."""

from __future__ import annotations

import math

import numpy as np
import pytest
from model_helpers import small_model

from companion import SGD, Adam, AdamW, ModelConfig, lr_schedule, preset
from companion.tokenizers import BPETokenizer
from companion.tokenizers.bpe import GPT2_PATTERN

# ---------------------------------------------------------------------------- ModelConfig


@pytest.mark.parametrize("name", ["norm_eps", "rope_base"])
@pytest.mark.parametrize("bad", [0.0, -1e-5, math.nan, math.inf, "1e-5", True])
def test_config_refuses_a_norm_eps_or_rope_base_that_is_not_a_positive_number(name, bad):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number > 0, got"):
        preset("tiny", family="llama", **{name: bad})


def test_config_accepts_small_positive_norm_eps_and_rope_base():
    c = preset("tiny", family="llama", norm_eps=1e-12, rope_base=0.5)
    assert (c.norm_eps, c.rope_base) == (1e-12, 0.5)
    assert ModelConfig.from_dict(c.to_dict()) == c


# ----------------------------------------------------------------------------- optimizers


def params_and_grads():
    return {"w": np.ones((2, 2))}, {"w": np.zeros((2, 2))}


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (dict(lr=math.nan), "Invalid learning rate: nan"),
    (dict(lr=math.inf), "Invalid learning rate: inf"),
    (dict(momentum=-0.9), "Invalid momentum value: -0.9"),
    (dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
])
def test_sgd_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        SGD(*params_and_grads(), **kwargs)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (dict(lr=math.nan), "Invalid learning rate: nan"),
    (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (dict(betas=(-0.1, 0.999)), "Invalid beta parameter at index 0: -0.1"),
    (dict(betas=(0.9, math.nan)), "Invalid beta parameter at index 1: nan"),
    (dict(betas=(0.9,)), r"betas must be a pair \(b1, b2\)"),
    (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
])
def test_adam_checks_its_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        cls(*params_and_grads(), **kwargs)


def test_optimizers_accept_the_edges_torch_accepts():
    # lr 0, momentum 0, eps 0, beta 0 and weight decay 0 are all allowed, as in torch.optim
    params, grads = params_and_grads()
    grads["w"] += 1.0
    SGD(params, grads, lr=0.0, momentum=0.0, weight_decay=0.0).step()
    AdamW(params, grads, lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0).step()
    assert np.array_equal(params["w"], np.ones((2, 2)))  # lr 0 moves nothing


def test_optimizer_messages_match_torch():
    torch = pytest.importorskip("torch", reason="torch (test-only) gives the reference messages")
    p = [torch.nn.Parameter(torch.ones(2))]
    cases = [(SGD, torch.optim.SGD, dict(lr=-1.0)), (SGD, torch.optim.SGD, dict(lr=0.1, momentum=-1.0)),
             (SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=-1.0)), (Adam, torch.optim.Adam, dict(lr=-1.0)),
             (Adam, torch.optim.Adam, dict(eps=-1.0)), (AdamW, torch.optim.AdamW, dict(betas=(0.9, 1.0))),
             (AdamW, torch.optim.AdamW, dict(betas=(1.5, 0.9))), (AdamW, torch.optim.AdamW, dict(weight_decay=-1.0))]
    for ours, theirs, kwargs in cases:
        with pytest.raises(ValueError) as want:
            theirs(p, **kwargs)
        with pytest.raises(ValueError) as got:
            ours(*params_and_grads(), **kwargs)
        assert str(got.value).startswith(str(want.value)), (str(got.value), str(want.value))


# ------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("args, message", [
    ((-1, 1e-3, 10, 100), "step must be an integer >= 0, got -1"),
    ((0, 1e-3, -5, 100), "warmup_steps must be an integer >= 0, got -5"),
    ((0, 1e-3, 10, -100), "total_steps must be an integer >= 0, got -100"),
    ((1.5, 1e-3, 10, 100), "step must be an integer >= 0, got 1.5"),
    ((0, -1e-3, 10, 100), "max_lr must be a finite number >= 0, got -0.001"),
    ((0, math.nan, 10, 100), "max_lr must be a finite number >= 0, got nan"),
    ((0, 1e-3, 10, 100, -1e-4), "min_lr must be a finite number >= 0, got -0.0001"),
])
def test_lr_schedule_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        lr_schedule(*args)


def test_a_warm_up_longer_than_the_run_is_cut_off_at_its_end():
    # warm-up 100 over a 40-step run: the rate climbs as warm-up would for 40 steps, never
    # reaching max_lr, and from step 40 on it is min_lr, not the rest of the warm-up
    lrs = [lr_schedule(s, 1e-2, 100, 40, 1e-4) for s in range(60)]
    np.testing.assert_allclose(lrs[:40], [1e-2 * (s + 1) / 100 for s in range(40)], rtol=1e-12)
    assert max(lrs) < 1e-2
    assert lrs[40:] == [1e-4] * 20


def test_lr_schedule_takes_numpy_integers_and_zero_warm_up():
    assert lr_schedule(np.int64(0), 1e-3, 0, 10) == pytest.approx(1e-3)
    assert lr_schedule(np.int64(10), 1e-3, 0, 10, 1e-4) == 1e-4


# ------------------------------------------------------------------------------- the model


@pytest.mark.parametrize("shape", [(0, 4), (2, 0)])
def test_an_empty_batch_is_named(shape):
    model = small_model()
    with pytest.raises(ValueError, match=r"the batch is empty: token ids of shape \(\d, \d\) \(B, T\) hold no token"):
        model.forward(np.zeros(shape, dtype=np.int64))


def test_backward_before_forward_is_named():
    model = small_model()
    dlogits = np.zeros((1, 4, model.config.vocab_size))
    with pytest.raises(RuntimeError, match=r"backward needs the caches of a forward pass: call model.forward"):
        model.backward(dlogits)
    # a decoding pass with the KV cache keeps nothing to differentiate either
    model.forward(np.ones((1, 4), dtype=np.int64), kv_cache=model.new_kv_cache(1))
    with pytest.raises(RuntimeError, match="backward needs the caches of a forward pass"):
        model.backward(dlogits)


def test_backward_checks_dlogits_against_the_forward_pass():
    model = small_model()
    model.forward(np.ones((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"dlogits has shape \(2, 4, 16\) but the last forward pass made logits "
                                         r"of shape \(2, 5, 16\)"):
        model.backward(np.zeros((2, 4, 16)))
    model.backward(np.zeros((2, 5, 16)))  # the right shape goes through


def test_a_kv_cache_for_another_batch_size_is_named():
    model = small_model()
    cache = model.new_kv_cache(2)
    with pytest.raises(ValueError, match=r"the KV cache was made for batch size 2 but this batch has 3 sequences; "
                                         r"make one with model.new_kv_cache\(3\)"):
        model.forward(np.ones((3, 4), dtype=np.int64), kv_cache=cache)
    assert cache.length == 0  # refused before anything was written
    model.forward(np.ones((2, 4), dtype=np.int64), kv_cache=cache)
    assert cache.length == 4


# -------------------------------------------------------------------------- BPE pattern


@pytest.mark.parametrize("pattern, text, where", [
    (r"[a-z]+", "ab cd", "' ' at position 2"),
    (r" ?[a-z]+", "ab, cd", "',' at position 2"),
    (r"a*", "ba", "'b' at position 0"),
    (r"\w+|\s+", "hi!", "'!' at position 2"),
])
def test_a_pattern_that_would_drop_text_fails_loudly(pattern, text, where):
    tok = BPETokenizer((), pattern)
    with pytest.raises(ValueError, match=f"does not cover the text: {where}"):
        tok.encode(text)
    with pytest.raises(ValueError, match="does not cover the text"):
        BPETokenizer.train(text * 3, 270, pattern=pattern)


def test_a_pattern_with_capturing_groups_is_refused():
    with pytest.raises(ValueError, match=r"has capturing groups.*\(\?:\.\.\.\)"):
        BPETokenizer((), r"(\w+)|\s+|.")


def test_patterns_that_cover_everything_still_work():
    for pattern in (GPT2_PATTERN, r"\w+|\s+|.", r"(?:\w+)|(?s:.)", None):
        tok = BPETokenizer.train("hello, world! " * 5, 270, pattern=pattern)
        text = "hello, world!\n\tnew"
        assert tok.decode(tok.encode(text)) == text
