"""A strict stand-in for CuPy that runs on the CPU: the GPU path's test double.

CuPy's arrays live on the GPU, so CuPy refuses what would silently copy them to the host:
``numpy.asarray(gpu_array)`` raises ``TypeError`` (no implicit conversion), and arithmetic that
mixes a CuPy array with a ``numpy.ndarray`` raises too. Code written and tested only with NumPy
does both without noticing. ``COMPANION_BACKEND=strict`` serves the companion with this module
instead of NumPy, so those mistakes fail on any CPU, in CI, exactly where they would on a GPU:

- ``StrictArray`` wraps a NumPy array and is not one (not a subclass: NumPy cannot reach inside);
- ``__array__`` raises, so ``np.asarray(a)``, ``np.mean(a)`` or a plot of ``a`` fail loudly;
- mixing with a ``numpy.ndarray`` in arithmetic, indexing or a namespace function raises;
- ``float(a)`` / ``int(a)`` / ``bool(a)`` work only on one-element arrays (a device-to-host copy
  of a scalar, which CuPy allows), and ``a.get()`` is the explicit copy to the host.

Python numbers and NumPy scalars (``np.float32(2)``) mix freely, as they do with CuPy. Every
array function of this namespace is NumPy's, applied to the wrapped arrays, so results are
bit-identical to the NumPy backend's.
"""

from __future__ import annotations

import operator

import numpy

HOST_COPY = "use companion.backend.to_numpy(a) (CuPy: a.get()) to copy a device array to the host on purpose"


class StrictArray:
    """A device-like array: holds a NumPy array in ``_a`` and refuses implicit host conversion."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs (np.exp(strict), ndarray + strict) raise TypeError

    def __init__(self, a: numpy.ndarray):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError(f"implicit conversion of a device array to a NumPy array is not allowed: {HOST_COPY}")

    def get(self) -> numpy.ndarray:
        """The explicit copy to the host, as ``cupy.ndarray.get()``."""
        return self._a.copy()

    # --- the host scalar conversions CuPy allows, for one element only
    def _scalar(self, kind):
        if self._a.size != 1:
            raise TypeError(f"{kind.__name__}() of a device array with {self._a.size} elements: only one-element "
                            f"arrays convert to a Python scalar ({HOST_COPY})")
        return kind(self._a.reshape(()))

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __bool__(self):
        return self._scalar(bool)

    def __index__(self):
        return operator.index(self._a.reshape(()).item()) if self._a.size == 1 else self._scalar(int)

    def item(self):
        return self._scalar(lambda x: x.item() if hasattr(x, "item") else x)

    def tolist(self):
        raise TypeError(f"tolist() of a device array copies it to the host: {HOST_COPY}")

    # --- attributes and methods that stay on the device
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (wrap(x) for x in self._a)

    def __repr__(self):
        return f"StrictArray(shape={self._a.shape}, dtype={self._a.dtype})"

    def __getattr__(self, name):  # reshape, transpose, swapaxes, astype, sum, mean, max, copy, fill ...
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__: NumPy would read
            raise AttributeError(name)  # the memory through them, the copy CuPy refuses
        method = getattr(self._a, name)
        if not callable(method):
            return wrap(method)
        return lambda *args, **kwargs: wrap(method(*unwrap(args), **unwrap(kwargs)))

    def __getitem__(self, key):
        return wrap(self._a[unwrap(key)])

    def __setitem__(self, key, value):
        self._a[unwrap(key)] = unwrap(value)


def _binary(name):
    op = getattr(operator, name if name not in ("and", "or") else f"{name}_")

    def method(self, other):
        return wrap(op(self._a, unwrap(other)))

    def reflected(self, other):
        return wrap(op(unwrap(other), self._a))

    return method, reflected


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _fwd, _rev = _binary(_name)
    setattr(StrictArray, f"__{_name}__", _fwd)
    setattr(StrictArray, f"__r{_name}__", _rev)
    _iop = getattr(operator, f"i{_name}")
    setattr(StrictArray, f"__i{_name}__",
            lambda self, other, _iop=_iop: (_iop(self._a, unwrap(other)), self)[1])
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(StrictArray, f"__{_name}__", _binary(_name)[0])
for _name in ("neg", "pos", "abs", "invert"):  # noqa: B007 (bound through the default argument)
    setattr(StrictArray, f"__{_name}__", lambda self, _op=getattr(operator, _name): wrap(_op(self._a)))
StrictArray.__hash__ = None


def unwrap(x):
    """StrictArray -> its NumPy array, through lists, tuples, dicts and slices; a bare
    numpy.ndarray is refused, since CuPy would refuse it."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise TypeError(f"a numpy.ndarray {x.shape} met a device array: move it first with "
                        "companion.backend.asarray (CuPy: cupy.asarray), or keep it on the device")
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: unwrap(v) for k, v in x.items()}
    if isinstance(x, slice):
        return slice(unwrap(x.start), unwrap(x.stop), unwrap(x.step))
    return x


def wrap(x):
    """NumPy arrays (through lists and tuples) -> StrictArray; scalars stay scalars."""
    if isinstance(x, numpy.ndarray):
        return StrictArray(x)
    if isinstance(x, (list, tuple)):
        return type(x)(wrap(v) for v in x)
    return x


def asarray(a, dtype=None):
    """The host-to-device move: NumPy arrays and Python data become device arrays."""
    if isinstance(a, StrictArray):
        return a if dtype is None or a.dtype == dtype else StrictArray(a._a.astype(dtype))
    return StrictArray(numpy.array(a, dtype=dtype))  # a copy, as a transfer to the GPU is


array = asarray


def __getattr__(name):
    """Every other name is NumPy's: dtypes and constants as they are, functions applied to the
    unwrapped arguments with their array results wrapped."""
    if name in ("random", "linalg", "fft"):
        raise AttributeError(f"strict backend: xp.{name} is not provided; draw on the host Generator and move with asarray")
    value = getattr(numpy, name)
    if isinstance(value, type) or not callable(value):
        return value
    return lambda *args, **kwargs: wrap(value(*unwrap(args), **unwrap(kwargs)))
