"""The grader's wire format: values between the trusted parent and a worker, without pickle.

A message is one frame on a pipe (frames.py). NumPy arrays travel as ``.npy`` bytes (read back with ``allow_pickle=False``); everything else
is JSON. Nothing a worker sends can make the parent run code: classes and functions are named
("companion.model:Transformer") and resolved only inside the ``companion`` package, objects are
rebuilt with ``object.__new__`` and their ``__dict__`` (no ``__init__``, no ``__setstate__``).

Identity travels too, so that in-place contracts survive the trip. The parent numbers every
mutable object of a call's arguments (refs 1, 2, ...); after the call the worker sends the
arguments back, an object it was given keeping its number. The parent then writes the new
contents into its own objects (``a[...] = new`` for an array updated in place), while an entry the
learner rebound (``grads["w"] = new_array``) arrives as a new object (a negative ref) and is
rebound in the parent as well: a test sees exactly what the learner's code did to its inputs.

A callable in the arguments that is not the companion's (a test's ``lambda: loss(a)``) stays in
the parent: the worker gets a stub that calls back, sending the current state of the arguments
first, so a function that reads ``a`` sees the learner's in-place perturbation of ``a``.
"""

from __future__ import annotations

import importlib
import io
import math
import sys

import numpy as np

from .frames import MAX_FRAME, Closed, CodecError, FrameReader, Timeout, pack, read_blocking, unpack, write_all

__all__ = ["MAX_FRAME", "Closed", "CodecError", "FrameReader", "Timeout", "pack", "read_blocking", "unpack",
           "write_all", "Encoder", "Decoder", "resolve"]
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
BUILTIN_TYPES = {"float": float, "int": int, "bool": bool, "complex": complex, "str": str}


# ------------------------------------------------------------------ values


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _load(blob: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - any bad bytes are a malformed message
        raise CodecError(f"an array does not read back ({type(err).__name__}: {err})") from None


def _is_companion(module: str | None) -> bool:
    return isinstance(module, str) and (module == "companion" or module.startswith("companion."))


def _name_of(obj) -> str | None:
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


class Encoder:
    """Turns values into JSON nodes and blobs, numbering mutable objects.

    ``known`` maps id(obj) -> ref for objects the other side already has (the call's
    arguments, on the worker's reply); other mutable objects get fresh refs (positive on the
    parent's side, negative on the worker's). ``pristine`` (ref -> copy) lets an unchanged
    array travel as a bare ref. ``callback`` turns an unknown callable into a node (or None)."""

    def __init__(self, known: dict | None = None, pristine: dict | None = None, sign: int = 1, callback=None):
        self.known, self.pristine, self.sign, self.callback = dict(known or {}), pristine or {}, sign, callback
        self.blobs: list[bytes] = []
        self.seen: dict[int, int] = {}
        self.objects: dict[int, object] = {}  # ref -> object, for the caller (kept alive: ids stay unique)
        self.next_ref = 1

    def _ref(self, obj) -> tuple[int, bool]:
        """(ref, first time seen in this message)."""
        key = id(obj)
        if key in self.seen:
            return self.seen[key], False
        ref = self.known.get(key)
        if ref is None:
            ref = self.sign * self.next_ref
            self.next_ref += 1
        self.seen[key] = ref
        self.objects[ref] = obj
        return ref, True

    def blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def enc(self, v, depth: int = 0):
        if depth > 200:
            raise TypeError("a value nested more than 200 levels deep")
        t = type(v)
        if v is None or t in (bool, str, int):
            return v
        if t is float:
            return v if math.isfinite(v) else {"t": "float", "v": repr(v)}
        if t is tuple:
            return {"t": "u", "v": [self.enc(x, depth + 1) for x in v]}
        if t is complex:
            return {"t": "c", "v": [v.real, v.imag]}
        if t is bytes:
            return {"t": "by", "b": self.blob(v)}
        if t in (set, frozenset):
            return {"t": "set", "f": t is frozenset, "v": [self.enc(x, depth + 1) for x in v]}
        if t is slice:
            return {"t": "sl", "v": [self.enc(v.start), self.enc(v.stop), self.enc(v.step)]}
        if v is Ellipsis:
            return {"t": "el"}
        if isinstance(v, np.generic):
            if v.dtype.hasobject:
                raise TypeError("a NumPy object scalar")
            return {"t": "s", "b": self.blob(_npy(np.asarray(v)))}
        if isinstance(v, np.dtype):
            if v.hasobject or v.names is not None:
                raise TypeError(f"the dtype {v}")
            return {"t": "dt", "v": v.str}
        if isinstance(v, type):
            if issubclass(v, np.generic) and v is not np.generic:
                return {"t": "st", "v": np.dtype(v).str}
            for name, cls in BUILTIN_TYPES.items():
                if v is cls:
                    return {"t": "bt", "v": name}
            name = _name_of(v)
            if name is not None:
                return {"t": "cl", "v": name}
            raise TypeError(f"the class {getattr(v, '__qualname__', v)!s:.60}")
        # mutable (or identity-carrying) objects from here on
        ref, first = self._ref(v)
        if not first:
            return {"t": "ref", "r": ref}
        if t is list:
            return {"t": "l", "r": ref, "v": [self.enc(x, depth + 1) for x in v]}
        if t is dict:
            items = list(v.items())
            return {"t": "d", "r": ref, "k": [self.enc(k, depth + 1) for k, _ in items],
                    "v": [self.enc(x, depth + 1) for _, x in items]}
        if t is np.ndarray:
            if v.dtype.hasobject:
                raise TypeError("an array of Python objects (dtype=object)")
            before = self.pristine.get(ref)
            # bytes, not np.array_equal: a learner may have patched NumPy's functions in its worker
            if before is not None and before.dtype == v.dtype and before.shape == v.shape \
                    and before.tobytes() == v.tobytes():
                return {"t": "a", "r": ref, "same": True}
            return {"t": "a", "r": ref, "b": self.blob(_npy(v)), "w": bool(v.flags.writeable)}
        if t is np.random.Generator:
            bg = type(v.bit_generator).__name__
            if bg not in BIT_GENERATORS:
                raise TypeError(f"a Generator on {bg}")
            return {"t": "g", "r": ref, "bg": bg, "s": self.enc(v.bit_generator.state, depth + 1)}
        name = _name_of(t)
        if name is not None and hasattr(v, "__dict__"):  # a companion object: its class and its state
            state = vars(v)
            return {"t": "o", "r": ref, "c": name,
                    "k": list(state), "v": [self.enc(x, depth + 1) for x in state.values()]}
        if callable(v):
            name = _name_of(v)
            if name is not None and getattr(v, "__self__", None) is None:
                try:
                    if resolve(name, allow_import=False) is v:
                        return {"t": "f", "r": ref, "v": name}
                except CodecError:
                    pass
            node = self.callback(ref, v) if self.callback is not None else None
            if node is not None:
                return node
            raise TypeError(f"a function ({getattr(v, '__qualname__', type(v).__name__)!s:.60})")
        raise TypeError(f"a {t.__module__}.{t.__qualname__} object")


class Decoder:
    """Rebuilds values from JSON nodes and blobs.

    ``originals`` (ref -> object) are objects this side already owns: a node carrying one of
    their refs is written *into* that object (in place) rather than made anew. ``callback``
    turns a callback node into a callable; ``allow_import`` lets the worker import companion
    modules named by the trusted parent (the parent itself resolves only loaded modules)."""

    def __init__(self, blobs: list[bytes], originals: dict | None = None, callback=None, allow_import: bool = False):
        self.blobs, self.originals, self.callback, self.allow_import = blobs, originals or {}, callback, allow_import
        self.made: dict[int, object] = {}  # ref -> object, for this message

    def _blob(self, i) -> bytes:
        if not isinstance(i, int) or not 0 <= i < len(self.blobs):
            raise CodecError("a node names a blob that is not there")
        return self.blobs[i]

    def dec(self, node, depth: int = 0):
        if depth > 220:
            raise CodecError("a value nested too deep")
        if node is None or type(node) in (bool, str, int, float):
            return node
        if type(node) is not dict or not isinstance(node.get("t"), str):
            raise CodecError(f"unexpected node {str(node)[:60]}")
        t = node["t"]
        items = node.get("v")
        if t == "float":
            return float(items) if items in ("nan", "inf", "-inf") else _bad(node)
        if t == "u":
            return tuple(self.dec(x, depth + 1) for x in _list(items))
        if t == "c":
            re_im = _list(items)
            return complex(float(re_im[0]), float(re_im[1])) if len(re_im) == 2 else _bad(node)
        if t == "by":
            return bytes(self._blob(node.get("b")))
        if t == "set":
            made = [self.dec(x, depth + 1) for x in _list(items)]
            try:
                return frozenset(made) if node.get("f") else set(made)
            except TypeError:
                raise CodecError("a set of unhashable values") from None
        if t == "sl":
            parts = [self.dec(x, depth + 1) for x in _list(items)]
            return slice(*parts) if len(parts) == 3 else _bad(node)
        if t == "el":
            return Ellipsis
        if t == "s":
            a = _load(self._blob(node.get("b")))
            return a[()] if a.ndim == 0 else _bad(node)
        if t in ("dt", "st"):
            try:
                dt = np.dtype(str(items))
            except TypeError:
                raise CodecError(f"not a dtype: {items!r:.40}") from None
            return dt if t == "dt" else dt.type
        if t == "bt":
            return BUILTIN_TYPES[items] if items in BUILTIN_TYPES else _bad(node)
        if t == "cl":
            cls = resolve(items, self.allow_import)
            return cls if isinstance(cls, type) else _bad(node)
        ref = node.get("r")
        if not isinstance(ref, int):
            raise CodecError(f"a {t} node without a ref")
        if t == "ref":
            if ref in self.made:
                return self.made[ref]
            raise CodecError("a ref to an object not sent before")
        if ref in self.made:
            raise CodecError("an object sent twice")
        orig = self.originals.get(ref)
        if t == "l":
            out = orig if type(orig) is list else []
            self.made[ref] = out
            new = [self.dec(x, depth + 1) for x in _list(items)]
            out[:] = new
            return out
        if t == "d":
            out = orig if type(orig) is dict else {}
            self.made[ref] = out
            keys = [self.dec(k, depth + 1) for k in _list(node.get("k"))]
            values = [self.dec(x, depth + 1) for x in _list(items)]
            if len(keys) != len(values):
                raise CodecError("a dict with more keys than values")
            try:
                new = dict(zip(keys, values))
            except TypeError:
                raise CodecError("a dict with an unhashable key") from None
            out.clear()
            out.update(new)
            return out
        if t == "a":
            if node.get("same"):
                if type(orig) is not np.ndarray:
                    raise CodecError("an unchanged array that was never sent")
                self.made[ref] = orig
                return orig
            new = _load(self._blob(node.get("b")))
            if type(orig) is np.ndarray:
                if orig.shape != new.shape or orig.dtype != new.dtype:
                    raise CodecError(f"an argument array changed from {orig.dtype}{list(orig.shape)} to "
                                     f"{new.dtype}{list(new.shape)} in place")
                if orig.flags.writeable:
                    orig[...] = new
                self.made[ref] = orig
                return orig
            if node.get("w") is False:
                new.flags.writeable = False
            self.made[ref] = new
            return new
        if t == "g":
            bg_name = node.get("bg")
            if bg_name not in BIT_GENERATORS:
                raise CodecError(f"unknown bit generator {bg_name!r:.40}")
            out = orig if type(orig) is np.random.Generator else np.random.Generator(getattr(np.random, bg_name)())
            self.made[ref] = out
            state = self.dec(node.get("s"), depth + 1)
            try:
                if type(out.bit_generator).__name__ != bg_name:
                    raise ValueError("a different bit generator")
                out.bit_generator.state = state
            except (TypeError, ValueError, KeyError) as err:
                raise CodecError(f"a Generator state that does not load: {err}") from None
            return out
        if t == "f":
            fn = resolve(items, self.allow_import)
            if not callable(fn):
                raise CodecError(f"{items!r:.60} is not a function")
            self.made[ref] = fn
            return fn
        if t == "cb":
            if self.callback is None:
                raise CodecError("a callback where none is allowed")
            fn = self.callback(ref, node)
            self.made[ref] = fn
            return fn
        if t == "o":
            cls = resolve(node.get("c"), self.allow_import)
            if not isinstance(cls, type):
                raise CodecError(f"{node.get('c')!r:.60} is not a class")
            if orig is not None and type(orig) is cls:
                out = orig
            else:
                try:
                    out = object.__new__(cls)
                except TypeError:
                    raise CodecError(f"cannot make a {cls.__qualname__}") from None
            self.made[ref] = out
            keys = _list(node.get("k"))
            if not all(isinstance(k, str) for k in keys):
                raise CodecError("an object attribute name that is not a string")
            values = [self.dec(x, depth + 1) for x in _list(items)]
            if len(keys) != len(values):
                raise CodecError("an object with more names than values")
            state = vars(out)
            state.clear()
            state.update(zip(keys, values))
            return out
        raise CodecError(f"unknown node type {t!r:.20}")


def _list(v) -> list:
    if type(v) is not list:
        raise CodecError("expected a list in a node")
    return v


def _bad(node):
    raise CodecError(f"malformed node {str(node)[:60]}")
