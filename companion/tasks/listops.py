"""ListOps: one operation over a short list of numbers, answered in one token.

    Max ( 5 3 9 ) = 9        First ( 2 8 4 ) = 2        Min ( 7 1 6 ) = 1

Five operations: First, Second, Last (copy the argument at a position), Max and Min
(compare them all). Every symbol is one word token, so with values 0-9 the vocabulary is
4 specials + 5 operations + "(", ")", "=" + 10 numbers = 22 tokens, and a whole problem
is ``<bos> Op ( a b c ) = answer <eos>``: n_args + 7 tokens.

The problem space is every (operation, arguments) tuple: 5 * (max_value + 1) ** n_args
problems (5,000 for 3 arguments 0-9, 5,000,000 for 0-99). A problem's code is that tuple
read as a number in base (max_value + 1), the operation first; base.py splits the codes
into train / val / test so that no test problem is ever trained on.

Why it is a good first task: the copy operations need attention to look *at a position*,
Max and Min need it to compare *contents*; per-operation accuracy shows which was learned.
"""

from __future__ import annotations

from ..tokenizers import WordTokenizer
from .base import ProblemTask

OPS = ("First", "Second", "Last", "Max", "Min")


def apply_op(op: str, args: list[int]) -> int:
    if op == "First":
        return args[0]
    if op == "Second":
        return args[1]
    if op == "Last":
        return args[-1]
    if op == "Max":
        return max(args)
    if op == "Min":
        return min(args)
    raise ValueError(f"unknown ListOps operation {op!r}; operations are {OPS}")


class ListOpsTask(ProblemTask):
    name = "listops"

    def __init__(self, seed: int = 0, n_args: int = 3, max_value: int = 9, max_eval: int = 5000):
        if not isinstance(n_args, int) or not 2 <= n_args <= 16:
            raise ValueError(f"n_args must be an integer from 2 to 16 (Second needs two), got {n_args!r}")
        if not isinstance(max_value, int) or not 1 <= max_value <= 999:
            raise ValueError(f"max_value must be an integer from 1 to 999, got {max_value!r}")
        self.n_args, self.max_value = n_args, max_value
        self.base = max_value + 1
        words = list(OPS) + ["(", ")", "="] + [str(v) for v in range(self.base)]
        self.tokenizer = WordTokenizer(words)
        self._ids = {w: self.tokenizer.token_to_id(w) for w in words}
        super().__init__(seed, max_eval)

    @property
    def space_size(self) -> int:
        return len(OPS) * self.base ** self.n_args

    def problem(self, code: int) -> tuple[str, str, str]:
        if not 0 <= code < self.space_size:
            raise ValueError(f"problem code {code} is outside [0, {self.space_size})")
        args = []
        for _ in range(self.n_args):  # digits of the code in base (max_value + 1), last first
            code, v = divmod(code, self.base)
            args.append(v)
        op = OPS[code]
        args.reverse()
        question = f"{op} ( {' '.join(map(str, args))} ) ="
        return question, str(apply_op(op, args)), op

    def encode_text(self, text: str) -> list[int]:
        # Symbols are separated by single spaces, which carry no information: we cut on them
        # instead of spending a token on each (the word tokenizer would keep them).
        try:
            return [self._ids[w] for w in text.split()]
        except KeyError as err:
            raise ValueError(f"{err.args[0]!r} is not a ListOps symbol (operations {OPS}, "
                             f"'(', ')', '=', numbers 0-{self.max_value})") from None

    def decode(self, ids) -> str:
        """ids -> symbols separated by spaces (specials dropped)."""
        return " ".join(self.tokenizer.decode([i]) for i in ids if self.tokenizer.decode([i]))

    def longest_sequence(self) -> int:
        return self.n_args + 7  # <bos> Op ( a1 .. an ) = answer <eos>

    @property
    def groups(self) -> tuple[str, ...]:
        return OPS

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "n_args": self.n_args, "max_value": self.max_value,
                "max_eval": self.max_eval}
