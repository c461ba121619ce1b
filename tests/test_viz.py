"""companion.viz: heatmaps, the live ipywidgets explorer and the static HTML explorer.

Every expected value is computed independently of the code under test: attention weights from
``model.attention_weights`` (the model's own forward pass), snapshots by loading them into a
fresh model, probabilities from the model's logits. The widget tests drive the explorer the way a
reader does, by setting a control's value, and check the state it shows (no browser needed).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from companion import Transformer, preset
from companion.tokenizers import CharTokenizer
from companion.viz import (load_snapshot, plot_attention, plot_attention_grid, run_model, snapshot_callback,
                           snapshots_from_checkpoints, take_snapshot, token_label)
from companion.viz.explorer import ALL_HEADS, AttentionExplorer
from companion.viz.static import StaticExplorer

TEXT = "max(3 7 1)"


@pytest.fixture
def tok():
    return CharTokenizer("()0123456789 aimnx")


def make_model(tok, seed=0, scale=0.5, **overrides):
    """A tiny model with perturbed weights, so that heads differ clearly from one another."""
    rng = np.random.default_rng(seed)
    cfg = preset("tiny", vocab_size=tok.vocab_size, n_head=2, dtype="float64", **overrides)
    model = Transformer(cfg, rng)
    for p in model.parameters().values():
        p += rng.normal(0.0, scale, size=p.shape)
    return model


def reference_weights(model, tok, text):
    idx = np.array([tok.encode(text)])  # (1, T)
    return np.stack([w[0] for w in model.attention_weights(idx)])  # (n_layer, n_head, T, T)


def assert_causal_rows(m):
    T = m.shape[-1]
    np.testing.assert_allclose(m.sum(axis=-1), 1.0, atol=1e-9, err_msg="a row of attention weights must sum to 1")
    assert np.all(m[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0.0), "weights above the diagonal"


# --- data ----------------------------------------------------------------------------------------
def test_run_model_matches_the_models_own_forward_pass(tok):
    model = make_model(tok, family="llama")
    rec = run_model(model, tok, tok.encode(TEXT))
    np.testing.assert_allclose(rec.weights, reference_weights(model, tok, TEXT))
    assert_causal_rows(rec.weights)
    logits = model.forward(np.array([tok.encode(TEXT)]))[0]  # (T, V)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(rec.probs, expected, rtol=1e-10)
    assert rec.labels == tuple(token_label(c) for c in TEXT) and "\u2423" in rec.labels  # the space is visible


def test_snapshot_callback_copies_parameters(tok):
    model = make_model(tok)
    snaps, steps = [], []
    hook = snapshot_callback(snaps, steps, every=2)
    for step in range(5):
        hook(step, model)
        model.parameters()["wte.w"][...] += 1.0  # "training" changes the weights after each snapshot
    assert steps == [0, 2, 4]
    assert snaps[1]["wte.w"][0, 0] + 2.0 == pytest.approx(snaps[2]["wte.w"][0, 0])  # copies, not references
    with pytest.raises(ValueError, match="every"):
        snapshot_callback([], [], every=0)


def test_snapshots_from_saved_checkpoints(tok, tmp_path):
    from companion import save_checkpoint

    models = [make_model(tok, seed=s) for s in (1, 2)]
    for step, m in zip((10, 20), models):
        save_checkpoint(tmp_path / f"step{step}", m, step=step)
    snaps, steps = snapshots_from_checkpoints([tmp_path / "step10", tmp_path / "step20"])
    assert steps == [10, 20]
    for snap, m in zip(snaps, models):
        for name, p in m.parameters().items():
            np.testing.assert_array_equal(snap[name], p)


# --- heatmaps ------------------------------------------------------------------------------------
def test_plot_attention_draws_the_matrix_with_token_labels(tok):
    rec = run_model(make_model(tok), tok, tok.encode(TEXT))
    fig = plot_attention(rec.weights[1, 0], rec.labels, "layer 1, head 0")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), rec.weights[1, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(rec.labels)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rec.labels)
    assert ax.get_title() == "layer 1, head 0"
    with pytest.raises(ValueError, match="square"):
        plot_attention(np.ones((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="one label per token"):
        plot_attention(np.eye(3), ["a", "b"])


def test_plot_attention_grid_has_one_panel_per_layer_and_head(tok):
    model = make_model(tok)
    rec = run_model(model, tok, tok.encode(TEXT))
    fig = plot_attention_grid(rec.weights, rec.labels)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == model.config.n_layer * model.config.n_head
    for k, ax in enumerate(panels):
        l, h = divmod(k, model.config.n_head)
        np.testing.assert_array_equal(ax.images[0].get_array(), rec.weights[l, h])
        assert ax.get_title() == f"layer {l}, head {h}"
    with pytest.raises(ValueError, match="n_layer, n_head"):
        plot_attention_grid(np.ones((2, 3)), ["a", "b"])


# --- the live explorer ---------------------------------------------------------------------------
def test_explorer_shows_the_chosen_layer_and_head(tok):
    model = make_model(tok)
    ref = reference_weights(model, tok, TEXT)
    ex = AttentionExplorer(model, tok, TEXT)
    np.testing.assert_allclose(ex.matrix, ref[0, 0])
    png = ex.image.value
    ex.head.value = 1
    np.testing.assert_allclose(ex.matrix, ref[0, 1])
    assert not np.allclose(ref[0, 0], ref[0, 1]), "the two heads should differ for this test to mean anything"
    assert ex.image.value != png, "changing the head must redraw the picture"
    ex.layer.value = 1
    np.testing.assert_allclose(ex.matrix, ref[1, 1])
    assert_causal_rows(ex.matrix)
    ex.head.value = ALL_HEADS
    assert ex.matrix.shape == (2, len(TEXT), len(TEXT))
    np.testing.assert_allclose(ex.matrix, ref[1])


def test_explorer_query_and_predictions(tok):
    model = make_model(tok)
    ex = AttentionExplorer(model, tok, TEXT)
    assert ex.query.value == len(TEXT) - 1  # the last token, whose next token is the prediction
    ex.query.value = 4
    best_key = int(np.argmax(ex.matrix[4]))
    assert f"query 4: <code>{token_label(TEXT[4])}</code>" in ex.details.value
    assert f"{best_key}: <code>" in ex.details.value.split("<ol>")[1].split("</li>")[0]
    best_next = tok.id_to_token(int(np.argmax(ex.record.probs[4])))
    assert f"<code>{token_label(best_next)}</code> {ex.record.probs[4].max():.3f}" in ex.details.value


def test_explorer_takes_new_text_and_explains_bad_input(tok):
    model = make_model(tok)
    ex = AttentionExplorer(model, tok, TEXT)
    ex.text.value = "min(9 2)"
    np.testing.assert_allclose(ex.matrix, reference_weights(model, tok, "min(9 2)")[0, 0])
    assert len(ex.query.options) == len("min(9 2)")
    ex.text.value = ""
    assert "empty" in ex.message.value and ex.matrix.shape == (8, 8)  # the last good input stays
    ex.text.value = "1" * (model.config.block_size + 1)
    assert "block_size" in ex.message.value
    ex.text.value = "max(1)"
    assert ex.message.value == "" and ex.matrix.shape == (6, 6)


def test_explorer_replays_snapshots_without_touching_the_model(tok):
    model = make_model(tok, seed=0)
    before = take_snapshot(model)
    snaps = [take_snapshot(make_model(tok, seed=s)) for s in (1, 2)]
    ex = AttentionExplorer(model, tok, TEXT, snapshots=snaps, snapshot_labels=[100, 200])
    assert [label for label, _ in ex.snapshot.options] == ["step 100", "step 200", "final"]
    np.testing.assert_allclose(ex.matrix, reference_weights(model, tok, TEXT)[0, 0])
    ex.snapshot.value = 0
    np.testing.assert_allclose(ex.matrix, reference_weights(make_model(tok, seed=1), tok, TEXT)[0, 0])
    ex.snapshot.value = -1
    np.testing.assert_allclose(ex.matrix, reference_weights(model, tok, TEXT)[0, 0])
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p, before[name], err_msg=f"the explorer changed the learner's {name}")


def test_snapshots_must_match_the_model(tok):
    model = make_model(tok)
    bad = take_snapshot(model)
    del bad["wte.w"]
    with pytest.raises(ValueError, match="missing.*wte.w"):
        AttentionExplorer(model, tok, TEXT, snapshots=[bad])
    other = take_snapshot(make_model(tok, n_embd=8))
    with pytest.raises(ValueError, match="shape"):
        StaticExplorer(model, tok, TEXT, snapshots=[other])
    with pytest.raises(ValueError, match="labels"):
        AttentionExplorer(model, tok, TEXT, snapshots=[take_snapshot(model)], snapshot_labels=[1, 2])
    with pytest.raises(ValueError, match="fewer snapshots"):
        StaticExplorer(model, tok, ["1" * 16] * 3, snapshots=[take_snapshot(model)] * 1000)
    with pytest.raises(ValueError, match="block_size"):
        StaticExplorer(model, tok, "1" * 17)


# --- the static explorer -------------------------------------------------------------------------
def embedded_data(html):
    m = re.search(r'<script type="application/json" class="cvx-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_static_explorer_embeds_every_snapshot_and_input(tok):
    model = make_model(tok)
    snap = take_snapshot(make_model(tok, seed=3))
    st = StaticExplorer(model, tok, [TEXT, "min(4 2)"], snapshots=[snap], snapshot_labels=[50])
    data = embedded_data(st.to_html())
    assert data["snapshots"] == ["step 50", "final"] and data["texts"] == [TEXT, "min(4 2)"]
    other = make_model(tok)
    load_snapshot(other, snap)
    for s, m in enumerate([other, model]):
        for t, text in enumerate([TEXT, "min(4 2)"]):
            w = np.array(data["weights"][s][t])
            np.testing.assert_allclose(w, reference_weights(m, tok, text), atol=5e-4)
            assert_causal_rows(np.array(data["weights"][s][t]) * 0 + reference_weights(m, tok, text))
            assert np.all(w[..., np.triu_indices(len(text), 1)[0], np.triu_indices(len(text), 1)[1]] == 0)
    top = data["preds"][1][0][-1]
    assert top[0][1] == pytest.approx(st.records[1][0].probs[-1].max(), abs=5e-4) and len(top) == 5


def test_static_html_is_self_contained_and_reproducible(tok, tmp_path):
    tok2 = CharTokenizer("<>/script!-")
    model = make_model(tok2)
    st = StaticExplorer(model, tok2, "</script>")
    html = st.to_html()
    assert "<!--" not in StaticExplorer(model, tok2, "<!--<script>").to_html()
    assert html.count("</script>") == 2, "a token's '</script>' must not end the data block early"
    assert embedded_data(html)["labels"][0] == list("</script>")
    assert not re.search(r"(src|href)\s*=|https?:|@import", html), "the explorer must load nothing from outside"
    assert StaticExplorer(model, tok2, "</script>").to_html() == html
    st.save(tmp_path / "a.html")
    assert (tmp_path / "a.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_task_can_frame_the_input(tok):
    model = make_model(tok)
    bos_first = lambda s: [tok.bos_id] + tok.encode(s)  # noqa: E731  (a model trained on <bos>-led text)
    ex = AttentionExplorer(model, tok, "max(1)", encode=bos_first)
    assert ex.record.ids == tuple(bos_first("max(1)")) and ex.record.labels[0] == "<bos>"
    st = StaticExplorer(model, tok, "max(1)", encode=bos_first)
    assert st.records[-1][0].ids == ex.record.ids
