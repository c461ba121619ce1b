"""Linear layer: out = x @ w + b.

Weights are stored (in_features, out_features), so the forward pass reads left to right.
(PyTorch stores the transpose; the parity tests copy ``w.T`` across.)

Backward, for x of shape (..., n_in) flattened to (N, n_in):
    dx = dout @ w.T      dw = x.T @ dout      db = dout summed over N

Speed: every product runs on the 2-D (N, n_in) view of x, one (N = B*T rows) BLAS call, rather
than on (B, T, n_in), which NumPy treats as B separate (T, n_in) products. The reshapes are
free (views of contiguous arrays), and ``x2.T`` is not a copy either: BLAS reads a transposed
operand in place. The bias gradient, a sum over the N rows, is a product with a vector of ones
for the same reason: one BLAS pass rather than NumPy's reduction.
"""

from __future__ import annotations

from .backend import Array, xp
from .kernels import plugged
from .module import Module, check_input


def linear_forward(x: Array, w: Array, b: Array | None) -> tuple[Array, tuple]:
    """x (..., n_in), w (n_in, n_out), b (n_out,) or None -> out (..., n_out)."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, n_in), N = B*T: one matrix product, not B of them
    out = (x2 @ w).reshape(*x.shape[:-1], w.shape[1])  # (..., n_out)
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array | None]:
    """dout (..., n_out) -> dx (..., n_in), dw (n_in, n_out), db (n_out,) or None."""
    x, w, has_bias = cache
    x2 = x.reshape(-1, x.shape[-1])  # (N, n_in)
    dout2 = dout.reshape(-1, dout.shape[-1])  # (N, n_out)
    dx = (dout2 @ w.T).reshape(x.shape)  # (..., n_in)
    dw = x2.T @ dout2  # (n_in, n_out)
    db = xp.ones(len(dout2), dtype=dout2.dtype) @ dout2 if has_bias else None  # (n_out,): column sums (BLAS)
    return dx, dw, db


class Linear(Module):
    def __init__(self, n_in: int, n_out: int, bias: bool, rng, dtype, std: float = 0.02):
        super().__init__()
        self.n_in, self.dtype = n_in, dtype
        self.add_param("w", xp.asarray(rng.normal(0.0, std, size=(n_in, n_out)), dtype=dtype))
        if bias:
            self.add_param("b", xp.zeros(n_out, dtype=dtype))

    def forward(self, x: Array) -> Array:
        check_input(x, "Linear input", last_dim=self.n_in, dtype=self.dtype)
        out, self.cache = plugged(linear_forward)(x, self.params["w"], self.params.get("b"))
        return out

    def backward(self, dout: Array) -> Array:
        dx, dw, db = plugged(linear_backward)(dout, self.cache)
        self.grads["w"] += dw
        if db is not None:
            self.grads["b"] += db
        return dx
