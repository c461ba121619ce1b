"""Addition and subtraction: ``a+b=`` and ``a-b=``, answered digit by digit.

    37+48=58        05-12=-7        99+99=891        (the defaults: pad=True, reverse=True)

Operands have up to ``digits`` digits (0 .. 10**digits - 1); an answer can be negative.
Tokens are characters ("0"-"9", "+", "-", "="), so the model must *generate* a multi-token
answer, one digit at a time, and is scored by exact match: every digit right and then
``<eos>``. (An earlier arithmetic model's decoder printed "1" for every input: an answer
checked token by token with teacher forcing can look fine while free-running generation
fails, which is why evaluation here generates.)

Two choices of format make the task far easier for a small model (Lee et al. 2023,
"Teaching Arithmetic to Small Transformers"), and both are on by default:

- ``pad=True`` writes both operands with leading zeros to ``digits`` digits (``05-12=``),
  so each digit sits at the same position in every problem: with learned absolute
  positions, the model learns each alignment once instead of once per operand length.
- ``reverse=True`` writes the answer's digits least significant first (37+48=85 is
  written ``37+48=58``; a minus sign stays in front: ``05-12=-7``). That is the order in
  which a person computes the digits: each needs only the carry (or borrow) of the digit
  before it, which the model has just written. In the usual order the very first digit
  already depends on every carry.

``pad=False, reverse=False`` gives the plain ``5-12=-7``; it is learned too, only slower.

Problem space: every (op, a, b), 2 * 10**(2 * digits) problems for ops "+-" (20,000 for two
digits); code = op_index * 10**(2d) + a * 10**d + b. base.py holds 10% of them out for test.
"""

from __future__ import annotations

from ..tokenizers import CharTokenizer
from .base import ProblemTask

OPERATIONS = "+-"


class AdditionTask(ProblemTask):
    name = "addition"

    def __init__(self, seed: int = 0, digits: int = 2, ops: str = "+-", reverse: bool = True,
                 pad: bool = True, max_eval: int = 5000):
        if not isinstance(digits, int) or not 1 <= digits <= 9:
            raise ValueError(f"digits must be an integer from 1 to 9, got {digits!r}")
        if not isinstance(ops, str) or not ops or any(c not in OPERATIONS for c in ops) or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be a non-empty string of distinct characters from {OPERATIONS!r}, got {ops!r}")
        self.digits, self.ops, self.reverse, self.pad = digits, ops, bool(reverse), bool(pad)
        self.n = 10 ** digits  # operands are 0 .. n - 1
        self.tokenizer = CharTokenizer(list("0123456789+-="))
        super().__init__(seed, max_eval)

    @property
    def space_size(self) -> int:
        return len(self.ops) * self.n * self.n

    def problem(self, code: int) -> tuple[str, str, str]:
        if not 0 <= code < self.space_size:
            raise ValueError(f"problem code {code} is outside [0, {self.space_size})")
        k, rest = divmod(code, self.n * self.n)
        a, b = divmod(rest, self.n)
        op = self.ops[k]
        result = a + b if op == "+" else a - b
        answer = str(abs(result))
        if self.reverse:
            answer = answer[::-1]
        if result < 0:
            answer = "-" + answer
        if self.pad:  # fixed-width operands: every digit keeps its position in every problem
            return f"{a:0{self.digits}d}{op}{b:0{self.digits}d}=", answer, op
        return f"{a}{op}{b}=", answer, op

    def encode_text(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text)
        if self.tokenizer.unk_id in ids:
            raise ValueError(f"{text!r} has a character that is not a digit, '+', '-' or '='")
        return ids

    def longest_sequence(self) -> int:
        # <bos> a op b = answer <eos>; an answer has at most digits + 1 characters ("198", "-98")
        return 1 + (2 * self.digits + 2) + (self.digits + 1) + 1

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.ops)

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "digits": self.digits, "ops": self.ops,
                "reverse": self.reverse, "pad": self.pad, "max_eval": self.max_eval}
