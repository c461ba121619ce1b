"""Graded tests, chapter 11: a config's parameters, forward FLOPs and activation memory by
component, bits per character from one model's token losses, and one data-parallel share's
summed loss and scaled dlogits.

References: companion.accounting (whose parameter counts are checked against every built model
and against GPT-2 small's and LLaMA-7B's published sizes), companion.loss (log_softmax, and
cross_entropy_forward/backward of the whole batch, which the shares must add up to; checked here
against finite differences too) and companion.data_parallel.share_bounds (how a batch's rows are
split). Configs are passed as plain dicts (ModelConfig.to_dict()), results are plain dicts and floats.
"""

import math

import numpy as np
import pytest

from companion import accounting
from companion.config import preset
from companion.data_parallel import share_bounds
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple
from companion.loss import cross_entropy_backward, cross_entropy_forward, log_softmax

CHAPTER = "ch11"
pytestmark = pytest.mark.ch11

PARAM_KEYS = ("token_embedding", "positions", "attention", "feedforward", "norms", "head", "total")
FLOP_KEYS = ("qkv", "attn_scores", "attn_mix", "attn_proj", "ffn", "head", "total")
VARIANTS = [dict(), dict(tie_weights=False), dict(norm_placement="post"), dict(positions="rope"),
            dict(ffn="relu", bias=False), dict(family="llama"), dict(family="llama", tie_weights=False),
            dict(family="llama", norm="layernorm")]


def expect_counts(got, keys, what):
    expect(isinstance(got, dict), f"{what} must return a dict, got {type(got).__name__}")
    missing = [k for k in keys if k not in got]
    expect(not missing, f"{what}'s dict is missing {missing}; it needs {list(keys)}")
    for k in keys:
        expect(isinstance(got[k], (int, np.integer)) and not isinstance(got[k], bool),
               f"{what}[{k!r}] should be an int, got {got[k]!r}")
    return {k: int(got[k]) for k in keys}


# ------------------------------------------------------------------ 11.1 parameters


def param_bugs(config, want):
    """What common mistakes give, component by component: {component: {description: value}}."""
    C, H, V, L = config.n_embd, config.ffn_hidden, config.vocab_size, config.n_layer
    pre = config.norm_placement == "pre"
    n_norms = 2 * L + (1 if pre else 0)
    per_norm = want["norms"] // n_norms
    bias = bool(config.bias)
    return {
        "head": {"the head is counted although it is tied to the embedding (tie_weights=True): count it 0": C * V,
                 "a separate head (tie_weights=False) is not counted: it is a (C, V) matrix": 0},
        "attention": {"the attention biases are missing (3C for W_qkv, C for W_o, when bias)": L * 4 * C * C,
                      "W_qkv counted as (C, C): it is (C, 3C), and W_o (C, C), so 4 C^2 a layer": L * 2 * C * C,
                      "biases counted although bias is False": L * (4 * C * C + 4 * C)},
        "feedforward": {"SwiGLU has three matrices (gate, up, down), not two": L * 2 * C * H,
                        "the feed-forward biases are missing (H and C, when bias)": L * 2 * C * H,
                        "biases counted although bias is False": L * (2 * C * H + H + C)},
        "norms": {"the final norm before the head (pre-norm) is missing": 2 * L * per_norm if pre else -1,
                  "a final norm is counted, but post-norm blocks already end in one": (2 * L + 1) * per_norm,
                  "a LayerNorm with bias has C weights and C biases": n_norms * C if bias else -1,
                  "RMSNorm has no bias, only C weights": n_norms * 2 * C},
        "positions": {"learned positions (block_size, C) are missing": 0,
                      "RoPE and sinusoidal positions have no parameters": config.block_size * C},
    }


@pytest.mark.exercise("11.1", "count_parameters")
@pytest.mark.points(3)
def test_parameter_counts_by_component(impl):
    for changes in VARIANTS:
        config = preset("tiny", **changes)
        want = accounting.parameter_counts(config)
        got = expect_counts(impl.count_parameters(config.to_dict()), PARAM_KEYS, "count_parameters")
        bugs = param_bugs(config, want)
        for k in PARAM_KEYS[:-1]:
            if got[k] != want[k]:
                named = [d for d, v in bugs.get(k, {}).items() if v == got[k]]
                where = ", ".join(f"{a}={b}" for a, b in changes.items()) or "its defaults"
                expect(False, f"{k} of a tiny {config.family} model with {where}: {got[k]:,}, expected {want[k]:,}"
                              + (f": it looks like {named[0]}" if named else ""))
        expect(got["total"] == sum(got[k] for k in PARAM_KEYS[:-1]), "'total' must be the sum of the components")


@pytest.mark.exercise("11.1", "count_parameters")
@pytest.mark.points(2)
def test_published_sizes_of_gpt2_small_and_llama_7b(impl):
    for name, published in (("gpt2-124m", 124_439_808), ("llama-7b", 6_738_415_616)):
        config = accounting.reference_config(name)
        got = expect_counts(impl.count_parameters(config.to_dict()), PARAM_KEYS, "count_parameters")
        expect(got["total"] == published,
               f"{name} (tie_weights={config.tie_weights}): {got['total']:,} parameters, published {published:,}")


# ------------------------------------------------------------------ 11.2 FLOPs


@pytest.mark.exercise("11.2", "count_forward_flops")
@pytest.mark.points(3)
def test_forward_flops_by_component(impl):
    for name, B, T in (("baby", 3, 64), ("llama-2m", 2, 100), ("listops", 5, 17)):
        check_flops(impl, preset(name), name, B, T)


def check_flops(impl, config, name, B, T):
    want = accounting.forward_flops(config, B, T)
    got = expect_counts(impl.count_forward_flops(config.to_dict(), B, T), FLOP_KEYS, "count_forward_flops")
    C, H, nh = config.n_embd, config.ffn_hidden, config.n_head
    for k in FLOP_KEYS[:-1]:
        if got[k] == want[k]:
            continue
        hint = ""
        if got[k] * 2 == want[k]:
            hint = ": it looks like m·k·n without the factor 2 (a multiply and an add per term)"
        elif k.startswith("attn_") and got[k] * nh == want[k]:
            hint = ": it looks like one head's product only; every one of the n_head heads does one"
        elif k.startswith("attn_") and got[k] == want[k] * nh:
            hint = ": it looks like each head multiplied over C channels; a head has hs = C / n_head"
        elif k == "ffn" and config.ffn == "swiglu" and got[k] * 3 == want[k] * 2:
            hint = ": SwiGLU makes three products (gate, up, down), not two"
        elif k == "head" and got[k] == 0:
            hint = ": a tied head still multiplies (B·T, C) @ (C, V); tying saves parameters, not FLOPs"
        elif k == "ffn" and (got[k] * C == want[k] * H or got[k] * H == want[k] * C):
            hint = ": the hidden width is ffn_hidden (H), not n_embd"
        expect(False, f"{k} for preset {name!r}, B={B}, T={T}: {got[k]:,}, expected {want[k]:,}{hint}")
    expect(got["total"] == want["total"], "'total' must be the sum of the components")


# ------------------------------------------------------------------ 11.3 bits per character


def scored(rng, N=4, T=6, V=11, scale=1.0):
    logits = rng.standard_normal((N, T, V)) * scale  # (N, T, V)
    targets = rng.integers(0, V, size=(N, T))  # (N, T)
    mask = np.ones((N, T))
    mask[1, 4:], mask[3, 2:] = 0, 0  # padding at the ends of two chunks
    targets[mask == 0] = 0
    return logits, targets, mask


def reference_bpc(logits, targets, mask, n_chars):
    nll = -np.take_along_axis(log_softmax(logits), targets[..., None], axis=-1)[..., 0]  # (N, T)
    return float((nll * mask).sum() / n_chars / math.log(2)), nll


@pytest.mark.exercise("11.3", "bits_per_character")
@pytest.mark.points(2)
def test_bits_per_character(impl):
    logits, targets, mask = scored(np.random.default_rng(0))
    n_chars = 37
    want, nll = reference_bpc(logits, targets, mask, n_chars)
    got = impl.bits_per_character(logits, targets, mask, n_chars)
    expect(isinstance(got, (float, np.floating)) and not isinstance(got, bool),
           f"bits_per_character must return a float, got {type(got).__name__}")
    got = float(got)
    bugs = {
        "nats, not bits: divide by ln 2": want * math.log(2),
        "bits per token: the sum must be divided by the number of characters, not of tokens":
            float((nll * mask).sum() / mask.sum() / math.log(2)),
        "the padding (mask 0) was scored too": float(nll.sum() / n_chars / math.log(2)),
        "log2 of the softmax divided by ln 2 again": want / math.log(2),
    }
    if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
        named = [d for d, v in bugs.items() if math.isclose(got, v, rel_tol=1e-9)]
        expect(False, f"bits per character {got:.6g}, expected {want:.6g}" + (f": it looks like {named[0]}" if named else ""))


@pytest.mark.exercise("11.3", "bits_per_character")
@pytest.mark.points(1)
def test_bits_per_character_survives_large_logits(impl):
    logits, targets, mask = scored(np.random.default_rng(1), scale=1000.0)
    want, _ = reference_bpc(logits, targets, mask, 50)
    got = impl.bits_per_character(logits, targets, mask, 50)
    expect(isinstance(got, (float, np.floating)) and not isinstance(got, bool),
           f"bits_per_character must return a float, got {type(got).__name__}")
    expect(math.isfinite(float(got)),
           f"bits per character is {got} for logits of about 1000: subtract each row's maximum before exp")
    expect(math.isclose(float(got), want, rel_tol=1e-9), f"bits per character {float(got):.6g}, expected {want:.6g} at large logits")


# ------------------------------------------------------------------ 11.4 activation memory

ACT_KEYS = ("embedding", "positions", "norms", "attention", "feedforward", "head", "total")


def activation_bugs(config, B, T, want, s):
    """What common mistakes give, component by component: {component: {description: value}}."""
    C, H, L, nh = config.n_embd, config.ffn_hidden, config.n_layer, config.n_head
    rope = 2 * B * T * C * s if config.positions == "rope" else 0
    return {
        "attention": {"the attention weights are (B, nh, T, T), one T x T matrix per head":
                          want["attention"] - L * B * (nh - 1) * T * T * s,
                      "the attention weights (B, nh, T, T) are missing": want["attention"] - L * B * nh * T * T * s,
                      "with RoPE, the rotated copies of q and k are two more (B, T, C) arrays":
                          want["attention"] - L * rope if rope else -1,
                      "the count is one layer's: multiply by n_layer": want["attention"] // L},
        "feedforward": {"the count is one layer's: multiply by n_layer": want["feedforward"] // L,
                        "the hidden arrays are (B, T, H), H = ffn_hidden, not (B, T, C)":
                            want["feedforward"] // H * C if want["feedforward"] % H == 0 else -1},
        "norms": {"each norm also keeps one 1/std per position, (B, T, 1)": want["norms"] - (want["norms"] // (C + 1)),
                  "the final norm before the head (pre-norm) is missing":
                      want["norms"] - want["norms"] // (2 * L + 1) if config.norm_placement == "pre" else -1},
        "embedding": {"token ids are numpy's default integers (np.intp), not numbers of the dtype": B * T * s},
    }


@pytest.mark.exercise("11.4", "activation_bytes")
@pytest.mark.points(3)
def test_activation_bytes_match_the_caches(impl):
    from companion.model import Transformer

    for name, changes, B, T, dtype in (("tiny", {}, 2, 16, "float32"), ("tiny", dict(family="llama"), 3, 8, "float64"),
                                       ("tiny", dict(ffn="relu", norm_placement="post"), 2, 12, "float32"),
                                       ("tiny", dict(positions="sinusoidal"), 1, 16, "float64")):
        config = preset(name, dtype=dtype, **changes)
        model = Transformer(config, np.random.default_rng(0))
        model.forward(np.zeros((B, T), dtype=np.int64))
        want = accounting.cached_activation_bytes(model)  # what the caches really hold
        assert want == accounting.activation_bytes(config, B, T)  # the reference agrees with them
        got = expect_counts(impl.activation_bytes(config.to_dict(), B, T, dtype), ACT_KEYS, "activation_bytes")
        bugs = activation_bugs(config, B, T, want, np.dtype(dtype).itemsize)
        where = ", ".join(f"{a}={b}" for a, b in changes.items()) or "its defaults"
        for k in ACT_KEYS[:-1]:
            if got[k] != want[k]:
                named = [d for d, v in bugs.get(k, {}).items() if v == got[k]]
                expect(False, f"{k} of a tiny model with {where}, B={B}, T={T}, {dtype}: {got[k]:,} bytes, expected "
                              f"{want[k]:,}" + (f": it looks like {named[0]}" if named else ""))
        expect(got["total"] == want["total"], "'total' must be the sum of the components")


@pytest.mark.exercise("11.4", "activation_bytes")
@pytest.mark.points(1)
def test_activation_bytes_grow_with_t_squared_only_in_attention(impl):
    config = accounting.reference_config("gpt2-124m")
    rows = [expect_counts(impl.activation_bytes(config.to_dict(), 1, T, "float32"), ACT_KEYS, "activation_bytes")
            for T in (256, 512, 1024)]
    for k in ("norms", "feedforward", "head", "embedding"):  # linear in T: doubling T doubles them
        expect(rows[1][k] == 2 * rows[0][k] and rows[2][k] == 2 * rows[1][k], f"{k} should be linear in T")
    want = [accounting.activation_bytes(config, 1, T) for T in (256, 512, 1024)]
    expect([r["attention"] for r in rows] == [w["attention"] for w in want],
           "attention bytes of GPT-2 small at T = 256, 512, 1024 differ from the caches' count")


# ------------------------------------------------------------------ 11.5 one data-parallel share


def padded_batch(rng, counted, T=6, V=11, scale=1.0):
    """logits (B, T, V), targets (B, T) and a loss mask that counts counted[r] tokens of row r."""
    B = len(counted)
    logits = rng.standard_normal((B, T, V)) * scale  # (B, T, V)
    targets = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = (np.arange(T)[None, :] < np.array(counted)[:, None]).astype(float)  # (B, T): padding at the ends
    targets[mask == 0] = 0
    return logits, targets, mask


def share_call(impl, logits, targets, mask, n_total, what):
    """The learner's (loss_sum, dlogits) for one share, given copies (so a share cannot change the batch)."""
    given = logits.copy()
    got = expect_tuple(impl.share_loss_and_dlogits(given, targets.copy(), mask.copy(), n_total), 2,
                       "share_loss_and_dlogits must return (loss_sum, dlogits)")
    loss_sum, dlogits = got
    expect(isinstance(loss_sum, (int, float, np.integer, np.floating)) and not isinstance(loss_sum, bool),
           f"loss_sum of {what} should be a number (a float), got {type(loss_sum).__name__}")
    expect(np.array_equal(given, logits), f"share_loss_and_dlogits changed the logits of {what}: work on a copy")
    return float(loss_sum), expect_array(dlogits, f"dlogits of {what}", logits.shape)


def share_gradient_bugs(logits, targets, mask, n_total, n_shares, B):
    """What common mistakes give for one share's dlogits (b, T, V) with at least one counted token."""
    b, T, _ = logits.shape
    n_share = mask.sum()
    own = cross_entropy_backward(cross_entropy_forward(logits, targets, mask)[1])  # the share's own mean's gradient
    unmasked = cross_entropy_backward(cross_entropy_forward(logits, targets)[1]) * (b * T) / n_total
    right = own * n_share / n_total
    return {
        "no scaling: this is the gradient of the share's own mean loss; the batch's mean divides each token "
        "by n_total, so scale by n_share / n_total (n_share: the tokens this share's mask counts)": own,
        "the share's own mean gradient divided by the number of shares: that holds only when every share "
        "counts the same number of tokens; scale by n_share / n_total": own / n_shares,
        "a scale by the share's positions b*T rather than the tokens its mask counts (the mask counts "
        "different numbers in different shares): scale by n_share / n_total, n_share = mask.sum()":
            own * (b * T) / n_total,
        "a scale by the share's rows, b / B, rather than the tokens its mask counts: scale by n_share / n_total":
            own * b / B,
        "the mask is ignored: padding positions (mask 0) get a gradient": unmasked,
        "no division at all: that is the gradient of the summed loss; divide each counted token's row by n_total":
            right * n_total,
        "a division by n_share and by n_total: divide by n_total only": right / n_share,
        "the sign is flipped: each counted row is softmax minus one-hot": -right,
    }


@pytest.mark.exercise("11.5", "share_loss_and_dlogits")
@pytest.mark.points(3)
def test_shares_dlogits_concatenate_to_the_whole_batch_gradient(impl):
    rng = np.random.default_rng(0)
    logits, targets, mask = padded_batch(rng, counted=(6, 3, 2, 5, 1))  # rows count 6, 3, 2, 5 and 1 tokens
    B = len(mask)
    n_total = float(mask.sum())
    want = cross_entropy_backward(cross_entropy_forward(logits, targets, mask)[1])  # (B, T, V): the whole batch's
    for n_shares in (2, 3):
        for k, (start, stop) in enumerate(share_bounds(B, n_shares)):
            rows = slice(start, stop)
            what = (f"share {k} of {n_shares} (rows {start}:{stop}, {mask[rows].sum():g} of the batch's "
                    f"{n_total:g} counted tokens)")
            _, got = share_call(impl, logits[rows], targets[rows], mask[rows], n_total, what)
            bugs = share_gradient_bugs(logits[rows], targets[rows], mask[rows], n_total, n_shares, B)
            expect_close(got, want[rows], f"dlogits of {what}", bugs, rtol=1e-9, atol=1e-12)
    # independent of the companion's backward: finite differences of the whole batch's mean loss
    logits, targets, mask = padded_batch(np.random.default_rng(1), counted=(3, 1, 2), T=3, V=4)
    n_total = float(mask.sum())
    got = np.concatenate([share_call(impl, logits[a:b], targets[a:b], mask[a:b], n_total, f"rows {a}:{b}")[1]
                          for a, b in share_bounds(len(mask), 2)])  # (B, T, V)
    _, numeric = numeric_gradient(lambda: cross_entropy_forward(logits, targets, mask)[0], logits)
    err = relative_error(got.reshape(-1), numeric)
    expect(err < 1e-6, f"the shares' dlogits, concatenated, disagree with finite differences of the whole batch's "
                       f"mean loss: relative error {err:.2e} (tolerance 1e-6, h=1e-6, float64)")


@pytest.mark.exercise("11.5", "share_loss_and_dlogits")
@pytest.mark.points(1)
def test_shares_loss_sums_give_the_whole_batch_mean(impl):
    for seed, scale in ((2, 1.0), (3, 1000.0)):
        logits, targets, mask = padded_batch(np.random.default_rng(seed), counted=(6, 3, 2, 5, 1), scale=scale)
        n_total = float(mask.sum())
        nll = -np.take_along_axis(log_softmax(logits), targets[..., None], axis=-1)[..., 0]  # (B, T)
        sums = []
        for k, (start, stop) in enumerate(share_bounds(len(mask), 2)):
            rows = slice(start, stop)
            what = f"share {k} of 2 (rows {start}:{stop}) with logits of about {scale:g}"
            got, _ = share_call(impl, logits[rows], targets[rows], mask[rows], n_total, what)
            expect(math.isfinite(got), f"loss_sum of {what} is {got}: subtract each row's maximum before exp")
            want = float((nll[rows] * mask[rows]).sum())
            bugs = {"the share's mean loss, not its sum over its counted tokens": want / mask[rows].sum(),
                    "the sum already divided by n_total: return the sum (the caller adds the shares' sums, "
                    "then divides once)": want / n_total,
                    "the padding (mask 0) was scored too": float(nll[rows].sum()),
                    "the sign is flipped: the loss is minus the log-probability": -want}
            if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
                named = [d for d, v in bugs.items() if math.isclose(got, v, rel_tol=1e-9)]
                expect(False, f"loss_sum of {what}: {got:.6g}, expected {want:.6g}"
                              + (f": it looks like {named[0]}" if named else ""))
            sums.append(got)
        whole = cross_entropy_forward(logits, targets, mask)[0]
        expect(math.isclose(sum(sums) / n_total, whole, rel_tol=1e-9),
               f"the shares' loss sums / n_total = {sum(sums) / n_total:.6g}, the whole batch's mean loss {whole:.6g}")


@pytest.mark.exercise("11.5", "share_loss_and_dlogits")
@pytest.mark.points(1)
def test_a_share_that_counts_no_token(impl):
    logits, targets, mask = padded_batch(np.random.default_rng(4), counted=(4, 2, 0, 0))  # share 1: padding only
    n_total = float(mask.sum())
    (a, b), (c, d) = share_bounds(len(mask), 2)
    loss_sum, dlogits = share_call(impl, logits[c:d], targets[c:d], mask[c:d], n_total,
                                   "a share whose mask counts no token")
    expect(np.isfinite(loss_sum) and np.all(np.isfinite(dlogits)),
           "a share whose mask counts no token gave NaN or inf: it must give loss_sum 0.0 and zero dlogits "
           "(its own count, 0, must never be a divisor)")
    expect(loss_sum == 0.0, f"loss_sum of a share whose mask counts no token: {loss_sum:.6g}, expected 0.0")
    expect_close(dlogits, np.zeros_like(logits[c:d]), "dlogits of a share whose mask counts no token",
                 {"the mask is ignored: padding positions (mask 0) get a gradient":
                      cross_entropy_backward(cross_entropy_forward(logits[c:d], targets[c:d])[1]) * logits[c:d].shape[0]
                      * logits.shape[1] / n_total}, rtol=0, atol=1e-12)
    want = cross_entropy_backward(cross_entropy_forward(logits, targets, mask)[1])  # (B, T, V)
    _, got = share_call(impl, logits[a:b], targets[a:b], mask[a:b], n_total, "the share that counts every token")
    expect_close(got, want[a:b], "dlogits of the share that holds every counted token (n_share = n_total)",
                 rtol=1e-9, atol=1e-12)
