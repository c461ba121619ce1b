"""Reference use: an exercise answered with the companion's own implementation scores 0.

The course ships the companion package with every bundle (the chapters need it), so the answer
to "write attention_forward" is one import away. For each exercise, ``REFERENCES`` names the
companion functions that implement it. A learner's function is flagged when

- it *is* one of them, or a copy sharing its code object, a ``functools.partial`` of one, a
  bound method of one, or a wrapper whose ``__wrapped__`` chain leads to one; or
- while it runs, one of them runs (it calls the reference, directly or through other companion
  code): a profiler hook watches for their code objects.

What it cannot catch (book/instructors.md says so): source copied from the public repository
into the learner's file, and code that removes the profiler hook or otherwise tampers with the
worker it runs in. The worker only *reports* what it saw; the parent decides.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading

# exercise id -> the companion functions ("module:qualname") whose use answers it
REFERENCES: dict[str, tuple[str, ...]] = {
    "1.1": ("companion.tokenizers.bpe:merge",),
    "1.2": ("companion.tokenizers.bpe:BPETokenizer.train",),
    "1.3": ("companion.tokenizers.bpe:BPETokenizer._encode_chunk",),
    "2.1": ("companion.embedding:embedding_backward",),
    "2.2": ("companion.positions:sinusoidal_table",),
    "2.3": ("companion.positions:rope_forward",),
    "3.1": ("companion.attention:causal_mask",),
    "3.2": ("companion.attention:attention_forward",),
    "3.3": ("companion.attention:attention_backward",),
    "4.1": ("companion.norms:layernorm_backward",),
    "4.2": ("companion.norms:rmsnorm_forward",),
    "4.3": ("companion.norms:rmsnorm_backward",),
    "4.4": (),  # added_variance: arithmetic the chapter derives; no companion function computes it
    "5.1": ("companion.feedforward:gelu_forward",),
    "5.2": ("companion.feedforward:swiglu_forward",),
    "5.3": ("companion.feedforward:swiglu_backward",),
    "6.1": ("companion.generate:next_token_probs",),
    "6.2": ("companion.generate:pick_next",),
    "6.3": ("companion.generate:generate", "companion.generate:generate_batch"),
    "7.1": (),  # make_targets: the companion slices inline; nothing to import
    "7.2": ("companion.loss:cross_entropy_forward",),
    "7.3": ("companion.loss:cross_entropy_backward",),
    "8.1": ("companion.linear:linear_backward",),
    "8.2": ("companion.block:Block.backward",),
    "8.3": ("companion.gradcheck:numeric_gradient",),
    "9.1": ("companion.optim:Adam.step",),  # AdamW inherits it
    "9.2": ("companion.optim:lr_schedule",),
    "9.3": ("companion.optim:clip_grad_norm",),
    "10.1": ("companion.data:random_windows",),
    "10.2": ("companion.train:train",),
    "11.1": ("companion.accounting:parameter_counts",),
    "11.2": ("companion.accounting:forward_flops",),
    "11.3": (),  # bits_per_character: a sum over the loss the learner already wrote (7.2); nothing to import
    "11.4": ("companion.accounting:activation_bytes",),
    "11.5": ("companion.data_parallel:share_forward_backward",),  # the loss (7.2, 7.3) may be reused
    "12.1": ("companion.flash_attention:flash_attention_forward",),
    "12.2": ("companion.accounting:parameter_counts",),
    "12.3": ("companion.accounting:kv_cache_bytes",),
    "13.1": ("companion.interpret:induction_scores",),
    "13.2": (),  # zero_head_rows: the companion zeroes the rows inside interpret.ablate; nothing to import
}


def resolve_all(exercise: str) -> dict[str, object]:
    """name -> function, for the exercise's references (importing their modules)."""
    from .codec import resolve

    found = {}
    for name in REFERENCES.get(exercise, ()):
        fn = resolve(name, allow_import=True)
        found[name] = getattr(fn, "__func__", fn)
    return found


def identity_use(fn, references: dict[str, object]) -> str | None:
    """The reference ``fn`` is (or wraps), or None."""
    seen = 0
    while fn is not None and seen < 20:
        seen += 1
        target = getattr(fn, "__func__", fn)  # a bound method
        for name, ref in references.items():
            if target is ref or getattr(target, "__code__", None) is getattr(ref, "__code__", False):
                return name
        if isinstance(fn, functools.partial):
            fn = fn.func
        else:
            fn = getattr(fn, "__wrapped__", None)
    return None


class CallWatch:
    """Records whether any of the references' code objects ran while it was on."""

    def __init__(self, references: dict[str, object]):
        self.codes = {getattr(ref, "__code__"): name for name, ref in references.items() if hasattr(ref, "__code__")}
        self.hits: list[str] = []

    def _profile(self, frame, event, arg):
        if event == "call":
            name = self.codes.get(frame.f_code)
            if name is not None and name not in self.hits:
                self.hits.append(name)

    @contextlib.contextmanager
    def watching(self):
        if not self.codes:
            yield self
            return
        previous, previous_threads = sys.getprofile(), threading.getprofile()
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)
        try:
            yield self
        finally:
            sys.setprofile(previous)
            threading.setprofile(previous_threads)


def message(exercise: str, function: str, used: list[str]) -> str:
    names = ", ".join(n.replace(":", ".") for n in used)
    return (f"your {function} uses the companion's implementation ({names}): exercise {exercise} asks for "
            f"your own code, so it scores 0 (the companion is there to compare with, not to call)")
