"""Module: the one idiom every layer follows.

A module owns named parameters (``params``) and their gradients (``grads``, same names,
same shapes). ``forward(x)`` computes the output and keeps in ``self.cache`` exactly what
``backward`` will need; ``backward(dout)`` returns the gradient for the input and *adds*
(``+=``) each parameter's gradient into ``grads``. Adding, not assigning, is what makes a
shared (tied) matrix collect the sum of its uses by itself.

Child modules are plain attributes (or lists of modules); ``parameters()`` walks them and
names every array by its path, ``blocks.0.attn.w_qkv``, the names an optimizer, a checkpoint
and the PyTorch parity tests all use.

One buffer (``pack_parameters``): a whole model's parameters can live in one contiguous 1-D
array, each ``params[name]`` a view (a reshaped slice) of it, and likewise the gradients. Every
layer still reads and writes its own arrays, but the optimizer can update all of them with a
handful of whole-buffer operations instead of a dozen small ones per array, and zero_grad is one
``fill``. The rule that makes it work: parameters and gradients are only ever changed *in place*
(``p -= ...``, ``g += ...``, ``p[...] = loaded``), never rebound to a new array.
"""

from __future__ import annotations

from .backend import BACKEND, Array, xp


class Module:
    def __init__(self):
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.cache = None

    def add_param(self, name: str, value: Array) -> Array:
        self.params[name] = value
        self.grads[name] = xp.zeros_like(value)
        return value

    def children(self) -> dict[str, "Module"]:
        """Direct child modules by attribute name (lists are numbered: blocks.0, blocks.1)."""
        found = {}
        for name, value in vars(self).items():
            if name.startswith("_"):  # private references (a tied embedding) are not children
                continue
            if isinstance(value, Module):
                found[name] = value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        found[f"{name}.{i}"] = item
        return found

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self.children().items():
            yield from child.named_modules(f"{prefix}{name}.")

    def parameters(self) -> dict[str, Array]:
        """Every parameter array of this module and its children, by dotted name."""
        return {f"{p}{n}": a for p, m in self.named_modules() for n, a in m.params.items()}

    def gradients(self) -> dict[str, Array]:
        """The gradient arrays, under the same names as ``parameters()``."""
        return {f"{p}{n}": g for p, m in self.named_modules() for n, g in m.grads.items()}

    def zero_grad(self) -> None:
        for _, m in self.named_modules():
            for g in m.grads.values():
                g.fill(0)

    def num_params(self) -> int:
        return sum(int(a.size) for a in self.parameters().values())

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


def check_input(x, name: str, ndim: int | None = None, last_dim: int | None = None, dtype=None) -> None:
    """Fail at once, naming the problem, when a layer is handed the wrong shape or dtype.
    ``ndim`` None accepts any number of leading axes (a layer applied to every position)."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(x.shape)}")
    if last_dim is not None and x.ndim == 0:
        raise ValueError(f"{name}: expected an array with a last dimension of {last_dim}, got a scalar")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name}: expected last dimension {last_dim}, got shape {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {xp.dtype(dtype).name}, got {x.dtype.name} (cast with .astype)")


def pack_parameters(module: Module) -> tuple[Array, Array]:
    """Move every parameter and gradient of ``module`` into one contiguous buffer each, matrices
    first (AdamW decays them: one slice), and make each module's ``params`` and ``grads`` entries
    views of it. Returns (flat_params, flat_grads)."""
    entries = [(m, name) for _, m in module.named_modules() for name in m.params]
    dtypes = {m.params[n].dtype for m, n in entries}
    if len(dtypes) != 1:
        raise ValueError(f"one buffer needs one dtype; the parameters have {sorted(d.name for d in dtypes)}")
    entries.sort(key=lambda e: e[0].params[e[1]].ndim < 2)  # stable sort: matrices, then vectors
    dtype = entries[0][0].params[entries[0][1]].dtype
    total = sum(int(m.params[n].size) for m, n in entries)
    flat_params, flat_grads = xp.empty(total, dtype=dtype), xp.zeros(total, dtype=dtype)
    start = 0
    for m, name in entries:
        p = m.params[name]
        stop = start + int(p.size)
        flat_params[start:stop] = p.reshape(-1)
        flat_grads[start:stop] = m.grads[name].reshape(-1)
        m.params[name] = flat_params[start:stop].reshape(p.shape)  # a view: same memory as the buffer
        m.grads[name] = flat_grads[start:stop].reshape(p.shape)
        start = stop
    return flat_params, flat_grads


def _address(a: Array) -> int:
    return a.data.ptr if BACKEND in ("cupy", "strict") else a.__array_interface__["data"][0]


def flat_layout(arrays: dict[str, Array]) -> tuple[Array, dict[str, slice]] | None:
    """If the arrays are views of one contiguous 1-D buffer that they tile exactly (no gap, no
    overlap), return (buffer, {name: slice of the buffer}); otherwise None."""
    if not arrays:
        return None
    buffer = next(iter(arrays.values())).base
    if buffer is None or buffer.ndim != 1 or not buffer.flags.c_contiguous:
        return None
    slices = {}
    for name, a in arrays.items():
        if a.base is not buffer or not a.flags.c_contiguous:
            return None
        start = (_address(a) - _address(buffer)) // buffer.itemsize
        slices[name] = slice(start, start + int(a.size))
    spans = sorted((s.start, s.stop) for s in slices.values())
    tiles = spans[0][0] == 0 and spans[-1][1] == buffer.size and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    return (buffer, slices) if tiles else None
