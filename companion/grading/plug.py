"""Bring your own layer: run the companion model on a learner's own functions.

    with companion.use(attention_forward=my_attention_forward, rmsnorm_backward=my_rmsnorm_backward):
        model = companion.Transformer(config, rng)
        ...  # every forward/backward pass inside the block calls the learner's functions

``use`` swaps the named functions in every companion module that calls them, and puts the
originals back when the block ends, even when it ends with an exception. Nothing stays
patched after the ``with``. A replacement must keep the companion's signature and its cache
layout (the exercises ask for exactly that), because its partner (attention_backward for
attention_forward) may still be the companion's own.

The functions that can be swapped are the model's kernels, listed in ``PLUGGABLE``. Build
the model inside the block: a model picks its activation (GELU) when it is constructed.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

PLUGGABLE = {
    "companion.attention": ("causal_mask", "softmax_rows", "attention_forward", "attention_backward"),
    "companion.positions": ("rope_forward", "rope_backward", "sinusoidal_table"),
    "companion.norms": ("layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward"),
    "companion.feedforward": ("swiglu_forward", "swiglu_backward", "gelu_forward", "gelu_backward"),
    "companion.linear": ("linear_forward", "linear_backward"),
    "companion.embedding": ("embedding_forward", "embedding_backward"),
}


def _originals() -> dict:
    found = {}
    for module_name, names in PLUGGABLE.items():
        module = importlib.import_module(module_name)
        for name in names:
            found[name] = getattr(module, name)
    return found


def _bindings(original) -> list[tuple[object, str]]:
    """Every (module, attribute) in the companion that holds ``original`` (the defining
    module, and each module that imported it by name, e.g. attention.py's rope_forward)."""
    places = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "companion" or module_name.startswith("companion.")):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                places.append((module, attr))
    return places


@contextlib.contextmanager
def use(**functions):
    """Within the block, the companion calls the given functions instead of its own."""
    originals = _originals()
    unknown = sorted(set(functions) - set(originals))
    if unknown:
        raise ValueError(f"use() cannot swap {unknown}; the pluggable functions are {sorted(originals)}")
    for name, fn in functions.items():
        if not callable(fn):
            raise TypeError(f"use({name}=...) needs a function, got {type(fn).__name__}")
    swapped = []  # (module, attr, previous value), undone in reverse order
    try:
        for name, fn in functions.items():
            # find the current binding (an enclosing use() may already have swapped it)
            current = getattr(importlib.import_module(_home(name)), name)
            for module, attr in _bindings(current):
                swapped.append((module, attr, current))
                setattr(module, attr, fn)
            activations = importlib.import_module("companion.feedforward").ACTIVATIONS
            for key, pair in list(activations.items()):  # the MLP looks GELU up in this table
                if current in pair:
                    swapped.append((activations, key, pair))
                    activations[key] = tuple(fn if f is current else f for f in pair)
        yield
    finally:
        for place, attr, previous in reversed(swapped):
            if isinstance(place, dict):
                place[attr] = previous
            else:
                setattr(place, attr, previous)


def _home(name: str) -> str:
    return next(m for m, names in PLUGGABLE.items() if name in names)
