"""What every task shares, and the held-out split of a space of problems.

A task is a seeded source of training data plus a fixed set of problems to test on:

    task.batch("train", B, rng) -> Batch(idx, targets, loss_mask, pad_mask)   (companion.data)
    task.train, task.val, task.test                                           the three splits
    task.tokenizer, task.vocab_size, task.block_size, task.to_dict()

Question-answer tasks (ListOps, addition) number every possible problem 0 .. N-1 (a
"code"). Which split a problem belongs to is decided by a hash of its code and the task's
seed, so the split is a fixed partition of the *problem space*: a test problem is never
drawn for training, not even once, whatever the number of steps. About 80% of the codes
train, 10% validate and 10% test:

    bucket(code) = splitmix64(code + seed * golden) mod 1000
    test if bucket < 100,  val if bucket < 200,  else train

splitmix64 (Steele et al. 2014) scrambles consecutive integers into unrelated ones, so
"Max ( 1 2 3 )" and "Max ( 1 2 4 )" land in buckets independently. Small spaces (N up to
a million) are enumerated once; in a larger space, training codes are drawn uniformly and
the ~20% that fall in val/test are rejected, and val/test keep a fixed random sample.
"""

from __future__ import annotations

import numpy as np

from ..data import Batch, pack_rows

ENUMERATE_LIMIT = 1_000_000  # spaces up to this many problems are listed explicitly
TABLE_LIMIT = 200_000  # spaces up to this many problems are encoded once, into a table
TEST_BUCKETS, VAL_BUCKETS, N_BUCKETS = 100, 200, 1000  # test < 100 <= val < 200 <= train
SPLITS = ("train", "val", "test")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed bijective scramble of uint64 integers (the finaliser of SplitMix64)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):  # wrapping multiplication modulo 2**64 is the point
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def split_of(codes: np.ndarray, seed: int) -> np.ndarray:
    """codes (n,) -> (n,) int8: 0 train, 1 val, 2 test."""
    with np.errstate(over="ignore"):
        salted = np.asarray(codes, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x632BE59BD9B4E019)
    bucket = splitmix64(salted) % np.uint64(N_BUCKETS)  # (n,)
    out = np.zeros(bucket.shape, dtype=np.int8)
    out[bucket < VAL_BUCKETS] = 1
    out[bucket < TEST_BUCKETS] = 2
    return out


def check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


class Task:
    """Base class: subclasses set name, tokenizer, block_size and implement batch/to_dict."""

    name = "task"
    tokenizer = None
    block_size = 0
    answer_based = False  # True when evaluation generates an answer and checks it whole

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def check_batch_args(self, split: str, batch_size: int, rng) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("pass an explicit numpy.random.Generator, e.g. np.random.default_rng(0)")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({opts})"


class ProblemSplit:
    """One split of a problem space: its codes (explicit), or, for the training split of a
    space too large to list, a rule that draws codes and rejects the held-out ones."""

    def __init__(self, name: str, task: "ProblemTask", codes: np.ndarray | None):
        self.name, self.task, self.codes = name, task, codes

    def __len__(self) -> int:
        if self.codes is not None:
            return len(self.codes)
        return int(round(self.task.space_size * (N_BUCKETS - VAL_BUCKETS) / N_BUCKETS))  # expected size

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n codes drawn uniformly (with replacement) from this split -> (n,) int64."""
        if self.codes is not None:
            return self.codes[rng.integers(0, len(self.codes), size=n)]
        want = {"train": 0, "val": 1, "test": 2}[self.name]
        out = np.empty(0, dtype=np.int64)
        while len(out) < n:  # about 80% of uniform draws are training codes
            draw = rng.integers(0, self.task.space_size, size=n + n // 2 + 8)  # (m,)
            out = np.concatenate([out, draw[split_of(draw, self.task.seed) == want]])
        return out[:n]

    def problems(self) -> list[tuple[str, str]]:
        """(question, answer) strings of every listed problem (val/test; small train)."""
        if self.codes is None:
            raise ValueError(f"the {self.name} split of this task is too large to list")
        return [self.task.problem(int(c))[:2] for c in self.codes]

    def __repr__(self) -> str:
        return f"ProblemSplit({self.name!r}, {len(self)} problems)"


class ProblemTask(Task):
    """A space of question-answer problems numbered 0 .. space_size - 1.

    Subclasses define ``space_size``, ``problem(code) -> (question, answer, group)`` and
    ``encode_text(text) -> list[int]`` (no <bos>/<eos>). A sequence is
    ``<bos> question answer <eos>``; the loss covers ``answer <eos>`` only."""

    answer_based = True

    def __init__(self, seed: int, max_eval: int):
        self.seed = check_seed(seed)
        if not isinstance(max_eval, int) or max_eval < 1:
            raise ValueError(f"max_eval must be a positive integer, got {max_eval!r}")
        self.max_eval = max_eval
        self._table = None  # every problem's encoding, built on first use (small spaces)
        N = self.space_size
        if N <= ENUMERATE_LIMIT:
            codes = np.arange(N, dtype=np.int64)  # (N,)
            which = split_of(codes, self.seed)  # (N,)
            train = codes[which == 0]
            val, test = (self._subsample(codes[which == k], k) for k in (1, 2))
        else:
            train = None
            val, test = (self._draw_heldout(k) for k in (1, 2))
        self.train = ProblemSplit("train", self, train)
        self.val = ProblemSplit("val", self, val)
        self.test = ProblemSplit("test", self, test)
        self.block_size = self.longest_sequence() - 1  # the model reads all but the last token

    # -- splits ----------------------------------------------------------------------

    def _subsample(self, codes: np.ndarray, k: int) -> np.ndarray:
        """At most max_eval of the codes, in a fixed random order: the first n of them are
        then a fair sample too (evaluation during training uses the first eval_size)."""
        rng = np.random.default_rng([self.seed, k])  # fixed by the seed, separate per split
        return rng.permutation(codes)[: self.max_eval]

    def _draw_heldout(self, k: int) -> np.ndarray:
        """max_eval distinct codes from held-out bucket k of a large space."""
        rng = np.random.default_rng([self.seed, k])
        found = np.empty(0, dtype=np.int64)
        while len(found) < self.max_eval:
            draw = rng.integers(0, self.space_size, size=20 * self.max_eval)
            found = np.unique(np.concatenate([found, draw[split_of(draw, self.seed) == k]]))
        return rng.permutation(found)[: self.max_eval]

    def split(self, name: str) -> ProblemSplit:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    # -- sequences -------------------------------------------------------------------

    @property
    def space_size(self) -> int:
        raise NotImplementedError

    def problem(self, code: int) -> tuple[str, str, str]:
        """code -> (question, answer, group), e.g. ('Max ( 5 3 9 ) =', '9', 'Max')."""
        raise NotImplementedError

    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def longest_sequence(self) -> int:
        raise NotImplementedError

    def encode_problem(self, code: int) -> tuple[list[int], list[int], str]:
        """code -> (prompt ids starting with <bos>, answer ids ending with <eos>, group)."""
        question, answer, group = self.problem(code)
        tok = self.tokenizer
        return [tok.bos_id] + self.encode_text(question), self.encode_text(answer) + [tok.eos_id], group

    def encode_codes(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """codes (n,) -> (rows (n, L) right-padded ids, prompt lengths (n,), sequence lengths (n,)).

        In a small space every problem is encoded once, into a table, and a batch is a
        lookup; a large space encodes each batch's problems as they come."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.space_size <= TABLE_LIMIT:
            if self._table is None:
                self._table = self._encode_many(np.arange(self.space_size))
            rows, plen, slen = self._table
            return rows[codes], plen[codes], slen[codes]
        return self._encode_many(codes)

    def _encode_many(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        L = self.longest_sequence()
        rows = np.full((len(codes), L), self.tokenizer.pad_id, dtype=np.int64)  # (n, L)
        plen = np.zeros(len(codes), dtype=np.int64)
        slen = np.zeros(len(codes), dtype=np.int64)
        for i, c in enumerate(codes):
            prompt, answer, _ = self.encode_problem(int(c))
            seq = prompt + answer
            rows[i, : len(seq)] = seq
            plen[i], slen[i] = len(prompt), len(seq)
        return rows, plen, slen

    def batch_of(self, codes: np.ndarray) -> Batch:
        """The Batch of the given problem codes (teacher forcing: whole sequences)."""
        return pack_rows(*self.encode_codes(codes))

    def batch(self, split: str, batch_size: int, rng: np.random.Generator) -> Batch:
        self.check_batch_args(split, batch_size, rng)
        return self.batch_of(self.split(split).sample(batch_size, rng))

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids)
