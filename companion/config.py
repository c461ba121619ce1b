"""ModelConfig: every size and design choice of the model, in one frozen dataclass.

Two families share one code path and differ only in their defaults:

- ``gpt``   (GPT-2 / nanoGPT): LayerNorm, learned positions, GELU MLP, biases, tied head
  (the output head reuses the token embedding, as GPT-2 and nanoGPT do).
- ``llama`` (LLaMA):           RMSNorm, rotary positions (RoPE), SwiGLU, no biases, untied head
  (LLaMA 1-3 at 7B/8B and up keep a separate output matrix; the small LLaMA 3.2 1B/3B tie).

A field left as ``None`` takes its family's choice; anything can be overridden, so a
chapter can swap one piece (say RMSNorm into a GPT) and watch what changes.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

FAMILY_DEFAULTS = {
    "gpt": dict(norm="layernorm", positions="learned", ffn="gelu", bias=True, tie_weights=True),
    "llama": dict(norm="rmsnorm", positions="rope", ffn="swiglu", bias=False, tie_weights=False),
}
# The defaults before GPT tied and LLaMA untied: a stored config that lacks tie_weights was
# trained with these (companion.checkpoint fills the field from here when it loads one).
LEGACY_TIE_WEIGHTS = {"gpt": False, "llama": True}
CHOICES = {
    "family": ("gpt", "llama"),
    "norm": ("layernorm", "rmsnorm"),
    "positions": ("learned", "sinusoidal", "rope"),
    "ffn": ("relu", "gelu", "swiglu"),
    "norm_placement": ("pre", "post"),
    "dtype": ("float32", "float64"),
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 65
    block_size: int = 64  # the longest sequence the model accepts
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    family: str = "gpt"
    ffn_hidden: int | None = None  # hidden width of the feed-forward layer
    norm: str | None = None
    positions: str | None = None
    ffn: str | None = None
    bias: bool | None = None  # biases in linear layers and LayerNorm
    tie_weights: bool | None = None  # output head shares the token-embedding matrix
    norm_placement: str = "pre"  # 'pre' (GPT-2, LLaMA) or 'post' (the 2017 paper's Add & Norm)
    attn_only: bool = False  # blocks without the feed-forward (and its norm): Elhage et al. 2021's toy models
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    dtype: str = "float32"
    n_kv_head: int | None = None  # key/value heads (llama): n_head = multi-head, 1 = multi-query, between: grouped
    dropout: float = 0.0  # probability of zeroing a unit in training (GPT-2: 0.1); 0.0 draws nothing

    def __post_init__(self):
        if self.family not in FAMILY_DEFAULTS:
            raise ValueError(f"family must be one of {CHOICES['family']}, got {self.family!r}")
        for name, value in FAMILY_DEFAULTS[self.family].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # frozen: fill the family's default once
        if self.ffn_hidden is None:
            object.__setattr__(self, "ffn_hidden", default_ffn_hidden(self.n_embd, self.ffn))
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "ffn_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                f"each head gets n_embd // n_head channels"
            )
        check_positive_numbers(self, ("norm_eps", "rope_base"))
        check_kv_heads(self)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1): the chance of zeroing a unit in "
                             f"training, got {self.dropout!r}")
        if self.positions == "rope" and self.head_size % 2 != 0:
            raise ValueError(f"RoPE rotates channel pairs, so head_size ({self.head_size}) must be even")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build a config from a dict (a JSON file, a notebook), naming any unknown field."""
        return from_dict_checked(cls, d)

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (unknown fields are named in the error)."""
        return ModelConfig.from_dict({**self.to_dict(), **changes})


def check_kv_heads(config) -> None:
    """``n_kv_head`` (None: one key/value head per query head) must divide ``n_head``: each
    key/value head serves a group of n_head // n_kv_head query heads (Ainslie et al. 2023)."""
    if config.n_kv_head is None:
        object.__setattr__(config, "n_kv_head", config.n_head)  # frozen: plain multi-head attention
    n_kv = config.n_kv_head
    if not isinstance(n_kv, int) or isinstance(n_kv, bool) or n_kv <= 0 or config.n_head % n_kv != 0:
        raise ValueError(f"n_kv_head must be a positive integer that divides n_head ({config.n_head}): each "
                         f"key/value head serves n_head // n_kv_head query heads; got {n_kv!r}")
    if n_kv != config.n_head and config.family != "llama":
        raise ValueError(f"n_kv_head ({n_kv}) differs from n_head ({config.n_head}), but grouped-query attention "
                         f"is for the llama family (GPT-2's fused c_attn has one key/value head per query head); "
                         f"use family='llama' or leave n_kv_head out")


def check_positive_numbers(config, names) -> None:
    """Each named field must be a finite number > 0 (a NaN or a zero ``norm_eps`` would turn
    the first forward pass into NaN; ``rope_base`` <= 0 has no logarithm)."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def from_dict_checked(cls, d: dict):
    """``cls(**d)`` for a dataclass, but an unknown key is named instead of a bare TypeError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields are {sorted(known)}")
    return cls(**d)


def default_ffn_hidden(n_embd: int, ffn: str) -> int:
    """4 * n_embd for an MLP; for SwiGLU, 2/3 of that (rounded up to a multiple of 8)
    so that its three matrices hold about as many weights as the MLP's two."""
    if ffn == "swiglu":
        return 8 * ((2 * 4 * n_embd // 3 + 7) // 8)
    return 4 * n_embd


PRESETS = {
    # the ListOps model: 2 layers, n_embd 64, 4 heads, FFN 256, untied head, and the ListOps
    # task's 22-token vocabulary (about 106k parameters)
    "listops": dict(family="gpt", vocab_size=22, block_size=50, n_layer=2, n_head=4, n_embd=64, ffn_hidden=256,
                    tie_weights=False),
    # the LLaMA-style 2.3M-parameter model: tied head, 512-token BPE vocabulary
    "llama-2m": dict(family="llama", vocab_size=512, block_size=128, n_layer=5, n_head=6, n_embd=192, ffn_hidden=512,
                     tie_weights=True),
    # nanoGPT's CPU "baby" shakespeare_char config
    "baby": dict(family="gpt", vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, tie_weights=True),
    # a model small enough for a unit test or a gradient check
    "tiny": dict(family="gpt", vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=16),
}


def preset(name: str, **overrides) -> ModelConfig:
    """A named size preset, with any field overridden: ``preset('baby', vocab_size=80)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}")
    return ModelConfig.from_dict({**PRESETS[name], **overrides})
