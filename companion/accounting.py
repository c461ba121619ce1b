"""Resource accounting: what a model of a given shape costs, counted from its config alone.

Nothing here builds a model or allocates its weights, so the same functions describe the
course's 100k-parameter presets and the shapes of GPT-2 124M (Radford et al. 2019) and
LLaMA-7B (Touvron et al. 2023), whose weights would not fit a learner's laptop in float64.

Parameters, per component (C = n_embd, H = ffn_hidden, V = vocab_size, L = n_layer):

    token embedding      V C
    learned positions    block_size C                   (none for sinusoidal or RoPE)
    attention, a layer   C 3C + C C   (+ 3C + C biases)
    feed-forward         2 C H        (+ H + C biases); SwiGLU: 3 C H, no biases
    norms                2 per layer + 1 final: C weights each (+ C biases for LayerNorm)
    output head          C V, or 0 when tied to the token embedding

Forward FLOPs count matrix products only, 2 m k n for (m, k) @ (k, n), the convention of
``companion.bench``: norms, softmax and activations are O(B T C) and are left out. A training
step costs about 3x the forward (each product's backward is two products of the same size),
which with N parameters and D tokens gives the familiar 6 N D when T is small next to C.
"""

from __future__ import annotations

from .config import ModelConfig

# Published shapes. Both parameter counts are checked in tests/test_accounting.py against the
# numbers the models' authors report: 124,439,808 (GPT-2 small, head tied to the embedding) and
# 6,738,415,616 (LLaMA-7B, separate output matrix).
GPT2_124M = dict(family="gpt", vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768,
                 tie_weights=True)
LLAMA_7B = dict(family="llama", vocab_size=32000, block_size=2048, n_layer=32, n_head=32, n_embd=4096,
                ffn_hidden=11008, tie_weights=False, norm_eps=1e-6)
REFERENCE_SHAPES = {"gpt2-124m": GPT2_124M, "llama-7b": LLAMA_7B}
BYTES_PER = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}


def reference_config(name: str) -> ModelConfig:
    """The config of a published model's shape: 'gpt2-124m' or 'llama-7b'."""
    if name not in REFERENCE_SHAPES:
        raise ValueError(f"unknown reference shape {name!r}; known: {sorted(REFERENCE_SHAPES)}")
    return ModelConfig.from_dict(REFERENCE_SHAPES[name])


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Parameters by component (all layers summed); 'total' is what ``num_params()`` reports."""
    C, H, V, L = config.n_embd, config.ffn_hidden, config.vocab_size, config.n_layer
    bias = bool(config.bias)
    norm = C * (2 if config.norm == "layernorm" and bias else 1)  # weight (+ bias) of one norm
    if config.ffn == "swiglu":
        ffn = 3 * C * H  # gate, up, down: no biases in LLaMA's SwiGLU
    else:
        ffn = 2 * C * H + (H + C if bias else 0)
    counts = {
        "token_embedding": V * C,
        "positions": config.block_size * C if config.positions == "learned" else 0,
        "attention": L * (4 * C * C + (4 * C if bias else 0)),
        "feedforward": L * ffn,
        "norms": (2 * L + (1 if config.norm_placement == "pre" else 0)) * norm,
        "head": 0 if config.tie_weights else C * V,
    }
    counts["total"] = sum(counts.values())
    return counts


def forward_flops(config: ModelConfig, batch_size: int, seq_len: int | None = None) -> dict[str, int]:
    """Matrix-product FLOPs of one forward pass over (batch_size, seq_len) tokens, by component."""
    B, T = batch_size, seq_len or config.block_size
    C, H, V, L = config.n_embd, config.ffn_hidden, config.vocab_size, config.n_layer
    n_ffn_mats = 3 if config.ffn == "swiglu" else 2
    flops = {
        "qkv": L * 2 * B * T * C * 3 * C,
        "attn_scores": L * 2 * B * T * T * C,  # n_head products (T, hs) @ (hs, T); n_head * hs = C
        "attn_mix": L * 2 * B * T * T * C,  # (T, T) @ (T, hs) per head, all T x T computed then masked
        "attn_proj": L * 2 * B * T * C * C,
        "ffn": L * n_ffn_mats * 2 * B * T * C * H,
        "head": 2 * B * T * C * V,
    }
    flops["total"] = sum(flops.values())
    return flops


def training_step_flops(config: ModelConfig, batch_size: int, seq_len: int | None = None) -> int:
    """Forward + backward matrix-product FLOPs of one training step: 3x the forward."""
    return 3 * forward_flops(config, batch_size, seq_len)["total"]


def training_memory(config: ModelConfig, dtype: str = "float32", optimizer: str = "adamw") -> dict[str, int]:
    """Bytes held for the whole run, not per step: weights, their gradients and the optimizer's
    state (Adam/AdamW keep two moments per parameter, SGD with momentum one, plain SGD none)."""
    if dtype not in BYTES_PER:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER)}, got {dtype!r}")
    moments = {"adamw": 2, "adam": 2, "sgd_momentum": 1, "sgd": 0}
    if optimizer not in moments:
        raise ValueError(f"optimizer must be one of {sorted(moments)}, got {optimizer!r}")
    n, size = parameter_counts(config)["total"], BYTES_PER[dtype]
    out = {"weights": n * size, "gradients": n * size, "optimizer_state": moments[optimizer] * n * size}
    out["total"] = sum(out.values())
    return out


def kv_cache_bytes(config: ModelConfig, batch_size: int, seq_len: int | None = None, dtype: str = "float32") -> int:
    """Bytes of a KV cache holding seq_len positions: a key and a value vector of n_embd numbers
    for every layer, batch element and position."""
    if dtype not in BYTES_PER:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER)}, got {dtype!r}")
    T = seq_len or config.block_size
    return 2 * config.n_layer * batch_size * T * config.n_embd * BYTES_PER[dtype]
