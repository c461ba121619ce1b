"""The files of a checkpoint folder: checksum-named data files, written atomically and
verified on load, and .npz arrays read without ever unpickling.

A data file is named ``<role>-<first 16 hex digits of its sha256>.<ext>``; the manifest records
each name with its full sha256, and only names of exactly that form are ever opened, so a
manifest cannot point outside its folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from .io import atomic_write

ROLES = {"state": ".npz", "tokenizer": ".json", "history": ".json"}  # data files, by role
FILE_NAME = re.compile(r"^(state|tokenizer|history)-[0-9a-f]{16}\.(npz|json)$")  # never a path elsewhere


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, tampered with, or does not fit its config."""



def json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


def write_data(folder: Path, role: str, data: bytes) -> dict:
    """Write ``data`` atomically under a name made from its checksum; -> its manifest entry."""
    digest = hashlib.sha256(data).hexdigest()
    name = f"{role}-{digest[:16]}{ROLES[role]}"
    if not (folder / name).exists() or sha256(folder / name) != digest:
        atomic_write(folder / name, lambda f: f.write(data))
    return {"name": name, "sha256": digest}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_files(path: Path, recorded) -> dict[str, Path]:
    """Check the manifest's file list and every file's checksum; -> role: path."""
    if not isinstance(recorded, dict) or "state" not in recorded:
        raise CheckpointError("checkpoint manifest names no state file (the weights)")
    found = {}
    for role, entry in recorded.items():
        if role not in ROLES or not isinstance(entry, dict) or set(entry) != {"name", "sha256"}:
            raise CheckpointError(f"checkpoint manifest has an invalid file entry {role!r}: {entry!r}")
        if not isinstance(entry["name"], str) or not FILE_NAME.match(entry["name"]):
            raise CheckpointError(f"checkpoint manifest names an unexpected file {entry['name']!r}")
        file = path / entry["name"]
        if not file.exists():
            raise CheckpointError(f"checkpoint file {file} is missing")
        if sha256(file) != entry["sha256"]:
            raise CheckpointError(f"checksum mismatch for {file}: the file was truncated or edited after saving")
        found[role] = file
    return found


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:  # never unpickle: a file cannot run code
            return {k: npz[k] for k in npz.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(f"{path} holds object arrays (pickled data), refused") from err
        raise CheckpointError(f"{path} is not a readable .npz file: {err}") from err
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is not a readable .npz file (truncated?): {err}") from err
