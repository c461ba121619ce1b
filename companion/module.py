"""Module: the one idiom every layer follows.

A module owns named parameters (``params``) and their gradients (``grads``, same names,
same shapes). ``forward(x)`` computes the output and keeps in ``self.cache`` exactly what
``backward`` will need; ``backward(dout)`` returns the gradient for the input and *adds*
(``+=``) each parameter's gradient into ``grads``. Adding, not assigning, is what makes a
shared (tied) matrix collect the sum of its uses by itself.

Child modules are plain attributes (or lists of modules); ``parameters()`` walks them and
names every array by its path, ``blocks.0.attn.w_qkv``, the names an optimizer, a checkpoint
and the PyTorch parity tests all use.
"""

from __future__ import annotations

from .backend import Array, xp


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


def check_input(x, name: str, ndim: int, last_dim: int | None = None, dtype=None) -> None:
    """Fail at once, naming the problem, when a layer is handed the wrong shape or dtype."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(x.shape)}")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name}: expected last dimension {last_dim}, got shape {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {xp.dtype(dtype).name}, got {x.dtype.name} (cast with .astype)")
