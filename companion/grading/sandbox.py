"""The trusted side of grading: send calls to workers, enforce the budgets, judge the replies.

A ``Grading`` lives for one pytest session. Every graded call ``impl.f(...)`` of exercise 3.2
goes to the worker of (the learner's file, "3.2"): a fresh process (worker.py), started in its
own session and process group, with CPU-time, memory and file-size limits. It imports the
learner's file and runs the calls of that exercise's tests; the next exercise gets a new one.

The parent enforces, per exercise, a wall-clock budget over all its calls (``time_limit`` s):
when it runs out, the worker's whole process group is killed (SIGKILL: nothing can ignore it,
and children left behind die with it) and the exercise's remaining tests fail at once with the
same message, so a learner's infinite loop costs one budget, not one per test. A file that
cannot be imported (an exception, ``sys.exit``, ``os._exit``, a loop at import) fails every
exercise of that file with what happened, and costs one import.

What the parent believes of a worker: nothing but the bytes of its replies, decoded by codec.py
(no pickle, sizes checked). A worker that exits, is killed, sends garbage or nothing at all
fails the test that was running with a message that says which; the verdict on a value is
always the test's own comparison, made here.
"""


from __future__ import annotations

import time
from pathlib import Path

from . import codec
from .workers import _LIVE_WORKERS, POSIX, GraderFault, Limits, Missing, Verdict, Worker


class Grading:
    """Workers and budgets for one grading run over a folder of learner files."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits.from_env()
        self.current: tuple | None = None  # (key, Worker)
        self.spare: Worker | None = None
        self.spent: dict[tuple, float] = {}
        self.dead: dict[tuple, str] = {}  # exercise key -> why its remaining tests fail at once
        self.bad_files: dict[str, str] = {}
        self.faults: list[str] = []

    # workers -----------------------------------------------------------------

    def _spawn(self) -> Worker:
        if not POSIX:  # not reached from the graded tests: on Windows adapter.py imports the files here
            message = "grading workers need POSIX pipes, process groups and resource limits, which this OS lacks"
            self.faults.append(message)
            raise GraderFault(message)
        try:
            w = Worker(self.limits)
        except OSError as err:  # the interpreter or the folder is not usable (by --worker-user?)
            message = f"a grading worker could not start: {type(err).__name__}: {err}"
            self.faults.append(message)
            raise GraderFault(message) from None
        _LIVE_WORKERS.add(w.proc)
        return w

    def _retire(self, w: Worker) -> None:
        w.kill()
        _LIVE_WORKERS.discard(w.proc)

    def close(self) -> None:
        if self.current is not None:
            self._retire(self.current[1])
            self.current = None
        if self.spare is not None:
            self._retire(self.spare)
            self.spare = None

    def _worker_for(self, key: tuple, path: str, exercise: str) -> Worker:
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        if self.current is not None:
            self._retire(self.current[1])
            self.current = None
        w, self.spare = (self.spare or self._spawn()), None
        try:
            w.wait_ready()
        except GraderFault as err:
            _LIVE_WORKERS.discard(w.proc)
            self.faults.append(str(err))
            raise
        self.spare = self._spawn()  # starts (imports NumPy) while this exercise runs
        try:
            # the import has a limit of its own, not charged to the exercise: a file that is slow to
            # import (a notebook cell that trains at top level) costs each exercise nothing but
            # the import, and one that never finishes fails the whole file, once
            reply = self._exchange(w, ("import", path), {"op": "load", "path": path, "exercise": exercise}, [], {})
            self.spent.pop(("import", path), None)
        except Verdict as err:
            self.bad_files[path] = f"{err}"
            raise
        if reply[0].get("op") == "import_error":
            self._retire(w)
            self.bad_files[path] = str(reply[0].get("message", "your file could not be imported"))[:2000]
            raise Verdict(self.bad_files[path])
        if reply[0].get("op") != "loaded":
            self._retire(w)
            self.bad_files[path] = "malformed reply from your file's worker while it was imported"
            raise Verdict(self.bad_files[path])
        self.current = (key, w)
        return w

    def _exchange(self, w: Worker, key: tuple, header: dict, blobs: list[bytes], originals: dict,
                  what: str = "your file, while it was imported") -> tuple[dict, list[bytes]]:
        """Send one message and wait for its final reply, serving callbacks; charge the time."""
        budget = self.limits.time_limit_s - self.spent.get(key, 0.0)
        start = time.monotonic()
        deadline = start + budget
        done = False
        try:
            w.send(header, blobs, deadline)
            while True:
                reply, reply_blobs = w.reader.read(deadline)
                if reply.get("op") != "callback":
                    done = True
                    return reply, reply_blobs
                self._serve_callback(w, reply, reply_blobs, originals, deadline)
        except codec.Timeout:
            self._retire(w)
            self.current = None
            if key[0] == "import":
                raise Verdict(f"time limit: {what} did not finish within {self.limits.time_limit_s:g} s (an "
                              f"infinite loop, or slow code at the top level of the file?)") from None
            message = (f"time limit: {what} ran past the {self.limits.time_limit_s:g} s this exercise may use "
                       f"(an infinite loop, or much too slow?); the worker was stopped")
            self.dead[key] = message + " (in an earlier test of this exercise)"
            raise Verdict(message) from None
        except codec.Closed:
            ended = w.how_it_ended()
            self._retire(w)
            self.current = None
            raise Verdict(self._ended_message(what, ended)) from None
        except codec.CodecError as err:
            self._retire(w)
            self.current = None
            raise Verdict(f"malformed result: {what} sent a reply the grader cannot read ({err})") from None
        finally:
            self.spent[key] = self.spent.get(key, 0.0) + time.monotonic() - start
            if not done and not w.closed:  # interrupted here (Ctrl-C, pytest-timeout): never reuse it
                self._retire(w)
                if self.current is not None and self.current[1] is w:
                    self.current = None

    def _ended_message(self, what: str, ended: str) -> str:
        if "SIGKILL" in ended:
            return (f"{what}: its process {ended} (the memory limit of {self.limits.memory_mb} MiB, or your code "
                    f"killed its own process group)")
        if ended.startswith("exited") and "imported" not in what:
            return f"{what}: its process {ended} (a function must return, not end the process)"
        return f"{what}: its process {ended}"

    def _serve_callback(self, w: Worker, reply: dict, blobs: list[bytes], originals: dict, deadline: float) -> None:
        decoder = codec.Decoder(blobs, originals=originals, callback=_original_callable(originals))
        state = reply.get("state")
        if not isinstance(state, list) or len(state) != 2:
            raise codec.CodecError("a callback without the arguments' state")
        try:
            decoder.dec(state[0])
            decoder.dec(state[1])
            args, kwargs = decoder.dec(reply.get("args")), decoder.dec(reply.get("kwargs"))
        except codec.CodecError:
            raise
        except Exception as err:  # noqa: BLE001
            raise codec.CodecError(f"{type(err).__name__}: {str(err)[:300]}") from None
        fn = originals.get(reply.get("r"))
        if not callable(fn) or type(args) is not list or type(kwargs) is not dict \
                or not all(isinstance(k, str) for k in kwargs):
            raise codec.CodecError("a callback to something that is not a function of the test")
        try:
            value = fn(*args, **kwargs)
            enc = codec.Encoder()
            w.send({"op": "callback_result", "value": enc.enc(value)}, enc.blobs, deadline)
        except (codec.Timeout, codec.Closed):
            raise
        except Exception as err:  # noqa: BLE001 - the test's function failed on what it was given
            w.send({"op": "callback_error", "message": f"{type(err).__name__}: {err}"[:500]}, [], deadline)

    # calls -------------------------------------------------------------------

    def call(self, path: str, exercise: str, name: str, args: tuple, kwargs: dict):
        """Run ``name(*args, **kwargs)`` from the learner's file ``path`` for ``exercise``.
        Returns its result, after applying to ``args`` what the call did to them; raises
        Verdict with the learner's message when anything went wrong."""
        key = (path, exercise)
        if key in self.dead:
            raise Verdict(self.dead[key])
        if path in self.bad_files:
            raise Verdict(self.bad_files[path])
        w = self._worker_for(key, path, exercise)
        enc = codec.Encoder(callback=lambda ref, v: {"t": "cb", "r": ref})
        try:
            header = {"op": "call", "name": name, "args": enc.enc(tuple(args)), "kwargs": enc.enc(dict(kwargs))}
        except (TypeError, RecursionError) as err:  # the test's own doing: say so to whoever wrote it
            raise GraderFault(f"the test passes {err} to {name}; a worker can receive numbers, strings, "
                              f"containers, NumPy arrays and generators, companion objects and functions") from None
        what = f"your {name}"
        reply, blobs = self._exchange(w, key, header, enc.blobs, enc.objects, what)
        op = reply.get("op")
        uses = reply.get("uses") if isinstance(reply.get("uses"), list) else []
        if uses:
            from .references import message

            raise Verdict(message(exercise, name, [str(u)[:100] for u in uses[:3]]))
        if op == "result":
            decoder = codec.Decoder(blobs, originals=enc.objects, callback=_original_callable(enc.objects))
            try:
                new_args = decoder.dec(reply.get("args"))
                decoder.dec(reply.get("kwargs"))
                result = decoder.dec(reply.get("result"))
            except Exception as err:  # noqa: BLE001 - whatever the bytes were, they are not a result
                self._drop_current()
                raise Verdict(f"malformed result from {what}: {type(err).__name__}: {str(err)[:300]}") from None
            if type(new_args) is not tuple or len(new_args) != len(args):
                raise Verdict(f"malformed result from {what}: its arguments came back wrong")
            return result
        message = str(reply.get("message", ""))[:2000]
        if op == "notimpl":
            raise Verdict(f"not yet implemented: {message}")
        if op == "missing":
            found = reply.get("found")
            got = f" (found a {found}, not a function)" if found else ""
            names = reply.get("names") if isinstance(reply.get("names"), list) else []
            names = [n for n in names[:500] if isinstance(n, str) and n.isidentifier()]
            raise Missing(f"the {Path(path).name[:4]} exercises must define a function {name}(...); none found{got}", names)
        if op == "raised":
            raise Verdict(f"{what} raised {message}")
        if op == "interrupted":
            raise Verdict(f"interrupted: {what} raised KeyboardInterrupt{message}")
        if op == "exit":
            raise Verdict(f"{what} called {message} (a function must return, not end the process)")
        if op == "memory":
            raise Verdict(f"memory limit: {what} tried to allocate more than the {self.limits.memory_mb} MiB "
                          f"it may use{message}")
        if op == "unencodable":
            part = "returned" if reply.get("what") == "result" else "left in one of its arguments"
            raise Verdict(f"{what} {part} something the grader cannot receive ({message}): use numbers, strings, "
                          f"lists, tuples, dicts and NumPy arrays")
        self._drop_current()
        raise Verdict(f"malformed result: {what}'s worker sent {str(op)[:40]!r}")

    def _drop_current(self) -> None:
        if self.current is not None:
            self._retire(self.current[1])
            self.current = None


def _original_callable(originals: dict):
    def lookup(ref, node):
        fn = originals.get(ref)
        if not callable(fn):
            raise codec.CodecError("a callback that was never sent")
        return fn

    return lookup
