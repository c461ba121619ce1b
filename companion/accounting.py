"""Resource accounting: what a model of a given shape costs, counted from its config alone.

Nothing here builds a model or allocates its weights, so the same functions describe the
course's 100k-parameter presets and the shapes of GPT-2 124M (Radford et al. 2019) and
LLaMA-7B (Touvron et al. 2023), whose weights would not fit a learner's laptop in float64.

Parameters, per component (C = n_embd, H = ffn_hidden, V = vocab_size, L = n_layer):

    token embedding      V C
    learned positions    block_size C                   (none for sinusoidal or RoPE)
    attention, a layer   C 3C + C C   (+ 3C + C biases); with n_kv_head < n_head (grouped-query),
                         k and v shrink to C K each, K = n_kv_head * head_size: C (C + 2K) + C C
    feed-forward         2 C H        (+ H + C biases); SwiGLU: 3 C H (+ 2H + C biases); none if attn_only
    norms                2 per layer (1 if attn_only) + 1 final: C weights each (+ C biases for LayerNorm)
    output head          C V, or 0 when tied to the token embedding

Forward FLOPs count matrix products only, 2 m k n for (m, k) @ (k, n), the convention of
``companion.tools.bench``: norms, softmaxes and activations cost a few operations per element (B T C
for the norms, B T H for the activation, B nh T T for attention's softmax, B T V for the loss's)
against 2 k per element of a product, and are left out. A training step costs 3x the forward
(each product's backward is two products of the same size). Per token that is
6 N + 12 n_layer T C, where N counts the weights of the matrix products (attention,
feed-forward and the head, tied or not; not the embedding lookup, which costs no FLOPs) and
the second term is attention's scores and mix over the whole T x T matrix. With
N ~ 12 n_layer C^2 the second term is about T / 6C of the first, so the familiar 6 N D for D
training tokens holds when T << 6C (Kaplan et al. 2020, counting half the T x T work, state
T << 12C). Chapter 11 compares the two for GPT-2 small and LLaMA-7B.

Activation memory (``activation_bytes``) is what one forward pass leaves in the modules'
caches for backward to read; ``cached_activation_bytes`` measures the same thing on a real
model, so the formula is checked against the arrays the code actually keeps.
"""

from __future__ import annotations

import numpy as np

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
    K = config.n_kv_head * config.head_size  # width of k and of v (= C without grouped-query attention)
    bias = bool(config.bias)
    norm = C * (2 if config.norm == "layernorm" and bias else 1)  # weight (+ bias) of one norm
    if config.ffn == "swiglu":
        ffn = 3 * C * H + (2 * H + C if bias else 0)  # gate, up, down (LLaMA's have no biases)
    else:
        ffn = 2 * C * H + (H + C if bias else 0)
    counts = {
        "token_embedding": V * C,
        "positions": config.block_size * C if config.positions == "learned" else 0,
        "attention": L * (2 * C * C + 2 * C * K + (2 * C + 2 * K if bias else 0)),
        "feedforward": 0 if config.attn_only else L * ffn,
        "norms": ((1 if config.attn_only else 2) * L + (1 if config.norm_placement == "pre" else 0)) * norm,
        "head": 0 if config.tie_weights else C * V,
    }
    counts["total"] = sum(counts.values())
    return counts


def forward_flops(config: ModelConfig, batch_size: int, seq_len: int | None = None) -> dict[str, int]:
    """Matrix-product FLOPs of one forward pass over (batch_size, seq_len) tokens, by component."""
    B, T = batch_size, seq_len or config.block_size
    C, H, V, L = config.n_embd, config.ffn_hidden, config.vocab_size, config.n_layer
    K = config.n_kv_head * config.head_size  # width of k and of v (= C without grouped-query attention)
    n_ffn_mats = 3 if config.ffn == "swiglu" else 2
    flops = {
        "qkv": L * 2 * B * T * C * (C + 2 * K),
        "attn_scores": L * 2 * B * T * T * C,  # n_head products (T, hs) @ (hs, T); n_head * hs = C
        "attn_mix": L * 2 * B * T * T * C,  # (T, T) @ (T, hs) per head, all T x T computed then masked
        "attn_proj": L * 2 * B * T * C * C,
        "ffn": 0 if config.attn_only else L * n_ffn_mats * 2 * B * T * C * H,
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
    _check_dtype(dtype)
    moments = {"adamw": 2, "adam": 2, "sgd_momentum": 1, "sgd": 0}
    if optimizer not in moments:
        raise ValueError(f"optimizer must be one of {sorted(moments)}, got {optimizer!r}")
    n, size = parameter_counts(config)["total"], BYTES_PER[dtype]
    out = {"weights": n * size, "gradients": n * size, "optimizer_state": moments[optimizer] * n * size}
    out["total"] = sum(out.values())
    return out


def kv_cache_bytes(config: ModelConfig, batch_size: int, seq_len: int | None = None, dtype: str = "float32") -> int:
    """Bytes of a KV cache holding seq_len positions: a key and a value vector of
    n_kv_head * head_size numbers (n_embd without grouped-query attention) for every layer,
    batch element and position."""
    if dtype not in BYTES_PER:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER)}, got {dtype!r}")
    T = seq_len or config.block_size
    return 2 * config.n_layer * batch_size * T * config.n_kv_head * config.head_size * BYTES_PER[dtype]


def _check_dtype(dtype: str) -> int:
    if dtype not in BYTES_PER:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER)}, got {dtype!r}")
    return BYTES_PER[dtype]


ACTIVATION_COMPONENTS = ("embedding", "positions", "norms", "attention", "feedforward", "head")
TOKEN_ID_BYTES = np.dtype(np.intp).itemsize  # token and position ids: numpy's default integer


def activation_bytes(config: ModelConfig, batch_size: int, seq_len: int | None = None,
                     dtype: str | None = None) -> dict[str, int]:
    """Bytes that one forward pass over (batch_size, seq_len) tokens leaves in the model's
    caches for backward, by component (all layers summed). dtype defaults to the config's.

    Counted as ``cached_activation_bytes`` measures them: each buffer once, a view counted as
    the whole array it keeps alive, parameters (which a cache also references) left out. The
    logits the model returns and the loss's own cache (both (B, T, V)) are not the model's."""
    B, T = batch_size, seq_len or config.block_size
    s = _check_dtype(dtype or config.dtype)
    C, H, L, nh = config.n_embd, config.ffn_hidden, config.n_layer, config.n_head
    BTC, BTH = B * T * C, B * T * H
    # embedding: the token ids idx (B, T), kept to scatter the gradient back into wte's rows
    # positions: learned ones keep their position ids (1, T); sinusoidal and RoPE keep nothing
    # norms: xhat (B, T, C) and 1/std (B, T, 1) per norm; 2 per block, + 1 final for pre-norm
    n_norms = (1 if config.attn_only else 2) * L + (1 if config.norm_placement == "pre" else 0)
    # attention, a layer: c_attn's input (B, T, C); q, k, v, which are views of one qkv array
    #   (B, T, 3C) that they keep alive whole; with RoPE, q and k are rotated copies (2 B T C
    #   more, v still holds qkv); the weights att (B, nh, T, T); c_proj's input y (B, T, C).
    #   Grouped-query (n_kv_head < n_head): qkv is (B, T, C + 2K), K = n_kv_head * head_size, and
    #   k and v are repeated to n_head heads (2 B T C); with RoPE, q is rotated too and no view of
    #   qkv is left, so only q, k and v, (B, nh, T, hs) each, stay.
    K = config.n_kv_head * config.head_size
    rope = config.positions == "rope"
    if K == C:
        qkv = 3 * BTC + (2 * BTC if rope else 0)
    else:
        qkv = 3 * BTC if rope else B * T * (C + 2 * K) + 2 * BTC
    attention = BTC + qkv + B * nh * T * T + BTC
    # feed-forward, a layer: the input (B, T, C), shared by SwiGLU's two input matrices, then
    #   GELU: pre-activation, tanh, output (3 B T H); ReLU: pre-activation, output (2 B T H);
    #   SwiGLU: gate, up, sigmoid(gate), silu(gate), output (5 B T H)
    hidden = {"gelu": 3, "relu": 2, "swiglu": 5}[config.ffn]
    out = {
        "embedding": B * T * TOKEN_ID_BYTES,
        "positions": T * TOKEN_ID_BYTES if config.positions == "learned" else 0,
        "norms": n_norms * (BTC + B * T) * s,
        "attention": L * attention * s,
        "feedforward": 0 if config.attn_only else L * (BTC + hidden * BTH) * s,
        # head: its input (B, T, C); a tied head also references wte, a parameter
        "head": BTC * s,
    }
    out["total"] = sum(out.values())
    return out


def _root(a):
    """The array that owns a view's memory: a view keeps all of it alive."""
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)


def cache_component(name: str) -> str:
    """The component a module's dotted name belongs to (``blocks.0.attn.c_attn`` -> attention)."""
    parts = name.strip(".").split(".")
    if parts[0] == "wte":
        return "embedding"
    if parts[0] == "wpe":
        return "positions"
    if parts[0] == "head":
        return "head"
    if parts[0] == "norm_f" or any(p.startswith("norm") for p in parts[2:3]):
        return "norms"
    if len(parts) > 2 and parts[2] in ("attn", "ffn"):
        return "attention" if parts[2] == "attn" else "feedforward"
    raise ValueError(f"no accounting component for module {name!r}")


def cached_activation_bytes(model) -> dict[str, int]:
    """Measure what the last forward pass left in ``model``'s caches: the nbytes of every
    ndarray in every module's ``.cache``, each buffer once (a view counts as the array it
    keeps alive, found through ``.base``), parameters left out. By component, + 'total'."""
    params = {id(_root(a)) for a in model.parameters().values()}
    seen, out = set(params), dict.fromkeys(ACTIVATION_COMPONENTS, 0)
    for name, module in model.named_modules():
        if not name or module.cache is None:
            continue
        for a in _arrays(module.cache):
            root = _root(a)
            if id(root) not in seen:
                seen.add(id(root))
                out[cache_component(name)] += int(root.nbytes)
    out["total"] = sum(out.values())
    return out


def by_component(config: ModelConfig, batch_size: int, seq_len: int | None = None,
                 dtype: str | None = None) -> dict[str, dict[str, int]]:
    """One table: per component, its parameters, forward FLOPs and activation bytes (cached
    for backward), for a forward pass over (batch_size, seq_len) tokens; plus a 'total' row.
    Positions are folded into 'embedding'; a tied head has no parameters of its own but
    still costs its FLOPs."""
    p = parameter_counts(config)
    f = forward_flops(config, batch_size, seq_len)
    a = activation_bytes(config, batch_size, seq_len, dtype)
    rows = {
        "embedding": (p["token_embedding"] + p["positions"], 0, a["embedding"] + a["positions"]),
        "attention": (p["attention"], f["qkv"] + f["attn_scores"] + f["attn_mix"] + f["attn_proj"], a["attention"]),
        "feedforward": (p["feedforward"], f["ffn"], a["feedforward"]),
        "norms": (p["norms"], 0, a["norms"]),
        "head": (p["head"], f["head"], a["head"]),
    }
    table = {k: dict(params=v[0], forward_flops=v[1], activation_bytes=v[2]) for k, v in rows.items()}
    table["total"] = {m: sum(r[m] for r in table.values()) for m in ("params", "forward_flops", "activation_bytes")}
    assert table["total"]["params"] == p["total"] and table["total"]["forward_flops"] == f["total"]
    return table
