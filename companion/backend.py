"""The array backend: every array operation in the companion goes through `xp`.

NumPy serves by default. Setting the environment variable ``COMPANION_BACKEND=cupy``
before the first import makes CuPy serve instead, on a machine with an NVIDIA GPU,
with no change anywhere else in the package. The choice is read once, at import,
and never changes afterwards: there is no mutable backend state to leak between tests.

The few operations whose spelling differs between NumPy and CuPy live here as helpers
(`add_at` for the embedding's scatter-add, `to_numpy` for plotting and saving).

Importing this module has no side effect beyond choosing the backend; the glibc allocator
tuning that speeds up NumPy's temporaries is an explicit opt-in, `tune_allocator()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import numpy

Array = numpy.ndarray  # for type hints; a cupy.ndarray behaves the same way


def _choose_backend():
    name = os.environ.get("COMPANION_BACKEND", "numpy").strip().lower()
    if name in ("", "numpy"):
        return numpy, "numpy"
    if name == "cupy":
        try:
            import cupy  # imports fine without a GPU, so ask the driver too
        except ImportError as err:  # pragma: no cover - depends on the machine
            raise ImportError("COMPANION_BACKEND=cupy but CuPy is not installed: pip install cupy-cuda12x") from err
        if not cupy.cuda.is_available():  # pragma: no cover - depends on the machine
            raise RuntimeError("COMPANION_BACKEND=cupy but no CUDA GPU is available on this machine")
        return cupy, "cupy"
    if name == "strict":  # the CPU test double of CuPy (companion/tools/backend_strict.py)
        from .tools import backend_strict

        return backend_strict, "strict"
    raise ValueError(f"COMPANION_BACKEND must be 'numpy', 'cupy' or 'strict', got {name!r}")


xp, BACKEND = _choose_backend()


MALLOC_TUNED = False  # set by tune_allocator(); importing the companion never touches the allocator


def tune_allocator() -> bool:
    """Ask glibc to reuse freed memory instead of handing every large block back to the OS.

    Every NumPy expression such as ``0.5 * x * (1 + t)`` allocates a fresh array for each
    operator. Blocks above glibc's mmap threshold are mapped fresh and unmapped on free, so
    each temporary costs page faults that take longer than the arithmetic itself (we measured
    the GELU backward about 5x slower this way). Raising the thresholds keeps freed blocks in
    the heap for the next temporary.

    This changes the allocator of the whole process, so it is opt-in: importing the companion
    never calls it; ``python -m companion train`` and ``bench`` do, before any work. Call it
    yourself at the top of a script or notebook that trains for long. Linux with glibc only
    (elsewhere, or under musl, it does nothing and returns False); the environment variable
    COMPANION_MALLOC_TUNING=0 turns it off. -> True when the thresholds were set.
    """
    global MALLOC_TUNED
    if not sys.platform.startswith("linux") or os.environ.get("COMPANION_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's largest allowed value
        ok &= libc.mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    MALLOC_TUNED = MALLOC_TUNED or bool(ok)
    return bool(ok)


DTYPES = {"float32": xp.float32, "float64": xp.float64}


def dtype_of(name: str):
    """Map a config's dtype name ('float32' or 'float64') to the backend's dtype."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def describe() -> str:
    """Which backend and device serve the companion, in words (the CLI prints it)."""
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"cupy {xp.__version__} on {name} (GPU {xp.cuda.Device().id}, CUDA runtime {xp.cuda.runtime.runtimeGetVersion()})"
    if BACKEND == "strict":
        return f"strict (the CPU test double of CuPy, over numpy {numpy.__version__})"
    return f"numpy {numpy.__version__} on the CPU"


def add_at(target: Array, indices: Array, values: Array) -> None:
    """``numpy.add.at(target, indices, values)``: target[indices] += values, adding repeated
    indices up (unlike ``target[indices] += values``). On NumPy, the embedding's case (a 1-D
    integer array of indices, values of shape ``indices.shape + target.shape[1:]`` and the
    target's dtype) is summed by sorting; anything else is handed to ``numpy.add.at`` itself."""
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        import cupyx

        cupyx.scatter_add(target, indices, values)
    elif BACKEND == "strict":  # the CPU double gives NumPy's numbers exactly
        from .tools.backend_strict import unwrap

        _add_at_numpy(unwrap(target), unwrap(indices), unwrap(values))
    else:
        _add_at_numpy(target, indices, values)


def _add_at_numpy(target, indices, values) -> None:
    """``numpy.add.at`` by sorting, for the embedding's case: ``add.at`` adds one row at a time
    (on NumPy 2.x its loop over rows was slower than sorting, measured in chapter 11's "Making
    NumPy fast"), while sorting the indices puts the repeats of each index side by side, so that
    one ``add.reduceat`` sums every run of equal indices, and each row of the target is then
    added to once (no repeats left, so a plain fancy-index ``+=`` is right). Any other input
    (lists, scalar or broadcast values, other dtypes, indices that are not 1-D, empty or
    negative) goes to ``numpy.add.at``, whose semantics this keeps."""
    fast = (isinstance(target, numpy.ndarray) and isinstance(indices, numpy.ndarray)
            and isinstance(values, numpy.ndarray) and target.ndim >= 1 and indices.ndim == 1
            and indices.dtype.kind in "iu" and indices.size > 0
            and values.shape == indices.shape + target.shape[1:] and values.dtype == target.dtype)
    if not fast or indices.min() < 0:  # a negative index and its positive twin would be two runs for one row
        numpy.add.at(target, indices, values)
        return
    order = numpy.argsort(indices, kind="stable")  # (N,): equal indices side by side
    sorted_idx = indices[order]  # (N,)
    starts = numpy.flatnonzero(numpy.r_[True, sorted_idx[1:] != sorted_idx[:-1]])  # (U,): where each run begins
    target[sorted_idx[starts]] += numpy.add.reduceat(values[order], starts, axis=0)  # (U, ...): one sum per index


def pieces(n: int, size: int) -> list[slice]:
    """Slices covering range(n): pieces of ``size`` on the CPU, so that the arrays of one piece stay
    in a core's cache through several passes over them; one piece on a GPU (or its CPU double):
    a GPU has a large L2 cache too, but every operation on a piece is a kernel launch, and the
    launches cost far more than staying in cache saves (chapter 14 measures it)."""
    if BACKEND != "numpy":
        return [slice(0, n)]
    return [slice(start, start + size) for start in range(0, n, size)]


def to_numpy(a) -> numpy.ndarray:
    """A NumPy copy of any backend array (for plotting, printing and saving)."""
    if BACKEND in ("cupy", "strict") and not isinstance(a, numpy.ndarray):
        return a.get() if hasattr(a, "get") else numpy.asarray(a)
    return numpy.asarray(a)


def asarray(a, dtype=None):
    """Move data onto the backend (a no-op for NumPy arrays under NumPy)."""
    return xp.asarray(a, dtype=dtype)
