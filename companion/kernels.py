"""Pluggable kernels, looked up at call time (the model's side of ``companion.use``).

Each call site in the model names the kernel it calls through ``plugged``:

    y, att_cache = plugged(attention_forward)(q, k, v, mask)  # (B, nh, T, hs)

``plugged(f)`` is ``f`` itself unless a ``companion.use(...)`` block, in the current context,
put a learner's function in its place. The replacements live in a context variable, not in
module attributes, so nothing outlives the with-block (even one left by an exception), a
model built before the block calls the learner's function inside it, and a model built
inside the block calls the companion's own after it. Threads started inside a block do not
inherit it (a context variable is per thread unless copied with ``contextvars``).
"""

from __future__ import annotations

import contextlib
import contextvars
from types import MappingProxyType

_OVERRIDES: contextvars.ContextVar = contextvars.ContextVar("companion_kernel_overrides", default=MappingProxyType({}))


def plugged(fn):
    """The function to call for kernel ``fn``: a learner's replacement inside ``use()``, else ``fn``."""
    return _OVERRIDES.get().get(fn, fn)


@contextlib.contextmanager
def overriding(table: dict):
    """Within the block, ``plugged(original)`` is ``table[original]`` (on top of any enclosing block)."""
    token = _OVERRIDES.set(MappingProxyType({**_OVERRIDES.get(), **table}))
    try:
        yield
    finally:
        _OVERRIDES.reset(token)
