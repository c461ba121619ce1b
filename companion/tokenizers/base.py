"""What every tokenizer shares: the special tokens, id checks, and JSON save/load.

A tokenizer is a pair of maps, ``text -> list of ids`` (encode) and ``ids -> text``
(decode). Every tokenizer in this package reserves the first four ids for the same
special tokens, so a model, a data loader and a sampler can rely on them whatever the
tokenizer:

    id  token    used for
    0   <pad>    filling short sequences in a batch (the loss masks it out)
    1   <bos>    "beginning of sequence": the prompt a model starts generating from
    2   <eos>    "end of sequence": the model says it is done
    3   <unk>    a piece of text the vocabulary cannot represent

Special tokens never come out of *text*: encoding the five characters ``"<bos>"`` gives
the ids of those characters, not id 1. They enter only through ``add_bos`` / ``add_eos``
(and ``<unk>`` for unknown text), so no input can forge them.

Files are JSON (``{"type": "char" | "word" | "bpe", "version": 1, "specials": [...], ...}``),
written atomically; nothing is ever unpickled. A loaded file is checked field by field, and
a truncated or edited file fails with a message that names what is wrong.
"""

from __future__ import annotations

import operator
import os
from typing import Iterable

from ..tools.io import read_json, write_json

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
FORMAT_VERSION = 1


class Tokenizer:
    """Base class. Subclasses set ``type_name`` and implement ``_encode`` (str -> ids),
    ``vocab_size``, ``id_to_token``, ``token_to_id``, ``_fields`` (their part of the JSON)
    and ``_from_fields``; BPE also overrides ``_decode`` (its tokens are bytes)."""

    type_name = "base"
    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID
    specials = SPECIALS

    # ---- encode / decode -------------------------------------------------------------

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """text -> list of token ids, optionally framed by <bos> ... <eos>."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self._encode(text)
        if add_bos:
            ids = [self.bos_id] + ids
        if add_eos:
            ids = ids + [self.eos_id]
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """list of ids -> text.

        ``skip_special=True`` drops <pad>, <bos> and <eos>, which stand for no text.
        <unk> is always shown as the string "<unk>": it marks text that was lost, and
        hiding it would make a lossy round trip look exact.
        """
        return self._decode(self.check_ids(ids), skip_special)

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        # Char and word tokens are strings: decoding is a join. BPE overrides this.
        keep = [i for i in ids if not (skip_special and i in (self.pad_id, self.bos_id, self.eos_id))]
        return "".join(self.id_to_token(i) for i in keep)

    def check_ids(self, ids: Iterable[int]) -> list[int]:
        """Turn ``ids`` (a list, tuple or 1-D integer array) into a list of Python ints,
        naming the first id that is not an integer in [0, vocab_size)."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode expects a sequence of integer ids, got {type(ids).__name__}")
        if getattr(ids, "ndim", 1) != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {ids.shape}")
        out = []
        for i in ids:
            try:
                i = operator.index(i)  # accepts int and numpy integers, rejects floats
            except TypeError:
                raise TypeError(f"token ids must be integers, got {i!r} ({type(i).__name__})") from None
            self._check_id(i)
            out.append(i)
        return out

    def _check_id(self, i: int) -> None:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")

    # ---- save / load -----------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready dict that ``from_dict`` turns back into an identical tokenizer."""
        return {"type": self.type_name, "version": FORMAT_VERSION, "specials": list(SPECIALS),
                **self._fields()}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        check_header(d, expected_type=cls.type_name)
        return cls._from_fields(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (atomically: a crash never leaves half a file)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        d = read_json(path, what="tokenizer file")
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as err:
            raise type(err)(f"tokenizer file {path}: {err}") from err

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class TableTokenizer(Tokenizer):
    """A tokenizer whose tokens are strings in one table: id i <-> ``self.tokens[i]``.
    The char and word tokenizers are both this; they differ in how text is cut up."""

    def __init__(self, tokens: list[str], what: str):
        check_unique_tokens(tokens, what)
        self.tokens = list(SPECIALS) + list(tokens)  # specials first: ids 0..3
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def id_to_token(self, i: int) -> str:
        self._check_id(operator.index(i))
        return self.tokens[i]

    def token_to_id(self, tok: str) -> int:
        if tok not in self._ids:
            raise ValueError(f"token {tok!r} is not in the vocabulary")
        return self._ids[tok]


# ---- validation helpers shared by the subclasses' from_dict ---------------------------


def check_header(d, expected_type: str | None = None) -> None:
    """Check the fields every tokenizer file has: type, version and the special tokens."""
    if not isinstance(d, dict):
        raise TypeError(f"a tokenizer must be described by a dict, got {type(d).__name__}")
    if "type" not in d:
        raise ValueError("tokenizer description is missing the field 'type'")
    if expected_type is not None and d["type"] != expected_type:
        raise ValueError(f"expected a tokenizer of type {expected_type!r}, got type {d['type']!r}")
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported tokenizer format version {d.get('version')!r} "
                         f"(this code reads version {FORMAT_VERSION})")
    if tuple(require(d, "specials", list)) != SPECIALS:
        raise ValueError(f"special tokens must be {list(SPECIALS)}, got {d['specials']!r}")


def require(d: dict, field: str, kind: type):
    """Return ``d[field]``, insisting that it exists and has the JSON type ``kind``."""
    if field not in d:
        raise ValueError(f"tokenizer description is missing the field {field!r}")
    if not isinstance(d[field], kind):
        raise ValueError(f"field {field!r} must be a {kind.__name__}, got {type(d[field]).__name__}")
    return d[field]


def check_unique_tokens(tokens: list, what: str) -> None:
    """Tokens must be distinct non-empty strings and must not reuse a special token's name."""
    seen = set()
    for tok in tokens:
        if not isinstance(tok, str) or tok == "":
            raise ValueError(f"{what} must be non-empty strings, got {tok!r}")
        if tok in SPECIALS:
            raise ValueError(f"{what} must not include the special token {tok!r} (it is added for you)")
        if tok in seen:
            raise ValueError(f"{what} contain {tok!r} twice")
        seen.add(tok)
