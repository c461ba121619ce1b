"""Decoding for the grader's wire (codec.py): JSON nodes and ``.npy`` blobs become values again,
written into the objects this side already owns where a node carries one of their numbers. A node
that is malformed, names something outside the companion package or breaks an in-place contract
raises CodecError; nothing received is unpickled or runs ``__init__``.
"""

from __future__ import annotations

import numpy as np

from .frames import CodecError
from .wire import BIT_GENERATORS, BUILTIN_TYPES, npy_array, resolve


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
            a = npy_array(self._blob(node.get("b")))
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
            new = npy_array(self._blob(node.get("b")))
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
