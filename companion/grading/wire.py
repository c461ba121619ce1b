"""What both ends of the grader's wire agree on (codec.py): arrays as ``.npy`` bytes, read back
without pickle, and companion classes and functions sent by name ("companion.model:Transformer")
and resolved only inside the ``companion`` package, so a name from a worker cannot reach anything
else. Also the bit generators and builtin types a value may name.
"""

from __future__ import annotations

import importlib
import io
import sys

import numpy as np

from .frames import CodecError

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
BUILTIN_TYPES = {"float": float, "int": int, "bool": bool, "complex": complex, "str": str}


def npy_bytes(a: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (an object array is refused by NumPy here)."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def npy_array(blob: bytes) -> np.ndarray:
    """The array a .npy blob holds, never unpickled; bad bytes are a CodecError."""
    try:
        return np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any bad bytes are a malformed message
        raise CodecError(f"an array does not read back ({type(err).__name__}: {err})") from None


def _is_companion(module: str | None) -> bool:
    return isinstance(module, str) and (module == "companion" or module.startswith("companion."))


def name_of(obj) -> str | None:
    """The name a companion class or function travels by, or None for anything else."""
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not _is_companion(module) or not isinstance(qual, str) or "<" in qual:
        return None
    return f"{module}:{qual}"


def resolve(name: str, allow_import: bool):
    """'companion.model:Transformer' -> the object, only from inside the companion package."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise CodecError(f"not a qualified name: {name!r:.80}")
    module_name, qual = name.split(":")
    if not _is_companion(module_name):
        raise CodecError(f"{name!r:.80} is not in the companion package")
    module = sys.modules.get(module_name)
    if module is None:
        if not allow_import:
            raise CodecError(f"{module_name} is not loaded")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise CodecError(f"cannot import {module_name}: {err}") from None
    obj = module
    for part in qual.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise CodecError(f"{name!r:.80} does not exist")
    return obj
