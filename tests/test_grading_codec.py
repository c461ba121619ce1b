"""The grader's wire format (companion/grading/codec.py): values, identity and in-place changes
survive the trip between the parent and a worker; nothing is unpickled; nothing outside the
companion package can be named into existence."""

from __future__ import annotations

import numpy as np
import pytest

from companion import Transformer, preset
from companion.grading import codec


def trip(value, **kw):
    enc = codec.Encoder(**kw)
    node = enc.enc(value)
    frame = codec.pack({"v": node}, enc.blobs)
    header, blobs = codec.unpack(frame[16:], int.from_bytes(frame[12:16], "little"))
    return codec.Decoder(blobs, allow_import=True).dec(header["v"]), enc


def test_values_round_trip():
    rng = np.random.default_rng(3)
    rng.random()
    value = {"a": np.arange(6.0).reshape(2, 3), "b": [1, 2.5, None, True, "x", (3, (4,))], 7: np.float32(1.5),
             "dt": np.float32, "dtype": np.dtype("int16"), "t": float, "nan": float("nan"), "rng": rng,
             "c": 1 + 2j, "s": {1, 2}, "bytes": b"\x00\x01"}
    back, _ = trip(value)
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.float64
    assert back["b"] == value["b"] and back[7] == np.float32(1.5) and type(back[7]) is np.float32
    assert back["dt"] is np.float32 and back["dtype"] == np.dtype("int16") and back["t"] is float
    assert np.isnan(back["nan"]) and back["c"] == 1 + 2j and back["s"] == {1, 2} and back["bytes"] == b"\x00\x01"
    assert back["rng"].random() == value["rng"].random()  # the same state


def test_aliasing_and_companion_objects_survive():
    model = Transformer(preset("tiny", dtype="float64", block_size=8), np.random.default_rng(0))
    shared = np.ones(3)
    back, _ = trip([shared, shared, model])
    assert back[0] is back[1]
    assert type(back[2]) is Transformer and back[2].config == model.config
    idx = np.array([[1, 2, 3]])
    assert np.allclose(back[2].forward(idx), model.forward(idx))


def test_in_place_changes_and_rebinding_come_back_as_such():
    """The worker's side: update one array in place, rebind another dict entry; the parent's
    objects show exactly that (in place stays the same object; rebound is a new one)."""
    grads = {"w": np.ones((2, 2)), "b": np.ones(2)}
    w, b = grads["w"], grads["b"]
    enc = codec.Encoder()
    node = enc.enc((grads,))
    worker = codec.Decoder(enc.blobs)
    (their,) = worker.dec(node)
    pristine = {r: o.copy() for r, o in worker.made.items() if isinstance(o, np.ndarray)}
    their["w"] *= 0.5  # in place
    their["b"] = their["b"] * 0.5  # rebinding: the parent's array must stay unscaled
    reply = codec.Encoder(known={id(o): r for r, o in worker.made.items()}, pristine=pristine, sign=-1)
    back_node = reply.enc((their,))
    codec.Decoder(reply.blobs, originals=enc.objects).dec(back_node)
    assert grads["w"] is w and np.allclose(w, 0.5)
    assert grads["b"] is not b and np.allclose(grads["b"], 0.5) and np.allclose(b, 1.0)


def test_nothing_is_unpickled_or_named_from_outside_the_companion():
    with pytest.raises(TypeError, match="dtype=object"):
        codec.Encoder().enc(np.array([object()]))
    for bad in ({"t": "o", "r": -1, "c": "os:system", "k": [], "v": []},
                {"t": "f", "r": -1, "v": "subprocess:run"},
                {"t": "cl", "v": "builtins:eval"}):
        with pytest.raises(codec.CodecError):
            codec.Decoder([]).dec(bad)
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(codec.CodecError):
        codec.Decoder([buf.getvalue()]).dec({"t": "a", "r": -1, "b": 0})


def test_frames_are_checked():
    with pytest.raises(codec.CodecError):
        codec.unpack(b'{"blobs": [5]}abc', len(b'{"blobs": [5]}'))
    with pytest.raises(codec.CodecError):
        codec.unpack(b"[[[[", 4)
