"""Frames: one message of the grader's protocol on a pipe, read with a deadline (see codec.py).

    b"CGW1" | u64 length of the rest | u32 length of the JSON header | JSON header | blobs

The parent reads a worker's replies with ``FrameReader``, which never waits past a deadline and
never holds more than ``MAX_FRAME`` bytes of one message; a worker reads the parent's
messages with ``read_blocking``. Anything that is not a well-formed frame is a ``CodecError``.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

MAGIC = b"CGW1"
MAX_FRAME = 512 * 2**20  # a worker cannot make the parent hold more than this per message
_HEAD = struct.Struct("<4sQI")


class CodecError(Exception):
    """A message that is not what the protocol allows ("malformed result")."""


class Closed(Exception):
    """The other end closed its pipe (the worker exited or was killed)."""


class Timeout(Exception):
    """No complete message before the deadline."""


def pack(header: dict, blobs: list[bytes]) -> bytes:
    header = {**header, "blobs": [len(b) for b in blobs]}
    head = json.dumps(header, separators=(",", ":")).encode()
    body = head + b"".join(blobs)
    return _HEAD.pack(MAGIC, len(body) + 4, len(head)) + body


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def unpack(body: bytes, head_len: int) -> tuple[dict, list[bytes]]:
    try:
        header = json.loads(body[:head_len])
    except (ValueError, RecursionError) as err:
        raise CodecError(f"a message header is not valid JSON ({type(err).__name__})") from None
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes) \
            or sum(sizes) != len(body) - head_len:
        raise CodecError("a message's blob table does not match its length")
    blobs, at = [], head_len
    for s in sizes:
        blobs.append(body[at:at + s])
        at += s
    return header, blobs


def read_blocking(fd: int) -> tuple[dict, list[bytes]]:
    """The worker's side: wait as long as it takes for the next message."""
    head = _read_exact(fd, _HEAD.size)
    magic, length, head_len = _HEAD.unpack(head)
    if magic != MAGIC or length > MAX_FRAME or head_len > length - 4:
        raise CodecError("bad frame")
    body = _read_exact(fd, length - 4)
    return unpack(body, head_len)


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise Closed()
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class FrameReader:
    """The parent's side: read one message with a deadline, never trusting the sender."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, bytearray()

    def read(self, deadline: float) -> tuple[dict, list[bytes]]:
        while True:
            if len(self.buffer) >= _HEAD.size:
                magic, length, head_len = _HEAD.unpack(bytes(self.buffer[:_HEAD.size]))
                if magic != MAGIC:
                    raise CodecError("the worker sent bytes that are not a message")
                if length > MAX_FRAME:
                    raise CodecError(f"a message of {length / 2**20:.0f} MiB (the most is {MAX_FRAME // 2**20} MiB)")
                if length < 4 or head_len > length - 4:
                    raise CodecError("a message's header length is wrong")
                end = _HEAD.size + length - 4
                if len(self.buffer) >= end:
                    body = bytes(self.buffer[_HEAD.size:end])
                    del self.buffer[:end]
                    return unpack(body, head_len)
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise Closed()
            self.buffer += chunk
