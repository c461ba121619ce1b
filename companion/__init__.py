"""companion: a transformer language model in NumPy, every gradient written by hand.

The modules follow the book's chapters:

    config.py           The model's shape      ModelConfig (frozen), the two families, presets
    module.py, linear.py                       the one Module idiom; the linear layer
    tokenizers/      1  Tokenization           char, word and byte-level BPE tokenizers
    embedding.py     2  Embeddings             token lookup and its scatter-add backward
    positions.py     2  Positions              learned, sinusoidal and rotary (RoPE)
    attention.py     3  Attention              multi-head causal self-attention
    kv_cache.py      3                         the KV cache for decoding
    norms.py         4  Norms                  LayerNorm, RMSNorm
    block.py         4  Residual blocks        pre- and post-norm
    init_stats.py    4  Initialisation         the residual stream and gradients by depth
    feedforward.py   5  Feed-forward           MLP with ReLU/GELU, SwiGLU
    head.py          6  Output head            logits, weight tying
    generate.py      6  Decoding               greedy, temperature, top-k, top-p, with the cache
    loss.py          7  Loss                   stable softmax cross-entropy with a mask
    gradcheck.py     8  Backpropagation        finite-difference gradient checks
    kernels.py       8                         call-time lookup of the pluggable kernels (use())
    optim.py         9  Optimizers             SGD, Adam, AdamW, schedule, clipping
    data.py, tasks/ 10  Training data          batches; the ListOps, addition and text tasks
    train.py        10  Training               the loop (+ evaluate.py, history.py, checkpoint.py)
    model.py        11  The whole model        the Transformer, both families
    accounting.py   11  Costs                  parameters, FLOPs, activation and cache bytes
    data_parallel.py 11                        one batch split across processes (train --workers)
    precision.py    12  Mixed precision        bfloat16 and float16, emulated
    flash_attention.py 12                      tiled attention with the online softmax
    grouped_query.py   12                      grouped- and multi-query attention
    hf_gpt2.py      12  GPT-2's formats        Hugging Face checkpoints and tokenizer files
    interpret.py    13  What it learned        attention scores, ablation, logit lens, probes
    induction.py    13                         repeated-token data and when induction heads form
    backend.py      14  GPU                    NumPy or CuPy behind one `xp`
    viz/                Figures                attention maps and explorers, diagrams
    grading/            Exercises              grade, check("3.2"), use(attention_forward=...)
    tools/              Tooling                command line and flags, bench, profile, recipe,
                                               size sweep, PyTorch twin, checkpoint files and
                                               versions, atomic writes, the strict CuPy double,
                                               --backend, counting a step's array operations
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
