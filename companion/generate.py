"""Generation: extend a prompt one token at a time, with the KV cache.

    logits = model(prompt)                   # once, for the whole prompt (fills the cache)
    repeat: pick next from logits[:, -1]     # greedy or sampled
            logits = model([next], cache)    # one new token; the past comes from the cache

How the next token is picked from the last position's logits z (V,):

- greedy:       argmax z (deterministic; what evaluation uses)
- temperature:  p = softmax(z / temperature). Below 1 sharpens towards greedy (as it goes to
                0 the distribution becomes the argmax); above 1 flattens towards uniform.
- top-k:        keep the k largest logits, renormalise (Fan et al. 2018).
- top-p:        "nucleus": sort by probability and keep the smallest set whose total is at
                least p, renormalise (Holtzman et al. 2020). Adapts to how sure the model is.

Sampling draws u ~ U[0, 1) from the ``rng`` passed in and takes the first token whose
cumulative probability exceeds u, so the same generator state gives the same text.

A model with learned positions cannot read past ``block_size`` tokens. When a long sample
fills the window, the cache is rebuilt from the last ``block_size // 2`` tokens and
generation carries on (the model then forgets what slid out, as nanoGPT's sampler does).
"""

from __future__ import annotations

import numpy as np

from .backend import to_numpy, xp
from .dropout import without_dropout


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r} "
                         f"(greedy decoding, not a temperature, takes the likeliest token)")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None), got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (or None), got {top_p!r}")


def next_token_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> np.ndarray:
    """logits (B, V) -> probabilities (B, V) float64 after temperature, top-k and top-p."""
    check_sampling(temperature, top_k, top_p)
    z = to_numpy(logits).astype(np.float64) / temperature  # (B, V), sampled on the host
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]  # (B, 1) the k-th largest logit
        z = np.where(z >= kth, z, -np.inf)  # ties with the k-th are kept
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)  # (B, V)
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")  # (B, V) most probable first
        sorted_p = np.take_along_axis(p, order, axis=-1)  # (B, V)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p  # (B, V) mass of the tokens ranked above
        keep_sorted = before < top_p  # a token stays while the nucleus is still short of top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def pick_next(logits, rng: np.random.Generator | None = None, temperature: float = 1.0, top_k: int | None = None,
              top_p: float | None = None, greedy: bool = False) -> np.ndarray:
    """logits (B, V) -> next token ids (B,) int64."""
    logits = to_numpy(logits)
    if greedy:
        return np.argmax(logits, axis=-1).astype(np.int64)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("sampling needs rng, an explicit numpy.random.Generator such as np.random.default_rng(0) "
                         "(greedy decoding needs none)")
    p = next_token_probs(logits, temperature, top_k, top_p)  # (B, V)
    u = rng.random(p.shape[0])  # (B,)
    cdf = np.cumsum(p, axis=-1)  # (B, V)
    ids = (cdf <= u[:, None]).sum(axis=-1)  # (B,) first index whose cdf exceeds u
    # a token of probability 0 is never chosen, even when rounding leaves cdf[-1] < u
    last_allowed = p.shape[-1] - 1 - np.argmax(p[:, ::-1] > 0, axis=-1)  # (B,)
    return np.minimum(ids, last_allowed).astype(np.int64)


def check_prompts(model, prompts: np.ndarray) -> np.ndarray:
    prompts = to_numpy(prompts)  # token ids are host data (a device array is copied back once)
    if prompts.ndim != 2:
        raise ValueError(f"prompts must have shape (B, T), got {prompts.shape}")
    if prompts.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token (e.g. the tokenizer's <bos> id)")
    if prompts.dtype.kind not in "iu":
        raise TypeError(f"prompt token ids must be integers, got {prompts.dtype.name}")
    V, block_size = model.config.vocab_size, model.config.block_size
    if prompts.min() < 0 or prompts.max() >= V:
        bad = int(prompts.min()) if prompts.min() < 0 else int(prompts.max())
        raise ValueError(f"prompt token id {bad} is outside the model's vocabulary [0, {V})")
    if prompts.shape[1] > block_size:
        raise ValueError(f"the prompt has {prompts.shape[1]} tokens, more than the model's block_size "
                         f"{block_size}; shorten it")
    return prompts.astype(np.int64)


@without_dropout  # generation never drops units, whatever mode the model is in
def generate_batch(model, prompts, max_new_tokens: int, rng: np.random.Generator | None = None,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   greedy: bool = False, eos_id: int | None = None) -> np.ndarray:
    """prompts (B, T) of equal length -> new tokens (B, max_new_tokens) int64.

    A row that emits ``eos_id`` stops there: the eos is kept and the rest of the row is
    filled with eos_id. Generation ends early once every row has stopped."""
    prompts = check_prompts(model, prompts)
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if not greedy:
        check_sampling(temperature, top_k, top_p)
    B, T = prompts.shape
    block_size = model.config.block_size
    out = np.full((B, max_new_tokens), -1 if eos_id is None else eos_id, dtype=np.int64)  # (B, n)
    if max_new_tokens == 0:
        return out
    done = np.zeros(B, dtype=bool)
    context = prompts  # every token so far, to rebuild the cache when the window is full
    cache = model.new_kv_cache(B)
    logits = model.forward(xp.asarray(prompts), kv_cache=cache)[:, -1]  # (B, V)
    for i in range(max_new_tokens):
        nxt = pick_next(logits, rng, temperature, top_k, top_p, greedy)  # (B,)
        if eos_id is not None:
            nxt = np.where(done, eos_id, nxt)
            done |= nxt == eos_id
        out[:, i] = nxt
        if i == max_new_tokens - 1 or done.all():
            break
        context = np.concatenate([context, nxt[:, None]], axis=1)  # (B, T + i + 1)
        if cache.length == block_size:  # the window is full: slide it
            keep = context[:, -max(1, block_size // 2):]  # (B, block_size // 2)
            cache = model.new_kv_cache(B)
            logits = model.forward(xp.asarray(keep), kv_cache=cache)[:, -1]
        else:
            logits = model.forward(xp.asarray(nxt[:, None]), kv_cache=cache)[:, -1]  # (B, V)
    return out


def generate(model, prompt_ids, max_new_tokens: int, rng: np.random.Generator | None = None,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             greedy: bool = False, eos_id: int | None = None) -> list[int]:
    """Extend one prompt (a list of token ids) -> the new tokens, ending with eos_id if the
    model emitted it (so a finished answer can be told from one cut off by max_new_tokens)."""
    if isinstance(prompt_ids, (str, bytes)):
        raise TypeError("prompt_ids must be token ids; encode the text with the tokenizer first")
    ids = np.asarray(list(prompt_ids))
    if ids.size == 0:
        raise ValueError("the prompt is empty: give at least one token (e.g. the tokenizer's <bos> id)")
    new = generate_batch(model, ids[None, :], max_new_tokens, rng, temperature, top_k, top_p, greedy, eos_id)[0]
    tokens = [int(t) for t in new]
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id) + 1]
    return tokens
