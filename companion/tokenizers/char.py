"""Character-level tokenizer: one token per Unicode character.

The simplest tokenizer there is (nanoGPT's Shakespeare, the arithmetic task):
the vocabulary is the set of characters seen in a text, sorted, after the four special
tokens. Encoding looks each character up:

    vocab  = ["<pad>", "<bos>", "<eos>", "<unk>"] + sorted(set(text))
    encode("86 - 11 =") = [vocab.index(c) for c in "86 - 11 ="]

The round trip ``decode(encode(s)) == s`` holds for every ``s`` written in the
tokenizer's alphabet. A character outside the alphabet encodes to ``<unk>`` (id 3) and
decodes as the five characters "<unk>", so such an ``s`` cannot round-trip: the
information of which character it was is gone.

Cost: encode is O(len(text)) dictionary look-ups; sequences are as long as the text,
which is why larger models move to sub-word tokens (bpe.py).
"""

from __future__ import annotations

from typing import Iterable

from .base import TableTokenizer, require


class CharTokenizer(TableTokenizer):
    """``CharTokenizer(chars)``: ``chars`` is a string or an iterable of single characters,
    in the order their ids should take (ids 4, 5, ...). Use ``from_text`` to build one from
    a corpus."""

    type_name = "char"

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer needs single characters, got {c!r}")
        super().__init__(chars, what="characters")

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The alphabet of ``text``, sorted by code point (so the ids do not depend on the
        order the characters first appear in)."""
        if not isinstance(text, str):
            raise TypeError(f"from_text expects a str, got {type(text).__name__}")
        return cls(sorted(set(text)))

    @property
    def chars(self) -> list[str]:
        return self.tokens[len(self.specials):]

    def _encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(c, self.unk_id) for c in text]  # unknown character -> <unk>

    def _fields(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def _from_fields(cls, d: dict) -> "CharTokenizer":
        return cls(require(d, "chars", list))
