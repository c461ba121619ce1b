"""The diagrams drawn by code: each returns a new Figure that labels what it shows."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from companion.viz.diagrams import OKABE_ITO, attention_diagram, backprop_graph  # noqa: E402


def texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " " + " ".join(
        ax.get_title() for ax in fig.axes)


def test_attention_diagram_names_every_step_and_every_head():
    fig = attention_diagram(n_head=3, head_size=8)
    assert isinstance(fig, Figure)
    words = texts(fig)
    for step in ("q @ kᵀ", "1/√hs", "mask", "softmax", "@ v"):
        assert step in words, f"the pipeline should show {step!r}"
    for h in range(3):
        assert f"head {h}" in words
    assert "channels 16–23" in words  # head 2 of size 8
    assert "3 × 8 = 24" in words
    plt.close(fig)


def test_attention_diagram_refuses_empty_heads():
    with pytest.raises(ValueError, match="n_head and head_size must be positive"):
        attention_diagram(n_head=0)


def test_backprop_graph_labels_forward_and_backward():
    fig = backprop_graph()
    words = texts(fig)
    for label in ("z = x W", "dx = dz Wᵀ", "dW = xᵀ dz", "dL/dL = 1"):
        assert label in words
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("forward" in t for t in legend) and any("backward" in t for t in legend)
    plt.close(fig)


def test_each_call_draws_a_new_figure_in_colour_blind_safe_colours():
    a, b = backprop_graph(), backprop_graph()
    assert a is not b
    assert len(set(OKABE_ITO.values())) == 8
    plt.close(a)
    plt.close(b)
