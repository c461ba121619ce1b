"""Tokenizers (chapter 1): text <-> token ids.

    CharTokenizer   one token per character                    (char.py)
    WordTokenizer   one token per word / punctuation / space   (word.py)
    BPETokenizer    byte-level byte-pair encoding, GPT-2 style (bpe.py)

All three share the special tokens ``SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")`` at
ids 0..3, the methods ``encode``, ``decode``, ``id_to_token``, ``token_to_id`` and
``vocab_size``, and JSON files (``save`` / ``load``; see base.py). ``load_tokenizer(path)``
reads any of them, choosing the class from the file's ``"type"`` field.
"""

from __future__ import annotations

import os

from ..tools.io import read_json
from .base import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Tokenizer
from .bpe import GPT2_PATTERN, BPETokenizer
from .char import CharTokenizer
from .word import WordTokenizer

TOKENIZER_TYPES = {cls.type_name: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer)}


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Build the tokenizer a ``to_dict()`` describes, whatever its type."""
    if not isinstance(d, dict):
        raise TypeError(f"a tokenizer must be described by a dict, got {type(d).__name__}")
    if "type" not in d:
        raise ValueError("tokenizer description is missing the field 'type'")
    if d["type"] not in TOKENIZER_TYPES:
        raise ValueError(f"unknown tokenizer type {d['type']!r}; expected one of {sorted(TOKENIZER_TYPES)}")
    return TOKENIZER_TYPES[d["type"]].from_dict(d)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read a tokenizer JSON file written by any tokenizer's ``save``."""
    d = read_json(path, what="tokenizer file")
    try:
        return tokenizer_from_dict(d)
    except (ValueError, TypeError) as err:
        raise type(err)(f"tokenizer file {path}: {err}") from err


__all__ = [
    "SPECIALS", "PAD_ID", "BOS_ID", "EOS_ID", "UNK_ID", "GPT2_PATTERN",
    "Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer",
    "tokenizer_from_dict", "load_tokenizer", "TOKENIZER_TYPES",
]
