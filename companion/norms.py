"""LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019), over the last axis.

LayerNorm:  xhat = (x - mean) / sqrt(var + eps)     out = xhat * w + b
RMSNorm:    xhat = x / sqrt(mean(x^2) + eps)        out = xhat * w

RMSNorm drops the centring and the bias: cheaper, and in practice as good (LLaMA).
Both forwards cache xhat and the reciprocal std (rstd) or RMS (rrms), so backward recomputes nothing (llm.c).
A sum of products such as sum(xhat * xhat) is ``einsum``: one pass, no (..., C) temporary.
A plain mean along the rows (C numbers each, many rows) is a matrix-vector product with a vector
of 1/C: NumPy's ``mean(axis=-1)`` pays a fixed cost per short row, while BLAS runs one gemv per
matrix of rows (chapter 11 measures both; the sums agree to float32 rounding, added in another order).

LayerNorm:  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dout * w
RMSNorm:    dx = rrms * (dxhat - xhat * mean(dxhat * xhat))
"""

from __future__ import annotations

from .backend import Array, xp
from .kernels import plugged
from .module import Module, check_input


def layernorm_forward(x: Array, w: Array, b: Array | None, eps: float = 1e-5) -> tuple[Array, tuple]:
    """x (..., C), w (C,), b (C,) or None -> out (..., C)."""
    C = x.shape[-1]
    mean = (x @ xp.full(C, 1.0 / C, dtype=x.dtype))[..., None]  # (..., 1), each row's mean (BLAS)
    xhat = x - mean  # (..., C), centred; scaled in place below
    var = xp.einsum("...c,...c->...", xhat, xhat)[..., None] / C  # (..., 1), the biased variance
    rstd = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    xhat *= rstd  # (..., C)
    out = xhat * w  # (..., C)
    if b is not None:
        out += b
    return out, (xhat, rstd, w, b is not None)


def layernorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array | None]:
    """dout (..., C) -> dx (..., C), dw (C,), db (C,) or None."""
    xhat, rstd, w, has_bias = cache
    C = xhat.shape[-1]
    xhat2, dout2 = xhat.reshape(-1, C), dout.reshape(-1, C)  # (N, C) views
    dw = xp.einsum("nc,nc->c", dout2, xhat2)  # (C,): sum over rows of dout * xhat, no temporary
    db = xp.ones(len(dout2), dtype=dout2.dtype) @ dout2 if has_bias else None  # (C,): column sums (BLAS)
    dx = dout * w  # (..., C): dxhat, turned into dx in place
    proj = xp.einsum("...c,...c->...", dx, xhat)[..., None] / C  # (..., 1), mean(dxhat * xhat)
    dx -= (dx @ xp.full(C, 1.0 / C, dtype=dx.dtype))[..., None]  # (..., 1): mean(dxhat), as in the forward
    dx -= xhat * proj
    dx *= rstd  # (..., C)
    return dx, dw, db


def rmsnorm_forward(x: Array, w: Array, eps: float = 1e-5) -> tuple[Array, tuple]:
    """x (..., C), w (C,) -> out (..., C). eps goes inside the square root."""
    rrms = 1.0 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = x * rrms  # (..., C)
    return xhat * w, (xhat, rrms, w)


def rmsnorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array]:
    """dout (..., C) -> dx (..., C), dw (C,)."""
    xhat, rrms, w = cache
    C = xhat.shape[-1]
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * w  # (..., C)
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)) * rrms  # (..., C)
    return dx, dw


class LayerNorm(Module):
    def __init__(self, n_embd: int, bias: bool, dtype, eps: float = 1e-5):
        super().__init__()
        self.eps, self.dtype = eps, dtype
        self.add_param("w", xp.ones(n_embd, dtype=dtype))
        if bias:
            self.add_param("b", xp.zeros(n_embd, dtype=dtype))

    def forward(self, x: Array) -> Array:
        check_input(x, "LayerNorm input", last_dim=self.params["w"].shape[0], dtype=self.dtype)
        out, self.cache = plugged(layernorm_forward)(x, self.params["w"], self.params.get("b"), self.eps)
        return out

    def backward(self, dout: Array) -> Array:
        dx, dw, db = plugged(layernorm_backward)(dout, self.cache)
        self.grads["w"] += dw
        if db is not None:
            self.grads["b"] += db
        return dx


class RMSNorm(Module):
    def __init__(self, n_embd: int, dtype, eps: float = 1e-5):
        super().__init__()
        self.eps, self.dtype = eps, dtype
        self.add_param("w", xp.ones(n_embd, dtype=dtype))

    def forward(self, x: Array) -> Array:
        check_input(x, "RMSNorm input", last_dim=self.params["w"].shape[0], dtype=self.dtype)
        out, self.cache = plugged(rmsnorm_forward)(x, self.params["w"], self.eps)
        return out

    def backward(self, dout: Array) -> Array:
        dx, dw = plugged(rmsnorm_backward)(dout, self.cache)
        self.grads["w"] += dw
        return dx


def make_norm(config, dtype) -> Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, dtype, config.norm_eps)
    return LayerNorm(config.n_embd, config.bias, dtype, config.norm_eps)
