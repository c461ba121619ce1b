"""The position-wise feed-forward network: the same small MLP applied to every token.

MLP (GPT):       out = act(x @ w_fc + b_fc) @ w_proj + b_proj,   act = ReLU or GELU
SwiGLU (LLaMA):  out = (silu(x @ w_gate) * (x @ w_up)) @ w_down  (Shazeer 2020)

GELU here is the tanh approximation of GPT-2 (PyTorch: ``gelu(x, approximate='tanh')``):
    gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
SiLU (swish): silu(a) = a * sigmoid(a),   silu'(a) = sigmoid(a) (1 + a (1 - sigmoid(a)))
"""

from __future__ import annotations

import math

from .backend import Array, pieces, xp
from .kernels import plugged
from .linear import Linear
from .module import Module

GELU_C = math.sqrt(2.0 / math.pi)


def relu_forward(x: Array) -> tuple[Array, Array]:
    return xp.maximum(x, 0), x


def relu_backward(dout: Array, x: Array) -> Array:
    return dout * (x > 0)


GELU_BLOCK_ROWS = 64  # rows per block: 64 x 512 float32 numbers are 128 KiB per array


def gelu_forward(x: Array) -> tuple[Array, tuple]:
    """x (..., H) -> gelu(x) (..., H); the cache (x, t) is what the backward needs.

    Two speed-ups over ``0.5 * x * (1 + tanh(...))`` as one expression (see "Making NumPy
    fast"): every step works in place on arrays allocated once, instead of a fresh (..., H)
    array per operator; and the work goes a block of rows at a time, so that the block's arrays
    stay in the CPU's cache through all the passes over them (on a GPU, one block: ``pieces``)."""
    H = x.shape[-1]
    x2 = x.reshape(-1, H)  # (N, H) view
    out, t = xp.empty_like(x2), xp.empty_like(x2)  # (N, H) each
    for rows in pieces(len(x2), GELU_BLOCK_ROWS):
        _gelu_rows(x2[rows], t[rows], out[rows])
    return out.reshape(x.shape), (x, t.reshape(x.shape))


def _gelu_rows(x: Array, t: Array, out: Array) -> None:
    """t = tanh(u), out = 0.5 x (1 + t) for one block of rows, written into t and out.
    The constants are folded together, u = x (c + 0.044715 c x^2): no pass spent on a constant alone."""
    xp.multiply(x, x, out=t)  # t holds u on the way
    t *= 0.044715 * GELU_C
    t += GELU_C
    t *= x
    xp.tanh(t, out=t)
    xp.add(t, 1.0, out=out)
    out *= x
    out *= 0.5  # 0.5 x (1 + t)


def gelu_backward(dout: Array, cache: tuple) -> Array:
    """dout (..., H) -> dx = dout * (0.5 (1 + t) + 0.5 x (1 - t^2) du/dx), du/dx = c (1 + 3 0.044715 x^2),
    a block of rows at a time as in the forward."""
    x, t = cache
    H = x.shape[-1]
    x2, t2, dout2 = x.reshape(-1, H), t.reshape(-1, H), dout.reshape(-1, H)  # (N, H) views
    dx = xp.empty_like(dout2)  # (N, H)
    blocks = pieces(len(dx), GELU_BLOCK_ROWS)
    scratch = xp.empty_like(dout2[blocks[0]]) if blocks else None  # (rows, H), reused by every block
    for rows in blocks:
        n = len(dx[rows])  # the last block may be shorter
        _gelu_grad_rows(x2[rows], t2[rows], dout2[rows], dx[rows], scratch[:n])
    return dx.reshape(dout.shape)


def _gelu_grad_rows(x: Array, t: Array, dout: Array, dx: Array, s: Array) -> None:
    """dx = dout * gelu'(x), written into dx, for one block of rows (s: scratch of the same shape).
    With p = 0.5 x du/dx, gelu'(x) = 0.5 (1 + t) + p (1 - t^2) = (1 + t) (0.5 + p (1 - t)):
    factored, it takes fewer passes."""
    xp.multiply(x, x, out=dx)  # dx is the scratch that becomes the local derivative
    dx *= 1.5 * 0.044715 * GELU_C
    dx += 0.5 * GELU_C
    dx *= x  # p = 0.5 x du/dx
    xp.subtract(1.0, t, out=s)
    dx *= s
    dx += 0.5  # 0.5 + p (1 - t)
    xp.add(t, 1.0, out=s)
    dx *= s  # dx now holds gelu'(x)
    dx *= dout


def sigmoid(a: Array) -> Array:
    return 0.5 * (1.0 + xp.tanh(0.5 * a))  # never overflows, unlike 1 / (1 + exp(-a))


def swiglu_forward(gate: Array, up: Array) -> tuple[Array, tuple]:
    """gate, up (..., H) -> h = silu(gate) * up (..., H)."""
    sg = sigmoid(gate)  # (..., H)
    silu = gate * sg  # (..., H)
    return silu * up, (gate, up, sg, silu)


def swiglu_backward(dh: Array, cache: tuple) -> tuple[Array, Array]:
    """dh (..., H) -> dgate, dup (..., H)."""
    gate, up, sg, silu = cache
    dup = dh * silu
    dgate = dh * up * sg * (1.0 + gate * (1.0 - sg))
    return dgate, dup


ACTIVATIONS = {"relu": (relu_forward, relu_backward), "gelu": (gelu_forward, gelu_backward)}


class MLP(Module):
    def __init__(self, config, rng, dtype):
        super().__init__()
        C, H = config.n_embd, config.ffn_hidden
        self.act_forward, self.act_backward = ACTIVATIONS[config.ffn]
        self.c_fc = Linear(C, H, config.bias, rng, dtype)
        self.c_proj = Linear(H, C, config.bias, rng, dtype, std=0.02 / math.sqrt(2 * config.n_layer))

    def forward(self, x: Array) -> Array:
        h, self.cache = plugged(self.act_forward)(self.c_fc(x))  # (B, T, H)
        return self.c_proj(h)  # (B, T, C)

    def backward(self, dout: Array) -> Array:
        dh = self.c_proj.backward(dout)  # (B, T, H)
        return self.c_fc.backward(plugged(self.act_backward)(dh, self.cache))  # (B, T, C)


class SwiGLU(Module):
    def __init__(self, config, rng, dtype):
        super().__init__()
        C, H = config.n_embd, config.ffn_hidden
        self.w_gate = Linear(C, H, config.bias, rng, dtype)
        self.w_up = Linear(C, H, config.bias, rng, dtype)
        self.w_down = Linear(H, C, config.bias, rng, dtype, std=0.02 / math.sqrt(2 * config.n_layer))

    def forward(self, x: Array) -> Array:
        h, self.cache = plugged(swiglu_forward)(self.w_gate(x), self.w_up(x))  # (B, T, H)
        return self.w_down(h)  # (B, T, C)

    def backward(self, dout: Array) -> Array:
        dgate, dup = plugged(swiglu_backward)(self.w_down.backward(dout), self.cache)  # (B, T, H) each
        return self.w_gate.backward(dgate) + self.w_up.backward(dup)  # x feeds both: gradients add


def make_ffn(config, rng, dtype) -> Module:
    return SwiGLU(config, rng, dtype) if config.ffn == "swiglu" else MLP(config, rng, dtype)
