"""Tokenizers: round trips (hypothesis), unknown text, BPE merges worked out by hand,
JSON save/load and the errors bad input gets.

Byte ids in the BPE tests: byte b has id 4 + b, so " " = 36, "a" = 101, "b" = 102,
"c" = 103, "d" = 104, and the k-th merge makes id 260 + k.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.tokenizers import (
    GPT2_PATTERN,
    SPECIALS,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)
from companion.tokenizers.word import pretokenize

SP, A, B, C, D = 36, 101, 102, 103, 104  # byte ids of " ", "a", "b", "c", "d"

CORPUS = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps!\n"
    "Max ( 5 , 3 ) = 5\tand  min(2,9)=2;\n\n"
    "héllo wörld, naïve café: 你好世界 😀😀 🎉 — it's done.\n"
) * 20


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(CORPUS, vocab_size=340)


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.from_text(CORPUS)


@pytest.fixture(scope="module")
def word():
    return WordTokenizer.from_corpus(CORPUS)


@pytest.fixture(scope="module", params=["char", "word", "bpe"])
def any_tok(request, char, word, bpe):
    return {"char": char, "word": word, "bpe": bpe}[request.param]


# ---- shared contract ------------------------------------------------------------------


def test_specials_come_first(any_tok):
    assert SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert (any_tok.pad_id, any_tok.bos_id, any_tok.eos_id, any_tok.unk_id) == (0, 1, 2, 3)
    assert [any_tok.id_to_token(i) for i in range(4)] == list(SPECIALS)
    assert [any_tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3]


def test_bos_eos_and_skip_special(any_tok):
    text = "The dog sleeps!"
    ids = any_tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == 1 and ids[-1] == 2 and ids[1:-1] == any_tok.encode(text)
    assert any_tok.decode(ids + [0, 0]) == text  # <bos>, <eos>, <pad> stand for no text
    assert any_tok.decode([1] + any_tok.encode(text) + [2, 0], skip_special=False) == f"<bos>{text}<eos><pad>"


def test_text_cannot_forge_special_tokens(any_tok):
    ids = any_tok.encode("<bos><eos><pad>")
    assert not set(ids) & {0, 1, 2}


def test_decode_accepts_numpy_ids(any_tok):
    ids = any_tok.encode("The lazy dog.")
    assert any_tok.decode(np.array(ids, dtype=np.int64)) == "The lazy dog."


def test_id_token_maps_are_inverse(any_tok):
    for i in range(any_tok.vocab_size):
        is_bpe_bytes = isinstance(any_tok, BPETokenizer) and i >= 4
        tok = any_tok.token_bytes(i) if is_bpe_bytes else any_tok.id_to_token(i)
        j = any_tok.token_to_id(tok)
        # BPE: two merge paths may spell the same bytes; then the lower id answers.
        assert j == i or (isinstance(any_tok, BPETokenizer) and any_tok.token_bytes(j) == tok and j < i)


# ---- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"bytes", None, 5, ["a", "b"]])
def test_encode_rejects_non_str(any_tok, bad):
    with pytest.raises(TypeError, match="encode expects a str"):
        any_tok.encode(bad)


def test_decode_names_the_out_of_range_id(any_tok):
    V = any_tok.vocab_size
    with pytest.raises(ValueError, match=rf"token id {V} is outside the vocabulary \[0, {V}\)"):
        any_tok.decode([5, V, 6])
    with pytest.raises(ValueError, match=r"token id -1 is outside"):
        any_tok.decode([-1])
    with pytest.raises(ValueError, match=rf"token id {V + 7} is outside"):
        any_tok.id_to_token(V + 7)


def test_decode_rejects_non_integer_ids(any_tok):
    with pytest.raises(TypeError, match="token ids must be integers, got 1.5"):
        any_tok.decode([4, 1.5])
    with pytest.raises(TypeError, match="sequence of integer ids"):
        any_tok.decode("hello")


def test_token_to_id_unknown_token(any_tok):
    with pytest.raises(ValueError, match="'zzzqqq' is not in the vocabulary"):
        any_tok.token_to_id("zzzqqq")


# ---- character tokenizer -----------------------------------------------------------------


def test_char_vocab_is_sorted_alphabet():
    tok = CharTokenizer.from_text("86 - 11 =")
    assert tok.tokens == list(SPECIALS) + [" ", "-", "1", "6", "8", "="]
    assert tok.encode("86 - 11 =") == [8, 7, 4, 5, 4, 6, 6, 4, 9]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=sorted(set(CORPUS))))
def test_char_round_trip(char, s):
    assert char.decode(char.encode(s)) == s
    assert len(char.encode(s)) == len(s)


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_char_from_text_round_trips_its_text(s):
    tok = CharTokenizer.from_text(s)
    assert tok.decode(tok.encode(s)) == s
    assert tok.vocab_size == 4 + len(set(s))


def test_char_unknown_becomes_unk():
    tok = CharTokenizer("abc")
    assert tok.encode("abzc") == [4, 5, 3, 6]
    assert tok.decode(tok.encode("abzc")) == "ab<unk>c"  # lossy: 'z' is gone, and it shows
    assert tok.decode([3], skip_special=True) == "<unk>"


def test_char_rejects_bad_alphabet():
    with pytest.raises(ValueError, match="single characters, got 'ab'"):
        CharTokenizer(["a", "ab"])
    with pytest.raises(ValueError, match="contain 'a' twice"):
        CharTokenizer("aba")


# ---- word tokenizer -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_word_pretokenize_keeps_every_character(s):
    assert "".join(pretokenize(s)) == s


def test_word_vocab_by_frequency_then_alphabet():
    text = "b a b c b a"  # counts: " " 5, b 3, a 2, c 1
    assert WordTokenizer.from_corpus(text).words == [" ", "b", "a", "c"]
    assert WordTokenizer.from_corpus(text, min_count=2).words == [" ", "b", "a"]
    assert WordTokenizer.from_corpus(text, max_size=6).words == [" ", "b"]
    assert WordTokenizer.from_corpus("y x").words == [" ", "x", "y"]  # tie: alphabetical
    with pytest.raises(ValueError, match="max_size must be at least 4"):
        WordTokenizer.from_corpus(text, max_size=3)


def test_word_pieces():
    tok = WordTokenizer.from_corpus("Hello, world!  It's\tfine.\n")
    assert pretokenize("Hello, world!  It's") == ["Hello", ",", " ", "world", "!", " ", " ", "It", "'", "s"]
    assert tok.decode(tok.encode("world, Hello!\n\nfine")) == "world, Hello!\n\nfine"


WORDS = ["The", "dog", "fox", "5", "min", "café", "你好世界", "(", ")", ",", "=", ".", "!", "😀"]
SPACES = [" ", "\t", "\n"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(WORDS), st.text(alphabet=SPACES, min_size=1)), max_size=20),
       st.text(alphabet=SPACES))
def test_word_round_trip_with_any_spacing(word, pairs, lead):
    s = lead + "".join(w + gap for w, gap in pairs)  # known words separated by any whitespace
    ids = word.encode(s)
    assert word.unk_id not in ids
    assert word.decode(ids) == s


def test_word_unknown_becomes_unk(word):
    ids = word.encode("The zebra sleeps")
    assert ids.count(word.unk_id) == 1
    assert word.decode(ids) == "The <unk> sleeps"


def test_word_explicit_vocabulary_for_listops():
    tok = WordTokenizer(["Max", "(", "5", ")", "=", " "])
    assert tok.encode("Max(5) = 5") == [4, 5, 6, 7, 9, 8, 9, 6]
    with pytest.raises(ValueError, match=r"'\[MAX' is cut by the pre-tokeniser into \['\[', 'MAX'\]"):
        WordTokenizer(["[MAX"])
    with pytest.raises(ValueError, match="must not include the special token '<pad>'"):
        WordTokenizer(["<pad>"])


# ---- byte-level BPE: merges worked out by hand ----------------------------------------------


def test_bpe_wikipedia_example():
    # "aaabdaaabac": pairs aa 4 (overlapping in "aaa"), ab 2, the rest 1 -> Z = aa.
    # "ZabdZabac": Za 2 and ab 2 tie; (a, b) = (101, 102) < (Z, a) = (260, 101) -> Y = ab.
    # "ZYdZYac": ZY 2 -> X = ZY.  "XdXac": every pair once, below min_frequency 2: stop.
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=1000)
    assert tok.merges == [(A, A), (A, B), (260, 261)]
    assert [tok.id_to_token(i) for i in (260, 261, 262)] == ["aa", "ab", "aaab"]
    assert tok.vocab_size == 263
    assert tok.encode("aaabdaaabac") == [262, D, 262, A, C]  # X d X a c
    assert tok.encode("aaa") == [260, A]  # left to right: (aa)a, not a(aa)
    assert tok.encode("abaaab") == [261, 262]
    assert tok.encode("aab") == [260, B]  # aa was learned first, so it wins over ab


def test_bpe_ties_pick_the_smallest_pair():
    # With min_frequency=1, continue "XdXac" (X = 262): pairs Xd (262, 104), dX (104, 262),
    # Xa (262, 101), ac (101, 103) all occur once; the smallest is (101, 103) = "ac" -> 263.
    # "XdX263": smallest of (262, 104), (104, 262), (262, 263) is (104, 262) -> 264 = "daaab".
    # "X 264 263": (262, 264) -> 265;  "265 263": (265, 263) -> 266, the whole string.
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=1000, min_frequency=1)
    assert tok.merges == [(A, A), (A, B), (260, 261), (A, C), (D, 262), (262, 264), (265, 263)]
    assert tok.encode("aaabdaaabac") == [266]
    # The rule looks at ids, not at where a pair sits in the text: (a, b) wins in both.
    for text in ("abcd", "cdab", "bcdab"):
        first = BPETokenizer.train(text, vocab_size=261, pattern=None, min_frequency=1).merges
        assert first == [(A, B)], text
    assert BPETokenizer.train("ba ab", 261, pattern=None, min_frequency=1).merges == [(SP, A)]


def test_bpe_pretokenization_keeps_merges_inside_words():
    # Raw bytes "x. x. x." (x = 124, "." = 50): x. 3, ". " 2, " x" 2 -> 260 = "x.", a token
    # that glues a word to its punctuation; "260 260 260" with spaces: (" ", 260) 2 and
    # (260, " ") 2 tie, (36, 260) is smaller -> 261 = " x."; then every pair is single.
    raw = BPETokenizer.train("x. x. x.", vocab_size=1000, pattern=None)
    assert raw.merges == [(124, 50), (SP, 260)]
    assert raw.id_to_token(260) == "x."
    # GPT-2 chunks: "x", ".", " x", ".", " x", "." -> only (" ", x) occurs twice -> " x".
    gpt = BPETokenizer.train("x. x. x.", vocab_size=1000)
    assert gpt.merges == [(SP, 124)]
    assert gpt.encode("x. x. x.") == [124, 50, 260, 50, 260, 50]


def test_bpe_more_merges_compress_more(bpe):
    ids = bpe.encode(CORPUS)
    assert bpe.vocab_size == 340 and len(bpe.merges) == 80
    assert len(ids) < len(CORPUS.encode("utf-8")) / 2  # merges really compress
    fewer = BPETokenizer(bpe.merges[:40], bpe.pattern).encode(CORPUS)
    assert len(ids) < len(fewer)


def naive_bpe(text: str, vocab_size: int, pattern: str | None):
    """The textbook algorithm, with a full recount of every pair before each merge: slow,
    but short enough to check by eye. Returns the merges and the training text's tokens."""
    chunks = re.findall(pattern, text) if pattern is not None else [text]
    words = [[4 + b for b in chunk.encode("utf-8")] for chunk in chunks]
    merges = []
    for new_id in range(260, vocab_size):
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts or max(counts.values()) < 2:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest
        merges.append(best)
        for k, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if w[i:i + 2] == list(best):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = out
    return merges, [i for w in words for i in w]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab c.\né", max_size=60), st.sampled_from([GPT2_PATTERN, None]))
def test_bpe_training_agrees_with_naive_recount(text, pattern):
    # The incremental pair counts (index + heap) must give exactly the naive merges, and
    # encode must cut the training text exactly as training did.
    merges, tokens = naive_bpe(text, 300, pattern)
    tok = BPETokenizer.train(text, 300, pattern=pattern)
    assert tok.merges == merges
    assert tok.encode(text) == tokens


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_gpt2_pattern_covers_every_character(s):
    assert "".join(re.findall(GPT2_PATTERN, s)) == s


EMOJI = ["😀", "🎉", "👩‍👩‍👧", "🇫🇷", "é", "ñ", "你好", " ", "\n", "\t", "\x00"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.lists(st.sampled_from(EMOJI + list("ab .")), max_size=30).map("".join)))
def test_bpe_round_trip_any_unicode(bpe, s):
    ids = bpe.encode(s)
    assert bpe.decode(ids) == s
    assert all(4 <= i < bpe.vocab_size for i in ids)  # no specials, no <unk>, ever


def test_bpe_learns_multibyte_tokens(bpe):
    assert bpe.token_to_id("😀") >= 260  # 4 bytes merged into one token
    assert bpe.encode("😀") == [bpe.token_to_id("😀")]


def test_bpe_decode_of_a_split_character_replaces_it(bpe):
    first_byte = 4 + "é".encode("utf-8")[0]
    assert bpe.decode([first_byte]) == "\ufffd"
    assert bpe.id_to_token(first_byte) == "\\xc3"


def test_bpe_lone_surrogate_is_refused(bpe):
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        bpe.encode("a\ud800")


def test_bpe_bad_training_arguments():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 260"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(TypeError, match="train expects a str"):
        BPETokenizer.train(b"abc", vocab_size=300)


# ---- save / load -----------------------------------------------------------------------------


def test_save_load_round_trip(any_tok, tmp_path):
    path = tmp_path / "tok.json"
    any_tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))  # plain JSON
    assert d["type"] == any_tok.type_name and d["specials"] == list(SPECIALS)
    for loaded in (type(any_tok).load(path), load_tokenizer(path), tokenizer_from_dict(d)):
        assert type(loaded) is type(any_tok) and loaded == any_tok
        assert loaded.vocab_size == any_tok.vocab_size
        assert loaded.encode(CORPUS) == any_tok.encode(CORPUS)
        assert loaded.decode(range(loaded.vocab_size)) == any_tok.decode(range(any_tok.vocab_size))
    assert list(tmp_path.iterdir()) == [path]  # the atomic write left no temporary file


def test_truncated_file_fails(any_tok, tmp_path):
    path = tmp_path / "tok.json"
    any_tok.save(path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "missing.json")


def _tampered(tok, tmp_path, edit):
    d = tok.to_dict()
    edit(d)
    path = tmp_path / "tok.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(type="sentencepiece"), "unknown tokenizer type 'sentencepiece'"),
    (lambda d: d.pop("type"), "missing the field 'type'"),
    (lambda d: d.update(version=99), "unsupported tokenizer format version 99"),
    (lambda d: d.update(specials=["<pad>", "<eos>", "<bos>", "<unk>"]), "special tokens must be"),
])
def test_tampered_header_fails(any_tok, tmp_path, edit, message):
    path = _tampered(any_tok, tmp_path, edit)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_tokenizer(path)


def test_tampered_body_fails(char, word, bpe, tmp_path):
    cases = [
        (char, lambda d: d.pop("chars"), "missing the field 'chars'"),
        (char, lambda d: d["chars"].append(d["chars"][0]), "twice"),
        (char, lambda d: d.update(chars="abc"), "field 'chars' must be a list"),
        (word, lambda d: d["tokens"].append("two words"), "cut by the pre-tokeniser"),
        (bpe, lambda d: d["merges"][0].__setitem__(1, 9999), "9999 is not the id of a byte or an earlier merge"),
        (bpe, lambda d: d["merges"].append(d["merges"][0]), "repeats merge 0"),
        (bpe, lambda d: d["merges"][5].__setitem__(0, 2), "is not the id of a byte or an earlier merge"),
        (bpe, lambda d: d.update(pattern="(unclosed"), "is not a valid regular expression"),
        (bpe, lambda d: d.pop("pattern"), "missing the field 'pattern'"),
    ]
    for tok, edit, message in cases:
        path = _tampered(tok, tmp_path, edit)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_tokenizer(path)


def test_loading_the_wrong_class_fails(bpe, tmp_path):
    bpe.save(tmp_path / "bpe.json")
    with pytest.raises(ValueError, match="expected a tokenizer of type 'char', got type 'bpe'"):
        CharTokenizer.load(tmp_path / "bpe.json")
