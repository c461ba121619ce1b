"""Evaluation: how well does a model do on problems it never trained on?

Three numbers, from the weakest claim to the strongest:

- ``loss``: the mean cross-entropy of the answer tokens, with the true answer fed in
  (teacher forcing), exactly the training objective.
- ``token_accuracy``: with teacher forcing, the fraction of answer tokens (and <eos>)
  whose argmax is right. It can be high while generation fails: each token is judged
  with the *true* earlier tokens in view.
- ``exact_match``: the answer is *generated*, greedily, token by token with the KV cache,
  from the question alone, and counts only if it is right in full and ends with <eos>.
  This is what "the model can add" means, and ``per_op_accuracy`` splits it by operation.

Prompts of equal length go through generation as one batch, so a test set of thousands
of problems costs a few batched forward passes per answer token.

For the text task there is no answer to match: ``loss``, ``token_accuracy`` and
``perplexity`` (exp of the loss) are measured over consecutive windows of the split, and
``bits_per_char``: the total negative log-likelihood of the scored tokens, divided by the
number of characters they spell and by ln 2. Unlike the loss per token, it does not depend
on the tokenizer, so a character model and a BPE model can be compared on it. A BPE model
also gets ``bits_per_byte`` (the same total over the UTF-8 bytes).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .backend import to_numpy, xp
from .data import consecutive_windows, full_batch
from .dropout import without_dropout
from .generate import generate_batch
from .loss import cross_entropy_forward


def check_fits(model, task) -> None:
    """The model must know every token of the task and read its longest sequence."""
    c = model.config
    if c.vocab_size < task.vocab_size:
        raise ValueError(f"the model's vocab_size {c.vocab_size} is smaller than the task's vocabulary "
                         f"{task.vocab_size}; build the model with vocab_size={task.vocab_size}")
    if c.block_size < task.block_size:
        raise ValueError(f"the model's block_size {c.block_size} is shorter than the task's sequences "
                         f"({task.block_size} tokens); build the model with block_size >= {task.block_size}")


def teacher_forced(model, batch) -> tuple[float, float, float, np.ndarray]:
    """-> (sum of masked losses, number of scored tokens, correct tokens, argmax (B, T))."""
    logits = model.forward(xp.asarray(batch.idx))  # (B, T, V)
    loss, _ = cross_entropy_forward(logits, xp.asarray(batch.targets), xp.asarray(batch.loss_mask))
    count = float(batch.loss_mask.sum())
    pred = to_numpy(logits.argmax(axis=-1))  # (B, T)
    correct = float(((pred == batch.targets) * batch.loss_mask).sum())
    return loss * count, count, correct, pred


@without_dropout  # scores the model as it will be used: no dropout, whatever mode it is in
def evaluate(model, task, split: str = "test", batch_size: int = 1000, max_problems: int | None = None) -> dict:
    """Score ``model`` on a split of ``task``; -> dict of metrics (see the module docstring).

    max_problems limits how many problems (for text: windows) are used, the first ones of
    the split's fixed order, so repeated evaluations are comparable."""
    check_fits(model, task)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_problems is not None and (not isinstance(max_problems, (int, np.integer)) or max_problems < 1):
        raise ValueError(f"max_problems must be a positive integer or None, got {max_problems!r}")
    if not getattr(task, "answer_based", False):
        return evaluate_text(model, task, split, batch_size, max_problems)
    return evaluate_problems(model, task, split, batch_size, max_problems)


def evaluate_text(model, task, split: str, batch_size: int, max_problems: int | None) -> dict:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    windows = consecutive_windows(getattr(task, split), task.block_size, max_problems or 200)  # (N, T + 1)
    total = count = correct = 0.0
    for i in range(0, len(windows), batch_size):
        s, n, c, _ = teacher_forced(model, full_batch(windows[i : i + batch_size]))
        total, count, correct = total + s, count + n, correct + c
    loss = total / count
    out = {"loss": loss, "token_accuracy": correct / count, "perplexity": math.exp(min(loss, 700.0))}
    if task.tokenizer.type_name == "char":  # one token, one character
        out["bits_per_char"] = loss / math.log(2)
    else:  # the windows overlap by one token, so their targets together are one stretch of the text
        text = task.decode(windows[:, 1:].reshape(-1).tolist())
        out["bits_per_char"] = total / len(text) / math.log(2)
        out["bits_per_byte"] = total / len(text.encode("utf-8")) / math.log(2)
    out["n"] = int(len(windows))
    return out


def evaluate_problems(model, task, split: str, batch_size: int, max_problems: int | None) -> dict:
    codes = task.split(split).codes
    if codes is None:
        raise ValueError(f"the {split} split is too large to evaluate whole; evaluate 'val' or 'test'")
    codes = codes[:max_problems] if max_problems else codes
    # teacher-forced loss and token accuracy
    total = count = correct = 0.0
    for i in range(0, len(codes), batch_size):
        s, n, c, _ = teacher_forced(model, task.batch_of(codes[i : i + batch_size]))
        total, count, correct = total + s, count + n, correct + c
    # exact match: generate each answer from its question, prompts grouped by length
    eos = task.tokenizer.eos_id
    by_length = defaultdict(list)
    for c in codes:
        prompt, answer, group = task.encode_problem(int(c))
        by_length[len(prompt)].append((prompt, answer, group))
    right, seen = defaultdict(int), defaultdict(int)
    examples = []
    for T, items in sorted(by_length.items()):
        longest = max(len(a) for _, a, _ in items)
        max_new = min(longest, model.config.block_size - T + 1)  # the last token is never fed back
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            prompts = np.array([p for p, _, _ in chunk], dtype=np.int64)  # (B, T)
            out = generate_batch(model, prompts, max_new, greedy=True, eos_id=eos)  # (B, max_new)
            for (prompt, answer, group), row in zip(chunk, out):
                got = list(row[: len(answer)])
                ok = got == answer  # answer ends with <eos>, so the model must stop right there
                right[group] += ok
                seen[group] += 1
                if len(examples) < 5 and not ok:
                    examples.append({"question": task.decode(prompt), "answer": task.decode(answer),
                                     "got": task.decode([t for t in row if t != eos])})
    n = sum(seen.values())
    result = {
        "exact_match": sum(right.values()) / n,
        "token_accuracy": correct / count,
        "loss": total / count,
        "n": n,
        "per_op_accuracy": {g: right[g] / seen[g] for g in task.groups if seen[g]},
        "mistakes": examples,
    }
    return result
