"""Bring your own layer: run the companion model on a learner's own functions.

    with companion.use(attention_forward=attention_forward, attention_backward=attention_backward):
        loss = ...  # every forward/backward pass inside the block calls the learner's functions

Nothing is rebound: the model looks each kernel up when it calls it (``companion/kernels.py``),
and ``use`` only sets, for the current context, which function answers for which kernel. So
nothing stays plugged after the ``with`` (even one left by an exception), a model built
before the block runs on the learner's functions inside it, and a model built inside the
block runs on the companion's own after it. (``sinusoidal_table`` is the exception that
proves the rule: a model computes its table once, when it is built.)

Forward and backward come in pairs that share a cache, and a cache belongs to the pair that
made it: the companion's backward never reads a learner's cache, nor the learner's
backward the companion's.

- both halves plugged: the learner's forward makes the cache, the learner's backward reads it;
- a forward alone: its output is used, and the companion's forward runs beside it to make
  the cache that the companion's backward reads;
- a backward alone is refused, with a message naming its forward (each exercise file
  defines both halves of its pair).
"""

from __future__ import annotations

import contextlib
import importlib

from ..kernels import overriding

PLUGGABLE = {
    "companion.attention": ("causal_mask", "softmax_rows", "attention_forward", "attention_backward"),
    "companion.positions": ("rope_forward", "rope_backward", "sinusoidal_table"),
    "companion.norms": ("layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward"),
    "companion.feedforward": ("swiglu_forward", "swiglu_backward", "gelu_forward", "gelu_backward"),
    "companion.linear": ("linear_forward", "linear_backward"),
    "companion.embedding": ("embedding_forward", "embedding_backward"),
    "companion.loss": ("cross_entropy_forward", "cross_entropy_backward"),
}

# backward -> its forward: the pairs that pass a cache from one to the other
PAIRS = {
    "attention_backward": "attention_forward",
    "layernorm_backward": "layernorm_forward",
    "rmsnorm_backward": "rmsnorm_forward",
    "swiglu_backward": "swiglu_forward",
    "gelu_backward": "gelu_forward",
    "linear_backward": "linear_forward",
    "embedding_backward": "embedding_forward",
    "cross_entropy_backward": "cross_entropy_forward",
}


def originals() -> dict:
    """{name: the companion's own function} for every pluggable kernel."""
    found = {}
    for module_name, names in PLUGGABLE.items():
        module = importlib.import_module(module_name)
        for name in names:
            found[name] = getattr(module, name)
    return found


def _with_companion_cache(name: str, learner, companion):
    """A learner's forward plugged without its backward: the learner's output, and the cache
    the companion's forward makes for the companion's backward."""

    def forward(*args, **kwargs):
        result = learner(*args, **kwargs)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"your {name} must return (out, cache), got {type(result).__name__}")
        _, cache = companion(*args, **kwargs)
        return result[0], cache

    forward.__wrapped__ = learner
    return forward


@contextlib.contextmanager
def use(**functions):
    """Within the block, the companion calls the given functions instead of its own."""
    own = originals()
    unknown = sorted(set(functions) - set(own))
    if unknown:
        raise ValueError(f"use() cannot swap {unknown}; the pluggable functions are {sorted(own)}")
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"use({name}=...) needs a function, got {type(fn).__name__}")
    for backward, forward in PAIRS.items():
        if backward in functions and forward not in functions:
            raise ValueError(f"use({backward}=...) needs its forward too: use({forward}=..., {backward}=...). "
                             f"A backward reads the cache its own forward made, and the companion's cache is "
                             f"not promised to look like yours (your exercise file defines both).")
    forwards = set(PAIRS.values())
    table = {}
    for name, fn in functions.items():
        lone_forward = name in forwards and not any(functions.get(b) for b, f in PAIRS.items() if f == name)
        table[own[name]] = _with_companion_cache(name, fn, own[name]) if lone_forward else fn
    with overriding(table):
        yield
