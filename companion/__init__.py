"""companion: a transformer language model in NumPy, every gradient written by hand.

The modules follow the book's chapters:

    tokenizers/      1  Tokenization          char, word and byte-level BPE tokenizers
    embedding.py     2  Embeddings            token lookup and its scatter-add backward
    positions.py     2  Positions             learned, sinusoidal and rotary (RoPE)
    attention.py     3  Attention             multi-head causal self-attention (+ kv_cache.py)
    norms.py         4  Norms                 LayerNorm, RMSNorm (+ block.py: residuals)
    feedforward.py   5  Feed-forward          MLP with ReLU/GELU, SwiGLU
    head.py          6  Output head           logits, weight tying
    loss.py          7  Loss                  stable softmax cross-entropy with a mask
    gradcheck.py     8  Backpropagation       finite-difference gradient checks
    optim.py         9  Optimizers            SGD, Adam, AdamW, schedule, clipping
    viz/          3, 10  Attention maps        heatmaps, live (ipywidgets) and static (HTML/JS) explorers
    checkpoint.py       Checkpoints           save/load a run (npz + JSON, checksums, no pickle)
    cli.py, bench.py    Command line          python -m companion train|eval|generate|bench
    grading/            Exercises             grade, check("3.2"), use(attention_forward=...)
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRESETS, ModelConfig, preset
from .gradcheck import check_layer, check_model, gradcheck
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import Transformer
from .optim import SGD, Adam, AdamW, clip_grad_norm, lr_schedule
from .grading.plug import use  # run the model on a learner's own functions, within a with-block

__all__ = [
    "PRESETS", "ModelConfig", "preset", "Transformer",
    "cross_entropy_forward", "cross_entropy_backward",
    "gradcheck", "check_layer", "check_model",
    "SGD", "Adam", "AdamW", "clip_grad_norm", "lr_schedule",
    "save_checkpoint", "load_checkpoint", "use",
]
