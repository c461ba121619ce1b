"""Lower precision in NumPy: bfloat16 emulated exactly, and float16 beside it.

A float32 is 1 sign bit, 8 exponent bits and 23 mantissa bits. bfloat16 keeps the sign and
all 8 exponent bits (so the same range, up to about 3.4e38) and only the top 7 mantissa bits;
float16 has 5 exponent bits (largest finite value 65504) and 10 mantissa bits. NumPy has no
bfloat16 type, but a bfloat16 is exactly the top half of a float32, so rounding a float32 to
bfloat16 is integer arithmetic on its bits:

    bits = x.view(uint32)
    bits += 0x7FFF + ((bits >> 16) & 1)     round to nearest, ties to the even neighbour
    bits &= 0xFFFF0000                      drop the low 16 bits

The result is still stored as a float32 (a bfloat16 value padded with zeros), so all of NumPy
keeps working on it; only its precision changed. This is how mixed-precision training is
simulated here (Micikevicius et al. 2018): weights and activations rounded to bfloat16 on
their way into each product, float32 master weights in the optimizer.
"""

from __future__ import annotations

import numpy as np


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 (any shape) -> float32 holding the nearest bfloat16 value (ties to even).

    NaN stays NaN, +-inf stays +-inf, and values beyond bfloat16's largest finite number
    round to +-inf, as a hardware conversion does."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"round_to_bf16 takes float32 arrays (a bfloat16 is the top half of one), got {x.dtype}")
    bits = x.view(np.uint32).astype(np.uint64)  # room for the carry out of the low half
    bits += 0x7FFF + ((bits >> 16) & 1)
    rounded = (bits & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, rounded)  # adding to a NaN's bits could turn it into inf


def round_to_fp16(x: np.ndarray) -> np.ndarray:
    """float32 -> float32 holding the nearest float16 value (NumPy's float16 rounds to nearest
    even); above 65504 this overflows to inf, which is why float16 training needs loss scaling."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"round_to_fp16 takes float32 arrays, got {x.dtype}")
    with np.errstate(over="ignore"):  # overflow to inf is the behaviour being shown
        return x.astype(np.float16).astype(np.float32)


def largest_finite(fmt: str) -> float:
    """The largest finite number of 'float32', 'bfloat16' or 'float16'."""
    if fmt == "float32":
        return float(np.finfo(np.float32).max)
    if fmt == "bfloat16":  # all-ones mantissa (7 bits) under the largest exponent
        return float(np.array([0x7F7F0000], dtype=np.uint32).view(np.float32)[0])
    if fmt == "float16":
        return float(np.finfo(np.float16).max)
    raise ValueError(f"fmt must be 'float32', 'bfloat16' or 'float16', got {fmt!r}")
