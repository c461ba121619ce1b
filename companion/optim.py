"""Optimizers: how gradients become parameter updates. Each matches ``torch.optim``.

SGD with momentum:  buf = mu * buf + g;                     p -= lr * buf
Adam (Kingma & Ba 2015), step t:
    m = b1 m + (1 - b1) g      v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
Adam's weight_decay is an L2 term added to g, so it too gets divided by sqrt(v): weights
with large gradients are barely decayed. AdamW (Loshchilov & Hutter 2019) decouples it:
    p -= lr * wd * p   (then the Adam step), the same pull towards zero for every weight.
AdamW decays only weight matrices (ndim >= 2): biases and norm gains are not shrunk.

An optimizer owns its state (``state_dict``) and holds the model's parameter and gradient
arrays by name; ``step`` updates the parameters in place. Set ``opt.lr`` before each step
to follow a schedule.

Speed: a Transformer keeps all its parameters in one buffer (``module.pack_parameters``). Adam
then sees that the arrays tile one buffer and runs its update on the buffer (its moments m and
v are one buffer each, with a view per parameter for ``state_dict``), in pieces of ``CHUNK``
numbers that fit in the CPU's cache (on a GPU, in one piece: ``backend.pieces``): about ten
operations per piece instead of about ten per parameter array, most of them tiny. Any other dict of arrays is updated one array at a
time, with the same arithmetic.
"""

from __future__ import annotations

import math
import numbers

from .backend import Array, pieces, to_numpy, xp
from .module import flat_layout

# Elements per piece of the buffer that Adam updates at a time: 64k float32 numbers are 256 KiB,
# so the five arrays of a piece (p, g, m, v and a scratch) take 1.25 MiB. Where a core's private
# L2 cache holds 2 MiB, a piece stays there across the update's ten passes, instead of each pass
# streaming the whole ~16 MB from L3 or main memory; where L2 holds 1 MiB or 512 KiB, it does not
# fit there and is read from L3. Chapter 11 times this against one piece for the whole buffer.
CHUNK = 65536


class Optimizer:
    def __init__(self, params: dict[str, Array], grads: dict[str, Array], lr: float):
        if set(params) != set(grads):
            raise ValueError("params and grads must have the same names (pass model.parameters(), model.gradients())")
        self.params, self.grads, self.lr = params, grads, lr
        self.t = 0  # steps taken
        self.state: dict[str, dict[str, Array]] = {}

    def state_dict(self) -> dict[str, Array]:
        """Flat name -> array (for a checkpoint), e.g. 'm.blocks.0.attn.c_attn.w'."""
        flat = {f"{k}.{name}": a for name, s in self.state.items() for k, a in s.items()}
        flat["t"] = xp.asarray(self.t)
        return flat

    def load_state_dict(self, flat: dict[str, Array]) -> None:
        self.t = int(flat["t"])
        for key, value in flat.items():
            if key == "t":
                continue
            k, name = key.split(".", 1)
            if name not in self.params:
                raise ValueError(f"optimizer state names a parameter the model does not have: {name}")
            if value.shape != self.params[name].shape:
                raise ValueError(f"optimizer state {key} has shape {value.shape}, parameter has {self.params[name].shape}")
            self.state.setdefault(name, {})[k] = xp.asarray(value, dtype=self.params[name].dtype)
        self._after_load()

    def _after_load(self) -> None:
        """A hook for optimizers whose state lives in buffers (Adam)."""


def check_hyperparameters(lr=0.0, momentum=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0) -> None:
    """The checks ``torch.optim`` makes (same messages), plus: lr must be finite. A NaN fails
    every check, since every comparison with NaN is False."""
    if not (0.0 <= lr < math.inf):
        raise ValueError(f"Invalid learning rate: {lr} (lr must be a finite number >= 0)")
    if not 0.0 <= momentum:
        raise ValueError(f"Invalid momentum value: {momentum} (momentum must be >= 0)")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps} (eps must be >= 0)")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (b1, b2), got {betas!r}")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b} (each beta must be in [0, 1): "
                             f"1 would divide by 1 - beta^t = 0)")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (weight_decay must be >= 0)")


class SGD(Optimizer):
    def __init__(self, params, grads, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0):
        check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, grads, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def step(self) -> None:
        self.t += 1
        for name, p in self.params.items():
            g = self.grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                s = self.state.setdefault(name, {})
                # PyTorch starts the buffer at the first gradient, not at zero
                s["buf"] = g.copy() if "buf" not in s else self.momentum * s["buf"] + g
                g = s["buf"]
            p -= self.lr * g


class Adam(Optimizer):
    decoupled = False

    def __init__(self, params, grads, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, grads, lr)
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay

    def decays(self, name: str) -> bool:
        return self.weight_decay > 0

    def step(self) -> None:
        self.t += 1
        flat = self._flat()
        if flat is not None:  # the model's one buffer: the whole update in a few operations
            p, g, m, v, slices = flat
            decayed = _merge([slices[name] for name in self.params if self.decays(name)])
            if decayed:
                if self.decoupled:
                    for part in decayed:
                        p[part] *= 1.0 - self.lr * self.weight_decay  # AdamW: shrink the weights
                else:
                    g = g.copy()
                    for part in decayed:
                        g[part] += self.weight_decay * p[part]  # Adam: an L2 term in the gradient
            for part in pieces(p.size, CHUNK):  # a piece at a time, so that its arrays stay in cache
                self._update(p[part], g[part], m[part], v[part])
            return
        for name, p in self.params.items():
            g = self.grads[name]
            if self.decays(name):
                if self.decoupled:
                    p *= 1.0 - self.lr * self.weight_decay  # AdamW: shrink the weight itself
                else:
                    g = g + self.weight_decay * p  # Adam: an L2 term in the gradient
            s = self.state.setdefault(name, {})
            if "m" not in s:
                s["m"], s["v"] = xp.zeros_like(p), xp.zeros_like(p)
            self._update(p, g, s["m"], s["v"])

    def _update(self, p: Array, g: Array, m: Array, v: Array) -> None:
        """One Adam step on arrays of any shape, all in place but for one scratch array."""
        bc1 = 1.0 - self.b1 ** self.t
        bc2_sqrt = math.sqrt(1.0 - self.b2 ** self.t)
        scratch = xp.multiply(g, 1.0 - self.b1)  # (1 - b1) g
        m *= self.b1
        m += scratch  # m = b1 m + (1 - b1) g
        xp.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.b2
        v *= self.b2
        v += scratch  # v = b2 v + (1 - b2) g^2
        xp.sqrt(v, out=scratch)
        scratch /= bc2_sqrt
        scratch += self.eps  # the denominator, sqrt(v_hat) + eps
        xp.divide(m, scratch, out=scratch)
        scratch *= self.lr / bc1
        p -= scratch  # p -= lr m_hat / (sqrt(v_hat) + eps)

    def _flat(self):
        """(p, g, m, v, {name: slice}) over whole buffers when the parameters and gradients tile
        one buffer each, laid out alike; else None. m and v become buffers too, with a view per
        parameter in ``state`` (so state_dict and checkpoints see the same names as ever)."""
        if getattr(self, "_flat_cache", None) is None:
            params, grads = flat_layout(self.params), flat_layout(self.grads)
            if params is None or grads is None or params[1] != grads[1]:
                return None
            (p, slices), g = params, grads[0]
            m, v = xp.zeros_like(p), xp.zeros_like(p)
            for name, part in slices.items():  # any state loaded earlier moves into the buffers
                for key, buf in (("m", m), ("v", v)):
                    view = buf[part].reshape(self.params[name].shape)
                    old = self.state.get(name, {}).get(key)
                    if old is not None:
                        view[...] = old
                    self.state.setdefault(name, {})[key] = view
            self._flat_cache = (p, g, m, v, slices)
        return self._flat_cache

    def _after_load(self) -> None:
        self._flat_cache = None  # rebuilt from the loaded state at the next step


class AdamW(Adam):
    """Adam with decoupled weight decay, applied to weight matrices only (ndim >= 2)."""

    decoupled = True

    def __init__(self, params, grads, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, grads, lr, betas, eps, weight_decay)

    def decays(self, name: str) -> bool:
        return self.weight_decay > 0 and self.params[name].ndim >= 2


def _merge(parts: list[slice]) -> list[slice]:
    """Adjacent slices joined: the decayed matrices, packed first, are one slice."""
    merged = []
    for part in sorted(parts, key=lambda s: s.start):
        if merged and merged[-1].stop == part.start:
            merged[-1] = slice(merged[-1].start, part.stop)
        else:
            merged.append(part)
    return merged


def clip_grad_norm(grads: dict[str, Array], max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most max_norm.
    Returns the norm before clipping (as ``torch.nn.utils.clip_grad_norm_`` does).

    The sums of squares stay on the device and come to the host together, in one copy: on a GPU
    each ``float()`` of a device scalar is a round trip that waits for the queue. A sum of squares
    is ``vdot(g, g)``: one pass of BLAS's dot product over the array, with no ``g * g`` temporary."""
    if not grads:
        return 0.0
    layout = flat_layout(grads)
    arrays = [layout[0]] if layout is not None else list(grads.values())  # one buffer: one pass
    sums = to_numpy(xp.stack([xp.vdot(g, g) for g in arrays]))  # (n_arrays,): one transfer
    total = math.sqrt(sum(float(s) for s in sums))  # float64 on the host
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in arrays:
            g *= scale
    return total


def lr_schedule(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up for ``warmup_steps``, then cosine decay from max_lr to min_lr at total_steps.

    From ``total_steps`` on the rate is min_lr, whatever the warm-up: a warm-up longer than the
    run is cut off by its end (the rate never reaches max_lr), it does not carry on past it."""
    check_schedule(step, max_lr, warmup_steps, total_steps, min_lr)
    if step >= total_steps:
        return min_lr
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def check_schedule(step, max_lr, warmup_steps, total_steps, min_lr) -> None:
    """Steps are integers >= 0 and rates finite numbers >= 0, each named when it is not."""
    for name, value in (("step", step), ("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    for name, value in (("max_lr", max_lr), ("min_lr", min_lr)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
