"""Encoding for the grader's wire (codec.py): a value becomes JSON nodes and ``.npy`` blobs, every
mutable object numbered so that its identity survives the trip. Anything that is not data, a
companion object or a companion function (or, with a ``callback``, a callable that stays at home)
is refused with a TypeError naming it.
"""

from __future__ import annotations

import math

import numpy as np

from .frames import CodecError
from .wire import BIT_GENERATORS, BUILTIN_TYPES, name_of, npy_bytes, resolve


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
            return {"t": "s", "b": self.blob(npy_bytes(np.asarray(v)))}
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
            name = name_of(v)
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
            return {"t": "a", "r": ref, "b": self.blob(npy_bytes(v)), "w": bool(v.flags.writeable)}
        if t is np.random.Generator:
            bg = type(v.bit_generator).__name__
            if bg not in BIT_GENERATORS:
                raise TypeError(f"a Generator on {bg}")
            return {"t": "g", "r": ref, "bg": bg, "s": self.enc(v.bit_generator.state, depth + 1)}
        name = name_of(t)
        if name is not None and hasattr(v, "__dict__"):  # a companion object: its class and its state
            state = vars(v)
            return {"t": "o", "r": ref, "c": name,
                    "k": list(state), "v": [self.enc(x, depth + 1) for x in state.values()]}
        if callable(v):
            name = name_of(v)
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
