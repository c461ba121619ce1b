"""The grader's wire format: values between the trusted parent and a worker, without pickle.

A message is one frame on a pipe (frames.py). NumPy arrays travel as ``.npy`` bytes (read back
with ``allow_pickle=False``); everything else is JSON. Nothing a worker sends can make the parent
run code: classes and functions are named ("companion.model:Transformer") and resolved only inside
the ``companion`` package, objects are rebuilt with ``object.__new__`` and their ``__dict__`` (no
``__init__``, no ``__setstate__``).

Identity travels too, so that in-place contracts survive the trip. The parent numbers every
mutable object of a call's arguments (refs 1, 2, ...); after the call the worker sends the
arguments back, an object it was given keeping its number. The parent then writes the new
contents into its own objects (``a[...] = new`` for an array updated in place), while an entry the
learner rebound (``grads["w"] = new_array``) arrives as a new object (a negative ref) and is
rebound in the parent as well: a test sees exactly what the learner's code did to its inputs.

A callable in the arguments that is not the companion's (a test's ``lambda: loss(a)``) stays in
the parent: the worker gets a stub that calls back, sending the current state of the arguments
first, so a function that reads ``a`` sees the learner's in-place perturbation of ``a``.

This module is the protocol's one door: the parent and the worker import ``codec`` and find here
the framing (frames.py), ``Encoder`` (encode.py), ``Decoder`` (decode.py) and ``resolve``, the one
way a name becomes a class or function (wire.py, with the rest of what both sides agree on).
"""

from .frames import MAX_FRAME, Closed, CodecError, FrameReader, Timeout, pack, read_blocking, unpack, write_all
from .wire import resolve
from .encode import Encoder
from .decode import Decoder

__all__ = ["MAX_FRAME", "Closed", "CodecError", "FrameReader", "Timeout", "pack", "read_blocking", "unpack",
           "write_all", "Encoder", "Decoder", "resolve"]
