"""Graded tests, chapter 1: BPE's merge step, training, and encoder.

The references are written here, independently of any solution; the buggy variants are the
mistakes learners make, so a failure can name them.
"""

import numpy as np
import pytest

from companion.grading.adapter import expect, expect_close

CHAPTER = "ch01"
pytestmark = pytest.mark.ch01
TEXT = "the lowest newest widest low lower lows; the newer the better! " * 3 + "naïve café"


def ref_merge(ids, pair, new_id, overlap=False, drop_last=False):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 1 if overlap else 2
        else:
            if not (drop_last and i == len(ids) - 1):
                out.append(ids[i])
            i += 1
    return out


def ref_train(text, num_merges, first_id=256, recount=True):
    ids = list(text.encode("utf-8"))
    original = list(ids)
    merges = []
    for n in range(num_merges):
        source = ids if recount else original
        counts = {}
        for pair in zip(source, source[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # most frequent; tie: smallest pair
        ids = ref_merge(ids, pair, first_id + n)
        merges.append((pair, first_id + n))
    return merges


def ref_encode(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges:
        ids = ref_merge(ids, pair, new_id)
    return ids


def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges:
        vocab[new_id] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8")


def as_list(value, what):
    expect(isinstance(value, (list, tuple, np.ndarray)), f"{what} should be a list of ints, got {type(value).__name__}")
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        expect(False, f"{what} should be a list of ints, got {str(value)[:80]}")


def merges_of(got, what):
    """[[a, b, new_id], ...] from a list of ((a, b), new_id); a message if it is not one."""
    try:
        return [[int(a), int(b), int(n)] for (a, b), n in got]
    except (TypeError, ValueError):
        expect(False, f"{what} should return a list of ((a, b), new_id), got {got!r:.200}")


# ------------------------------------------------------------------ 1.1 merge


@pytest.mark.exercise("1.1", "merge")
@pytest.mark.points(2)
def test_merge_cases(impl):
    cases = [([1, 2, 3, 1, 2], (1, 2)), ([5, 5, 5], (5, 5)), ([5, 5, 5, 5, 7], (5, 5)), ([3, 1, 2], (1, 2)),
             ([], (1, 2)), ([4], (4, 4))]
    for ids, pair in cases:
        got = as_list(impl.merge(list(ids), pair, 99), f"merge({ids}, {pair}, 99)")
        bugs = {"overlapping occurrences were merged (after a match, skip both ids)": ref_merge(ids, pair, 99, overlap=True),
                "the last id is dropped when it is not part of a pair": ref_merge(ids, pair, 99, drop_last=True)}
        expect_close(got, ref_merge(ids, pair, 99), f"merge({ids}, {pair}, 99)", bugs, rtol=0, atol=0)


@pytest.mark.exercise("1.1", "merge")
@pytest.mark.points(1)
def test_merge_random(impl):
    rng = np.random.default_rng(0)
    for _ in range(30):
        ids = rng.integers(0, 4, size=int(rng.integers(0, 20))).tolist()
        pair = tuple(int(a) for a in rng.integers(0, 4, size=2))
        original = list(ids)
        got = as_list(impl.merge(ids, pair, 99), "merge's result")
        expect(ids == original, "merge must not change the list it is given: build a new one")
        expect_close(got, ref_merge(ids, pair, 99), f"merge({ids}, {pair}, 99)",
                     {"overlapping occurrences were merged": ref_merge(ids, pair, 99, overlap=True)}, rtol=0, atol=0)


# ------------------------------------------------------------------ 1.2 train_bpe


@pytest.mark.exercise("1.2", "train_bpe")
@pytest.mark.points(2)
def test_train_bpe_merges(impl):
    got = impl.train_bpe(TEXT, 20)
    want = ref_train(TEXT, 20)
    expect(isinstance(got, list) and len(got) == len(want), f"train_bpe(text, 20) should return a list of 20 merges, got {got!r:.200}")
    got_flat = merges_of(got, "train_bpe(text, 20)")
    want_flat = [[a, b, n] for (a, b), n in want]
    bugs = {"the new ids do not start at 256 (ids 0-255 are the bytes)": [[a, b, n + 1] for (a, b), n in ref_train(TEXT, 20, 255)],
            "the pairs are counted on the original bytes every time, not on the ids after the merges so far":
                [[a, b, n] for (a, b), n in ref_train(TEXT, 20, recount=False)]}
    expect_close(got_flat, want_flat, "the merges learned from the test text", bugs, rtol=0, atol=0,
                 hint="each merge is ((a, b), new_id); on a tie take the smallest pair (a first, then b)")


@pytest.mark.exercise("1.2", "train_bpe")
@pytest.mark.points(1)
def test_train_bpe_short_text(impl):
    got = impl.train_bpe("ab", 5)
    expect(isinstance(got, list), f"train_bpe('ab', 5) should return a list of merges, got {got!r:.200}")
    expect(merges_of(got, "train_bpe('ab', 5)") == [[97, 98, 256]],
           f"train_bpe('ab', 5) should learn the one merge ((97, 98), 256) and stop, got {got!r}")


# ------------------------------------------------------------------ 1.3 encode


@pytest.mark.exercise("1.3", "encode")
@pytest.mark.points(2)
def test_encode_matches_reference(impl):
    merges = ref_train(TEXT, 30)
    for text in ("the newest lows", TEXT, "café naïve!", ""):
        got = as_list(impl.encode(text, merges), f"encode({text!r:.30})")
        bugs = {"the merges are applied in reverse order (apply them in the order learned)": ref_encode(text, merges[::-1]),
                "only the first merge is applied": ref_encode(text, merges[:1])}
        expect_close(got, ref_encode(text, merges), f"encode({text!r:.30})", bugs, rtol=0, atol=0)


@pytest.mark.exercise("1.3", "encode")
@pytest.mark.points(1)
def test_encode_round_trip(impl):
    merges = ref_train(TEXT, 30)
    text = "lower, newer, widest: the café"
    ids = as_list(impl.encode(text, merges), "encode's result")
    expect(len(ids) < len(text.encode("utf-8")), "encode should make the text shorter than its bytes (are merges applied?)")
    expect(decode(ids, merges) == text, "decoding your ids does not give the text back")
