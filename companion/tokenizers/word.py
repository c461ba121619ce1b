"""Word-level tokenizer: one token per word, punctuation mark or whitespace character.

A word-level model builds its vocabulary from a corpus this way. Two steps:

1. Pre-tokenise: cut the text into pieces with one regular expression,

       PIECE = r"\\w+|[^\\w\\s]|\\s"

   i.e. a run of word characters (letters, digits, underscore: "Max", "5", "don"), or a
   single punctuation mark ("(", "'", "="), or a single whitespace character (" ", "\\n").
   Every character of any string falls in exactly one piece, so joining the pieces gives
   the text back: nothing is dropped, case is kept, and whitespace is kept too. Whitespace
   is cut one character at a time so that *any* spacing (two spaces, a tab, "\\n\\n")
   is spelled with the same few tokens instead of needing its own entry per run length.
2. Count the pieces of a corpus; the vocabulary is the specials plus the pieces seen at
   least ``min_count`` times, most frequent first (ties in alphabetical order), cut to
   ``max_size`` entries in all.

``decode(encode(s)) == s`` for every ``s`` whose pieces are all in the vocabulary. An
unseen piece (a new word) encodes to ``<unk>`` and cannot round-trip.

The weakness that sub-word tokenizers fix: every unseen word is ``<unk>``, and "run",
"runs" and "running" share nothing. The strength: for a tiny formal language such as
ListOps (``WordTokenizer(["Max", "(", "5", ")", "="])``) one token per symbol is ideal.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from .base import SPECIALS, TableTokenizer, require

PIECE = re.compile(r"\w+|[^\w\s]|\s")


def pretokenize(text: str) -> list[str]:
    """Cut ``text`` into words, single punctuation marks and single whitespace characters;
    ``"".join(pretokenize(text)) == text`` always."""
    return PIECE.findall(text)


class WordTokenizer(TableTokenizer):
    """``WordTokenizer(tokens)``: an explicit vocabulary, in id order (ids 4, 5, ...).

    Each token must be one piece of the pre-tokeniser (``pretokenize(tok) == [tok]``);
    a token such as "[MAX" would be cut into "[" and "MAX" and could never be produced,
    so it is refused with a message saying so.
    """

    type_name = "word"

    def __init__(self, tokens: Iterable[str]):
        tokens = list(tokens)
        super().__init__(tokens, what="word tokens")
        for tok in tokens:
            if pretokenize(tok) != [tok]:
                raise ValueError(f"word token {tok!r} is cut by the pre-tokeniser into "
                                 f"{pretokenize(tok)!r}, so encode could never produce it")

    @classmethod
    def from_corpus(cls, text: str, min_count: int = 1, max_size: int | None = None) -> "WordTokenizer":
        """Vocabulary of the pieces of ``text`` seen at least ``min_count`` times, most
        frequent first; ``max_size`` caps the whole vocabulary *including* the 4 special
        tokens, so it can be passed straight on as the model's ``vocab_size``."""
        if not isinstance(text, str):
            raise TypeError(f"from_corpus expects a str, got {type(text).__name__}")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size must be at least {len(SPECIALS)} (the special tokens), got {max_size}")
        counts = Counter(pretokenize(text))
        # Sort key (-count, token): deterministic, whatever order the corpus listed things in.
        kept = sorted((tok for tok, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        return cls(kept)

    @property
    def words(self) -> list[str]:
        return self.tokens[len(self.specials):]

    def _encode(self, text: str) -> list[int]:
        ids = self._ids
        return [ids.get(piece, self.unk_id) for piece in pretokenize(text)]

    def _fields(self) -> dict:
        return {"tokens": self.words}

    @classmethod
    def _from_fields(cls, d: dict) -> "WordTokenizer":
        return cls(require(d, "tokens", list))
