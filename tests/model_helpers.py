"""Helpers shared by the model tests: perturbed small models and the variants to run over.

They live in this module, not in conftest.py, because tests/exercises has a conftest.py of its
own: both are imported under the one name ``conftest``, so ``from conftest import ...`` finds
whichever pytest loaded first. ``from model_helpers import ...`` is unambiguous.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from companion import Transformer, preset


def perturb(module, rng: np.random.Generator, scale: float = 0.3) -> None:
    """Add N(0, scale) to every parameter in place, so that no check is dominated by the
    tiny initial weights (std 0.02) or by norms that start as exactly ones and zeros."""
    for p in module.parameters().values():
        p += rng.normal(0.0, scale, size=p.shape).astype(p.dtype)


def small_model(family: str = "gpt", seed: int = 0, scale: float = 0.3, **overrides) -> Transformer:
    """A perturbed model of the 'tiny' preset (float64 unless overridden)."""
    overrides.setdefault("dtype", "float64")
    rng = np.random.default_rng(seed)
    model = Transformer(preset("tiny", family=family, **overrides), rng)
    if scale:
        perturb(model, rng, scale)
    return model


# The architectures every model-level test runs over: both families and the variants that
# take a different code path (post-norm, sinusoidal positions, ReLU, tied/untied heads).
MODEL_VARIANTS = {
    "gpt": dict(family="gpt"),
    "llama": dict(family="llama"),
    "gpt-post-sinusoidal-relu-tied": dict(family="gpt", norm_placement="post", positions="sinusoidal",
                                          ffn="relu", tie_weights=True),
    "llama-post-untied-bias": dict(family="llama", norm_placement="post", tie_weights=False, bias=True),
}


def save_without_config_field(path: Path, model: Transformer, field: str) -> None:
    """Save a checkpoint of ``model`` at ``path`` as a version from before ``field`` existed
    wrote it: the same files, with the field missing from the manifest's config."""
    from companion import save_checkpoint

    save_checkpoint(path, model)
    manifest_path = Path(path) / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"][field]
    manifest_path.write_text(json.dumps(manifest))
