"""The whole-model diagram (chapter 11): one column per config, every box labelled with its shape."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from companion.config import preset  # noqa: E402
from companion.viz.architecture import architecture_stages, plot_architecture  # noqa: E402


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_stages_follow_each_family_and_carry_the_batch_shapes():
    gpt = architecture_stages(preset("baby"), 2, 16)  # gpt: LayerNorm, learned positions, GELU, tied head
    labels = [s[1] for s in gpt]
    assert any("learned positions" in x for x in labels) and any("tied" in x for x in labels)
    assert ("attn", "softmax(q kᵀ / √hs + mask)", "(B, nh, T, T)", "(2, 4, 16, 16)") in gpt
    assert gpt[-1][2:] == ("(B, T, V)", "(2, 16, 65)")
    llama = architecture_stages(preset("tiny", family="llama", tie_weights=False), 3, 8)
    labels = [s[1] for s in llama]
    assert "RMSNorm 1" in labels and "SwiGLU up, x W_up" in labels and not any("positions" in x for x in labels)
    assert any("RoPE" in x for x in labels) and "W_head (C, V) = (16, 16)" in llama[-1][1]
    assert labels.index("SwiGLU gate, SiLU(x W_gate)") + 1 == labels.index("SwiGLU up, x W_up")  # side by side
    post = [s[1] for s in architecture_stages(preset("tiny", norm_placement="post"), 1, 4)]
    assert "LayerNorm 1 (x + attention)" in post and not any(x.startswith("final") for x in post)


def test_figure_has_a_column_per_config_and_names_the_repeat():
    fig = plot_architecture({"gpt": preset("baby"), "llama": preset("llama-2m")}, 2, 16)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["gpt", "llama"]
    words = " ".join(texts(fig))
    assert "× n_layer\n= 4" in words and "× n_layer\n= 5" in words
    assert "(B, T, V) = (2, 16, 512)" in words
    for ax in fig.axes:  # two residual paths per column: into "x + attention" and into "x + FFN"
        assert sum(line.get_gid() == "residual" for line in ax.lines) == 2
    assert "⊙" in words  # SwiGLU's gate and up products, multiplied
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one config"):
        plot_architecture({}, 1)
