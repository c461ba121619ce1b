"""`companion.backend.add_at` is `numpy.add.at`: the sorting path gives its sums on the embedding's
case (1-D integer ids, one row of values per id), and every other input is handed to
`numpy.add.at` itself, so nothing that `numpy.add.at` accepts is refused.

Sums are compared exactly where no id repeats, else to rounding: sorting adds a repeated id's rows
together first and then to the target, `np.add.at` adds them to the target one by one."""

import types

import numpy as np
import pytest

from companion import backend
from companion.backend import _add_at_numpy


def reference(target, indices, values):
    out = np.array(target, copy=True)
    np.add.at(out, indices, values)
    return out


def ours(target, indices, values):
    out = np.array(target, copy=True)
    _add_at_numpy(out, indices, values)
    return out


def tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["repeated", "negative", "empty", "large_vocab", "all_one_id"])
def test_add_at_matches_numpy_add_at_on_the_embeddings_case(case, dtype):
    rng = np.random.default_rng(0)
    V, C, N = (50_257, 16, 300) if case == "large_vocab" else (11, 8, 200)
    target = rng.standard_normal((V, C)).astype(dtype)  # nonzero: the sums add to what is there
    indices = {
        "repeated": rng.integers(0, V, size=N),
        "negative": rng.integers(-V, V, size=N),  # -1 and V - 1 are the same row
        "empty": np.zeros(0, dtype=np.int64),
        "large_vocab": rng.integers(0, V, size=N),
        "all_one_id": np.full(N, 3),
    }[case]
    values = rng.standard_normal(indices.shape + (C,)).astype(dtype)
    got, want = ours(target, indices, values), reference(target, indices, values)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tolerance(dtype))
    if case == "empty":
        assert np.array_equal(got, target), "no ids must leave the target unchanged"


def test_add_at_is_exact_when_no_id_repeats():
    rng = np.random.default_rng(1)
    target = rng.standard_normal((40, 5))  # float64
    indices = rng.permutation(40)[:25]  # distinct ids in any order: one rounding per element on both paths
    values = rng.standard_normal((indices.size, 5))
    assert np.array_equal(ours(target, indices, values), reference(target, indices, values))


def test_the_embeddings_case_takes_the_sorting_path(monkeypatch):
    """Without this, a fast path that always fell back would pass every test above."""

    class NoAddAt:
        def __getattr__(self, name):
            if name == "at":
                raise AssertionError("numpy.add.at was called on the embedding's case")
            return getattr(np.add, name)

    fake = types.SimpleNamespace(**{n: getattr(np, n) for n in ("ndarray", "argsort", "flatnonzero", "r_")})
    fake.add = NoAddAt()
    monkeypatch.setattr(backend, "numpy", fake)
    rng = np.random.default_rng(2)
    target = np.zeros((7, 4), dtype=np.float32)
    indices = rng.integers(0, 7, size=50)
    values = rng.standard_normal((50, 4)).astype(np.float32)
    _add_at_numpy(target, indices, values)
    monkeypatch.undo()
    np.testing.assert_allclose(target, reference(np.zeros((7, 4), np.float32), indices, values), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["scalar_value", "broadcast_row", "list_indices", "2d_indices",
                                  "1d_target", "float64_into_float32", "tuple_index"])
def test_every_other_input_gets_numpy_add_at_semantics(case):
    rng = np.random.default_rng(3)
    target = rng.standard_normal((9, 3)).astype(np.float32)
    indices, values = {
        "scalar_value": (np.array([1, 1, 4]), 2.5),
        "broadcast_row": (np.array([0, 0, 8, 2]), rng.standard_normal(3).astype(np.float32)),
        "list_indices": ([5, 5, 0], rng.standard_normal((3, 3)).astype(np.float32)),
        "2d_indices": (np.array([[1, 2], [2, 2]]), rng.standard_normal((2, 2, 3)).astype(np.float32)),
        "1d_target": (None, None),
        "float64_into_float32": (np.array([3, 3, 3]), rng.standard_normal((3, 3))),
        "tuple_index": ((np.array([1, 1]), np.array([0, 0])), np.float32(1.0)),
    }[case]
    if case == "1d_target":
        target = rng.standard_normal(9).astype(np.float32)
        indices, values = np.array([2, 2, 7]), np.ones(3, dtype=np.float32)
    np.testing.assert_allclose(ours(target, indices, values), reference(target, indices, values),
                               rtol=1e-6, atol=1e-6)


def test_add_at_through_the_backend_under_numpy():
    if backend.BACKEND != "numpy":
        pytest.skip(f"the {backend.BACKEND} backend takes device arrays; the test double's own tests cover it")
    target = np.ones((4, 2))
    backend.add_at(target, [0, 0, 3], 1.0)  # a list and a scalar: numpy.add.at's semantics
    assert np.array_equal(target, [[3, 3], [1, 1], [1, 1], [2, 2]])
    backend.add_at(target, np.array([-1, 3]), np.ones((2, 2)))
    assert np.array_equal(target[3], [4, 4])


def test_an_out_of_range_id_is_an_index_error_on_both_paths():
    target = np.zeros((3, 2))
    with pytest.raises(IndexError):
        _add_at_numpy(target, np.array([0, 3]), np.ones((2, 2)))  # the sorting path
    with pytest.raises(IndexError):
        _add_at_numpy(target, np.array([0, -4]), np.ones((2, 2)))  # numpy.add.at
