"""A PyTorch twin of the companion model: the same architecture, built from torch.nn.

The twin is an oracle, not part of the course's model. The parity tests copy a companion
model's weights into it and compare logits, loss and every gradient with PyTorch autograd;
the benchmark (``python -m companion bench --vs-torch``) times one training step of each.

Every ModelConfig option has its counterpart here:

    norm        layernorm -> nn.LayerNorm(bias=config.bias)     rmsnorm -> nn.RMSNorm
    positions   learned -> nn.Embedding    sinusoidal -> fixed buffer    rope -> rotated q, k
    ffn         relu / gelu (tanh approximation) MLP            swiglu -> silu(gate) * up
    tie_weights the head reads the token embedding (F.linear(x, wte.weight))

Module attributes carry the companion's names (``blocks.0.attn.c_attn``), so a companion
parameter ``blocks.0.attn.c_attn.w`` is the torch parameter ``blocks.0.attn.c_attn.weight``.
The companion stores linear weights as (in, out); nn.Linear stores (out, in): copy_weights
and torch_gradients transpose them.

``torch`` is imported inside the functions, so ``import companion`` works without it.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import to_numpy
from ..positions import rope_tables, sinusoidal_table


def _torch():
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError("the torch twin needs PyTorch (CPU): pip install torch==2.13.0") from err
    return torch


def build_torch_model(config):
    """An nn.Module with the architecture of ``Transformer(config)``, in the config's dtype.

    ``forward(idx, targets=None, mask=None, pad_mask=None, dropout_masks=None) -> (logits, loss)``:
    idx (B, T) int64; targets (B, T); mask (B, T), 1 where a target counts (the companion's loss
    mask); pad_mask (B, T), True at real tokens; dropout_masks, the companion model's scaled masks
    after a training-mode forward (``[d.mask for d in model.dropouts()]``, None where nothing was
    dropped). loss is None when targets is None."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    dtype = getattr(torch, config.dtype)

    def make_norm():
        if config.norm == "rmsnorm":
            return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)

    def dropped(x, mask):
        """x times a given scaled dropout mask; x itself when there is none (evaluation)."""
        return x if mask is None else x * mask

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            C = config.n_embd
            self.c_attn = nn.Linear(C, C + 2 * config.n_kv_head * config.head_size, bias=config.bias)
            self.c_proj = nn.Linear(C, C, bias=config.bias)
            if config.positions == "rope":
                cos, sin = rope_tables(config.block_size, config.head_size, config.rope_base, np.float64)
                self.register_buffer("rope_cos", torch.from_numpy(to_numpy(cos)), persistent=False)
                self.register_buffer("rope_sin", torch.from_numpy(to_numpy(sin)), persistent=False)

        def rope(self, x):
            """Rotate interleaved channel pairs (2i, 2i+1) of x (B, nh, T, hs), as the companion does."""
            T = x.shape[2]
            cos, sin = self.rope_cos[:T].to(x.dtype), self.rope_sin[:T].to(x.dtype)  # (T, hs/2)
            x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, nh, T, hs/2)
            out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs/2, 2)
            return out.flatten(-2)  # (B, nh, T, hs): pairs back in place

        def forward(self, x, pad_mask=None, drop=None):
            B, T, C = x.shape
            nh, hs, nkv = config.n_head, C // config.n_head, config.n_kv_head
            q, k, v = self.c_attn(x).split([C, nkv * hs, nkv * hs], dim=2)  # (B, T, C), (B, T, nkv hs) x 2
            q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
            k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
            v = v.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
            if config.positions == "rope":
                q, k = self.rope(q), self.rope(k)
            # grouped-query attention: query head h reads key/value head h // (nh // nkv)
            if nkv != nh:
                k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)  # (B, nh, T, hs)
            if pad_mask is None and drop is None:  # what a PyTorch user writes: the fused kernel, causal
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
                allowed = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
                if pad_mask is not None:
                    allowed = allowed & pad_mask.bool()[:, None, None, :]  # (B, 1, T, T)
                att = att.masked_fill(~allowed, float("-inf"))
                # a query that may see nothing (padding only) gets all-zero weights, as in the companion
                # (SDPA would give NaN there, so this path spells attention out)
                any_key = allowed.any(dim=-1, keepdim=True)  # (B, 1, T, 1)
                att = torch.where(any_key, att, torch.zeros((), dtype=att.dtype))
                att = F.softmax(att, dim=-1) * any_key  # (B, nh, T, T)
                att = dropped(att, drop)  # the companion's scaled dropout mask on the weights
                y = att @ v  # (B, nh, T, hs)
            y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, config.ffn_hidden, bias=config.bias)
            self.c_proj = nn.Linear(config.ffn_hidden, config.n_embd, bias=config.bias)

        def forward(self, x):
            h = self.c_fc(x)  # (B, T, H)
            h = F.relu(h) if config.ffn == "relu" else F.gelu(h, approximate="tanh")
            return self.c_proj(h)

    class SwiGLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.w_gate = nn.Linear(config.n_embd, config.ffn_hidden, bias=config.bias)
            self.w_up = nn.Linear(config.n_embd, config.ffn_hidden, bias=config.bias)
            self.w_down = nn.Linear(config.ffn_hidden, config.n_embd, bias=config.bias)

        def forward(self, x):
            return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))  # (B, T, C)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = make_norm()
            self.attn = CausalSelfAttention()
            if not config.attn_only:  # attn_only: no feed-forward and no second norm
                self.norm2 = make_norm()
                self.ffn = SwiGLU() if config.ffn == "swiglu" else MLP()

        def forward(self, x, pad_mask=None, drops=(None, None, None)):
            d_att, d1, d2 = drops
            if config.norm_placement == "pre":
                x = x + dropped(self.attn(self.norm1(x), pad_mask, d_att), d1)
                return x if config.attn_only else x + dropped(self.ffn(self.norm2(x)), d2)
            x = self.norm1(x + dropped(self.attn(x, pad_mask, d_att), d1))
            return x if config.attn_only else self.norm2(x + dropped(self.ffn(x), d2))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = None if config.tie_weights else nn.Linear(config.n_embd, config.vocab_size, bias=False)

    class TorchTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = config
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.positions == "learned" else None
            if config.positions == "sinusoidal":
                table = sinusoidal_table(config.block_size, config.n_embd, np.float64)
                self.register_buffer("sinusoidal", torch.from_numpy(to_numpy(table)), persistent=False)
            self.blocks = nn.ModuleList([Block() for _ in range(config.n_layer)])
            self.norm_f = make_norm() if config.norm_placement == "pre" else None
            self.head = Head()
            for name, p in self.named_parameters():  # GPT-2's init: N(0, 0.02), ones and zeros for norms
                if p.ndim >= 2:
                    nn.init.normal_(p, 0.0, 0.02)

        def forward(self, idx, targets=None, mask=None, pad_mask=None, dropout_masks=None):
            B, T = idx.shape
            # dropout is not drawn here: the companion's scaled masks (model.dropout_masks()), in its
            # order (embeddings, then per block: attention weights, attention branch, feed-forward
            # branch), are multiplied in where the companion applies them, so both see the same units
            if dropout_masks is None:
                dropout_masks = [None] * (1 + 3 * config.n_layer)
            drops = [None if d is None else torch.as_tensor(d).to(dtype) for d in dropout_masks]
            if T > config.block_size:
                raise ValueError(f"sequence too long: {T} tokens exceed block_size {config.block_size}")
            x = self.wte(idx)  # (B, T, C)
            if self.wpe is not None:
                x = x + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
            elif config.positions == "sinusoidal":
                x = x + self.sinusoidal[:T].to(x.dtype)  # (B, T, C)
            x = dropped(x, drops[0])
            for i, block in enumerate(self.blocks):
                x = block(x, pad_mask, drops[1 + 3 * i : 4 + 3 * i])  # (B, T, C)
            if self.norm_f is not None:
                x = self.norm_f(x)
            if self.head.proj is not None:
                logits = self.head.proj(x)  # (B, T, V)
            else:
                logits = F.linear(x, self.wte.weight)  # (B, T, V): the tied head, x @ wte.T
            if targets is None:
                return logits, None
            if mask is None:  # every position scored: the plain mean cross-entropy
                return logits, F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1))
            weight = torch.as_tensor(mask).to(logits.dtype)
            picked = torch.where(weight > 0, targets, torch.zeros_like(targets))  # masked targets never read
            nll = F.cross_entropy(logits.reshape(B * T, -1), picked.reshape(-1), reduction="none")  # (B*T,)
            loss = (nll * weight.reshape(-1)).sum() / weight.sum()
            return logits, loss

    return TorchTransformer().to(dtype)


def _torch_name(name: str) -> str:
    """Companion name -> torch name: a trailing '.w' is '.weight', a trailing '.b' is '.bias'."""
    prefix, _, leaf = name.rpartition(".")
    leaf = {"w": "weight", "b": "bias"}.get(leaf, leaf)
    return f"{prefix}.{leaf}" if prefix else leaf


def _is_linear(torch_model, torch_name: str) -> bool:
    torch = _torch()
    module = torch_model.get_submodule(torch_name.rpartition(".")[0])
    return isinstance(module, torch.nn.Linear) and torch_name.endswith(".weight")


def _name_map(companion_model, torch_model) -> dict[str, str]:
    """companion name -> torch name, checking that both models hold the same parameters."""
    ours = {name: _torch_name(name) for name in companion_model.parameters()}
    theirs = dict(torch_model.named_parameters())  # a tied matrix is listed once
    missing = sorted(set(ours.values()) - set(theirs))
    extra = sorted(set(theirs) - set(ours.values()))
    if missing or extra:
        raise ValueError(f"the models differ: torch lacks {missing}, companion lacks {extra}")
    return ours


def copy_weights(companion_model, torch_model) -> None:
    """Copy every parameter of the companion model into the twin, in the config's dtype.
    Linear weights are transposed: (in, out) here, (out, in) in nn.Linear."""
    torch = _torch()
    dtype = getattr(torch, companion_model.config.dtype)
    torch_model.to(dtype)
    theirs = dict(torch_model.named_parameters())
    with torch.no_grad():
        for ours_name, torch_name in _name_map(companion_model, torch_model).items():
            value = torch.from_numpy(np.ascontiguousarray(to_numpy(companion_model.parameters()[ours_name])))
            if _is_linear(torch_model, torch_name):
                value = value.T
            target = theirs[torch_name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{ours_name}: companion shape {tuple(value.shape)} vs torch {tuple(target.shape)}")
            target.copy_(value.to(dtype))


def _companion_name(torch_name: str) -> str:
    """Torch name -> companion name: '.weight' is '.w' and '.bias' is '.b' (embeddings included)."""
    prefix, _, leaf = torch_name.rpartition(".")
    leaf = {"weight": "w", "bias": "b"}[leaf]
    return f"{prefix}.{leaf}"


def _as_companion(torch_model, which: str) -> dict[str, np.ndarray]:
    out = {}
    for torch_name, p in torch_model.named_parameters():
        t = p.detach() if which == "data" else p.grad
        if t is None:
            raise ValueError(f"{torch_name} has no gradient: call loss.backward() first")
        if _is_linear(torch_model, torch_name):
            t = t.T  # (out, in) -> the companion's (in, out)
        out[_companion_name(torch_name)] = t.detach().cpu().numpy().copy()
    return out


def torch_gradients(torch_model) -> dict[str, np.ndarray]:
    """The twin's parameter gradients (after loss.backward()) as NumPy arrays, keyed by the
    companion's names and laid out as the companion stores them ((in, out) for Linear)."""
    return _as_companion(torch_model, "grad")


def torch_parameters(torch_model) -> dict[str, np.ndarray]:
    """The twin's parameter values, keyed and laid out as ``Transformer.parameters()``."""
    return _as_companion(torch_model, "data")


def torch_num_params(torch_model) -> int:
    """Trainable parameters of the twin, a tied matrix counted once."""
    return sum(p.numel() for p in torch_model.parameters())
