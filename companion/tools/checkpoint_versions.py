"""Checkpoint format versions: which versions load, and how an older file reads as today's.

checkpoint.py writes ``VERSION`` into every manifest and reads any of ``READABLE_VERSIONS``. A
parameter renamed since a file was written is translated in one place, ``RENAMED``, in the weights
and in the optimizer state alike; a name that is not in that table still fails, named (checkpoint.py's
``_load_params``). A stored config from before ``tie_weights`` was recorded gets the choice its
family made then (``LEGACY_TIE_WEIGHTS``).
"""

from __future__ import annotations

from ..config import LEGACY_TIE_WEIGHTS
from .checkpoint_files import CheckpointError

VERSION = 2
# Parameter names that changed, by the format version that changed them: old name -> new name.
# Version 2 names the embedding tables like every other parameter (``w``, as in Linear and the
# norms); version 1 called them ``weight``. Loading a file of an older version renames its
# ``param/<name>`` arrays and its optimizer state ``optim/<state>.<name>`` (``m.wte.weight``);
# nothing else in the format changed, so a version-1 file loads with identical numbers.
RENAMED = {2: {"wte.weight": "wte.w", "wpe.weight": "wpe.w"}}
READABLE_VERSIONS = (1, 2)


def with_legacy_tie(stored):
    """A stored config that does not say whether the head is tied was written when the family
    defaults were the other way round (gpt untied, llama tied): fill in the choice it trained with."""
    if not isinstance(stored, dict) or stored.get("tie_weights") is not None:
        return stored
    family = stored.get("family", "gpt")
    return {**stored, "tie_weights": LEGACY_TIE_WEIGHTS.get(family)} if family in LEGACY_TIE_WEIGHTS else stored


def with_current_names(arrays: dict, version: int) -> dict:
    """The state file's arrays, with every parameter name renamed since ``version`` (``RENAMED``)
    given today's name: ``param/wte.weight`` -> ``param/wte.w``, ``optim/m.wte.weight`` -> ``optim/m.wte.w``."""
    tables = [RENAMED[v] for v in sorted(RENAMED) if v > version]
    out, source = {}, {}
    for key, a in arrays.items():
        new = key
        if key.startswith("param/"):
            new = "param/" + _renamed(key[len("param/"):], tables)
        elif key.startswith("optim/") and "." in key:  # optim/<state>.<parameter name>; optim/t has no name
            state, name = key[len("optim/"):].split(".", 1)
            new = f"optim/{state}.{_renamed(name, tables)}"
        if new in out:
            raise CheckpointError(f"the checkpoint holds both {source[new]} and {key}, which name the same "
                                  f"array ({new}) in version {VERSION}: the file was not written by the companion")
        out[new], source[new] = a, key
    return out


def _renamed(name: str, tables: list[dict]) -> str:
    for table in tables:  # oldest first, so a name renamed twice ends at today's
        name = table.get(name, name)
    return name
