"""Byte-level byte-pair encoding (BPE), as in GPT-2 (Sennrich et al. 2016; Radford et al. 2019).

Text is first turned into UTF-8 bytes, so the 256 byte values spell *every* string: there
is no unknown character, and ``decode(encode(s)) == s`` for every ``str`` ``s`` (every valid
Unicode string: a lone surrogate such as "\ud800" has no UTF-8 form, and encode raises
UnicodeEncodeError naming it).
Vocabulary ids:

    0..3      the special tokens <pad> <bos> <eos> <unk>
    4..259    the 256 single bytes (byte b has id 4 + b)
    260, ...  one new token per learned merge, in the order it was learned

Training (``BPETokenizer.train``) repeats, until the vocabulary has ``vocab_size`` tokens:

    1. count every pair of adjacent ids in the training text;
    2. take the most frequent pair (a, b); on a tie, the smallest pair, comparing a first
       and then b as numbers, so training is deterministic and byte pairs beat later merges;
    3. give it the next id and replace every (a, b) in the text by it, left to right.

Wikipedia's example: "aaabdaaabac" -> merge (a, a) = Z -> "ZabdZabac" -> merge (a, b) = Y
(tied with (Z, a) at 2; a < Z) -> "ZYdZYac" -> merge (Z, Y) = X -> "XdXac". Training stops
early, with a smaller vocabulary, when no pair occurs ``min_frequency`` (default 2) times:
merging a pair seen once only memorises the training text.

Pre-tokenisation (GPT-2's choice, the default): before counting, the text is cut with a
regular expression into chunks (a word with its leading space, a number, a run of
punctuation, whitespace) and pairs are counted inside chunks only. So merges never cross
a word boundary: "dog." and "dog!" share the token " dog" instead of the vocabulary
filling up with "dog." and "dog!". Pass ``pattern=None`` to train on the raw byte stream
(fine for small examples; every merge then rescans the whole text).

Speed: the text is reduced to its distinct chunks with their counts, and each merge
re-counts only the chunks that contain the merged pair (an index pair -> chunks), with a
heap to find the most frequent pair. A merge costs about the total length of the chunks it
touches, not of the whole corpus.

Encoding applies the merges in the order they were learned: within each chunk, merge the
adjacent pair with the lowest merge rank, repeat until no adjacent pair has been learned.
This yields the same tokens as training produced on the training text.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict

from .base import SPECIALS, Tokenizer, require

N_BYTES = 256
BYTE_OFFSET = len(SPECIALS)  # byte b has id BYTE_OFFSET + b
N_BASE = BYTE_OFFSET + N_BYTES  # 260: the first merged token's id

# GPT-2's split pattern, written for Python's `re` (no \p{L}): contractions, an optional
# space + letters, an optional space + digits, an optional space + other symbols, then
# whitespace (a run not followed by a non-space, so the last space joins the next word).
# Letters are [^\W\d_]; "other" is [^\s\w] plus "_", so every character is covered.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""

ENCODE_CACHE_SIZE = 100_000  # chunks remembered per tokenizer: text repeats its words


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right
    ("aaa" with pair (a, a) becomes [new, a]: occurrences do not overlap)."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """``BPETokenizer(merges, pattern)``: ``merges[k] = (a, b)`` makes token ``260 + k``.
    Usually built by ``BPETokenizer.train(text, vocab_size)`` or loaded from JSON."""

    type_name = "bpe"

    def __init__(self, merges: list[tuple[int, int]] = (), pattern: str | None = GPT2_PATTERN):
        self.merges: list[tuple[int, int]] = []
        self.ranks: dict[tuple[int, int], int] = {}  # pair -> k: lower k was learned first
        self.vocab: list[bytes] = [s.encode() for s in SPECIALS] + [bytes([b]) for b in range(N_BYTES)]
        for k, pair in enumerate(merges):
            pair = self._check_merge(k, pair)
            self.merges.append(pair)
            self.ranks[pair] = k
            self.vocab.append(self.vocab[pair[0]] + self.vocab[pair[1]])
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"pattern must be a regular expression string or None, got {pattern!r}")
        try:
            self._regex = re.compile(pattern) if pattern is not None else None
        except re.error as err:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from None
        if self._regex is not None and self._regex.groups:
            raise ValueError(f"pattern {pattern!r} has capturing groups, which would make findall return the "
                             f"groups instead of the chunks; write them as (?:...)")
        self.pattern = pattern
        # bytes -> id, for token_to_id; the first id wins if two merge paths spell the same bytes.
        self._byte_ids: dict[bytes, int] = {}
        for i in range(N_BASE + len(self.merges) - 1, BYTE_OFFSET - 1, -1):
            self._byte_ids[self.vocab[i]] = i
        self._cache: dict[str, list[int]] = {}

    def _check_merge(self, k: int, pair) -> tuple[int, int]:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"merge {k} must be a pair of token ids, got {pair!r}")
        new_id = N_BASE + k
        for t in pair:
            if isinstance(t, bool) or not isinstance(t, int) or not BYTE_OFFSET <= t < new_id:
                raise ValueError(f"merge {k} {list(pair)!r}: {t!r} is not the id of a byte or an earlier "
                                 f"merge (must be an int in [{BYTE_OFFSET}, {new_id}))")
        pair = (pair[0], pair[1])
        if pair in self.ranks:
            raise ValueError(f"merge {k} {list(pair)!r} repeats merge {self.ranks[pair]}")
        return pair

    # ---- training ------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = GPT2_PATTERN,
              min_frequency: int = 2) -> "BPETokenizer":
        """Learn ``vocab_size - 260`` merges from ``text`` (fewer if pairs run out)."""
        if not isinstance(text, str):
            raise TypeError(f"train expects a str, got {type(text).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < N_BASE:
            raise ValueError(f"vocab_size must be an int >= {N_BASE} (4 specials + 256 bytes), got {vocab_size!r}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be at least 1, got {min_frequency}")
        tok = cls((), pattern)  # no merges yet: only its pre-tokeniser is used

        # Distinct chunks and how often each occurs: a word seen 1000 times is counted once.
        chunk_counts = Counter(tok._split(text))
        words = [[BYTE_OFFSET + b for b in chunk.encode("utf-8")] for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        counts: dict[tuple[int, int], int] = defaultdict(int)  # pair -> occurrences in the text
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that hold it
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                counts[pair] += f
                where[pair].add(w)
        # Max-heap by count, then smallest pair: entries (-count, pair). Stale entries (the
        # count has changed since) are skipped when popped; each change pushes a fresh one.
        heap = [(-c, pair) for pair, c in counts.items()]
        heapq.heapify(heap)

        merges = []
        for new_id in range(N_BASE, vocab_size):
            best = None
            while heap:
                negc, pair = heapq.heappop(heap)
                if counts.get(pair, 0) == -negc:
                    best = pair
                    break
            if best is None or -negc < min_frequency:
                break
            merges.append(best)
            changed = set()
            for w in where.pop(best):
                old = words[w]
                new = merge(old, best, new_id)
                if len(new) == len(old):
                    continue  # stale index entry: this chunk no longer holds the pair
                f = freqs[w]
                for pair in zip(old, old[1:]):  # take the chunk's old pairs out ...
                    counts[pair] -= f
                    changed.add(pair)
                for pair in zip(new, new[1:]):  # ... and put its new pairs in
                    counts[pair] += f
                    where[pair].add(w)
                    changed.add(pair)
                words[w] = new
            for pair in changed:
                if counts[pair] > 0:
                    heapq.heappush(heap, (-counts[pair], pair))
                else:
                    del counts[pair]
        return cls(merges, pattern)

    # ---- encode / decode -------------------------------------------------------------

    def _split(self, text: str) -> list[str]:
        if self._regex is None:
            return [text] if text else []
        chunks = self._regex.findall(text)
        if sum(map(len, chunks)) != len(text):  # matches never overlap: a shortfall is dropped text
            raise ValueError(self._uncovered(text))
        return chunks

    def _uncovered(self, text: str) -> str:
        """Name the first character the pattern does not cover."""
        end = 0
        for m in self._regex.finditer(text):
            if m.start() != end:
                break
            end = m.end()
        return (f"the pattern {self.pattern!r} does not cover the text: {text[end]!r} at position {end} "
                f"matches no part of it and would be dropped; add an alternative that matches every "
                f"character (e.g. end it with |\\s+|.)")

    def _encode(self, text: str) -> list[int]:
        out = []
        for chunk in self._split(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(self._cache) < ENCODE_CACHE_SIZE:
                    self._cache[chunk] = ids
            out.extend(ids)
        return out

    def _encode_chunk(self, data: bytes) -> list[int]:
        ids = [BYTE_OFFSET + b for b in data]
        while len(ids) >= 2:
            # The learned pair present here with the lowest rank, i.e. the earliest merge.
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break  # no adjacent pair was ever merged: done
            ids = merge(ids, pair, N_BASE + self.ranks[pair])
        return ids

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        skip = (self.pad_id, self.bos_id, self.eos_id) if skip_special else ()
        data = b"".join(self.vocab[i] for i in ids if i not in skip)
        # Any id sequence can be asked for; one that cuts a multi-byte character in two is
        # not valid UTF-8, and shows U+FFFD there instead of failing.
        return data.decode("utf-8", errors="replace")

    # ---- vocabulary --------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_bytes(self, i: int) -> bytes:
        """The exact bytes token ``i`` stands for (a special token: its name)."""
        self._check_id(i)
        return self.vocab[i]

    def id_to_token(self, i: int) -> str:
        """A readable form of token ``i``: its bytes as text, with a byte that is not
        complete UTF-8 shown as an escape such as "\\xe2". Use ``token_bytes`` for the exact bytes."""
        return self.token_bytes(i).decode("utf-8", errors="backslashreplace")

    def token_to_id(self, tok: str | bytes) -> int:
        """Id of a special token's name, or of the token spelling these bytes (a str is
        taken as its UTF-8 bytes)."""
        if isinstance(tok, str) and tok in SPECIALS:
            return SPECIALS.index(tok)
        data = tok.encode("utf-8") if isinstance(tok, str) else tok
        if data not in self._byte_ids:
            raise ValueError(f"token {tok!r} is not in the vocabulary")
        return self._byte_ids[data]

    # ---- save / load ---------------------------------------------------------------------

    def _fields(self) -> dict:
        return {"pattern": self.pattern, "merges": [list(p) for p in self.merges]}

    @classmethod
    def _from_fields(cls, d: dict) -> "BPETokenizer":
        if "pattern" not in d:
            raise ValueError("tokenizer description is missing the field 'pattern'")
        return cls(require(d, "merges", list), d["pattern"])
