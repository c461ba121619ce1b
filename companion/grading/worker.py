"""A grading worker: the only process that runs a learner's code (started by sandbox.py).

    python -E -s -c "...; main()" CMD_FD REPLY_FD     (never run by hand)

It limits itself (CPU time, address space, file size, no core files), imports NumPy and the
companion while it is still trusted, says "ready", and then serves the parent one message at a
time on two pipes of its own, CMD_FD and REPLY_FD: file descriptors 0, 1 and 2 are /dev/null,
so a learner's print (or a forged "passed" written to fd 1 or 2) reaches nobody.

    load {path, exercise}          import the learner's file (once)
    call {name, args, kwargs}      run one function; reply with its result and what it did to
                                   its arguments (codec.py), or with what went wrong
    bye                            exit

The worker decides nothing. It reports; the parent compares with the reference, checks the
reference-use report, and scores. A learner's code can tamper with this process as it likes:
that can only spoil the replies about its own exercise, which the parent treats as untrusted.
"""

from __future__ import annotations

import os
import sys
import traceback


def set_limits(cpu_s: float, memory_bytes: int, file_bytes: int, nproc: int = 0) -> None:
    """POSIX resource limits on this process (and anything it starts)."""
    import resource

    def lower(which, soft, hard=None):
        current_hard = resource.getrlimit(which)[1]
        hard = soft if hard is None else hard
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))

    cpu = max(1, int(cpu_s + 0.999))
    lower(resource.RLIMIT_CPU, cpu, cpu + 2)  # SIGXCPU at the soft limit, SIGKILL at the hard one
    if memory_bytes > 0:
        try:
            lower(resource.RLIMIT_AS, memory_bytes)
        except (ValueError, OSError):  # macOS refuses RLIMIT_AS (EINVAL): no memory limit there (unguaranteed)
            if sys.platform.startswith("linux"):
                raise
    lower(resource.RLIMIT_FSIZE, file_bytes)
    lower(resource.RLIMIT_CORE, 0)
    if nproc > 0:  # only when workers have a user of their own (the limit counts all of a user's processes)
        lower(resource.RLIMIT_NPROC, nproc)


class Worker:
    def __init__(self, cmd_fd: int, reply_fd: int):
        from . import codec

        self.codec = codec
        self.cmd_fd, self.reply_fd = cmd_fd, reply_fd
        self.module = None
        self.path = None
        self.exercise = None
        self.references: dict = {}
        self.call_state = None  # (decoded objects, pristine copies, args, kwargs) of the call running now

    def send(self, header: dict, blobs: list[bytes] = ()) -> None:
        self.codec.write_all(self.reply_fd, self.codec.pack(header, list(blobs)))

    def serve(self) -> None:
        self.send({"op": "ready", "pid": os.getpid()})
        while True:
            try:
                header, blobs = self.codec.read_blocking(self.cmd_fd)
            except self.codec.Closed:
                return
            op = header.get("op")
            if op == "load":
                if not self.load(header):
                    return
            elif op == "call":
                self.call(header, blobs)
            else:
                return

    # ------------------------------------------------------------------ load

    def load(self, header: dict) -> bool:
        import importlib.util

        from .references import resolve_all

        self.path, self.exercise = header["path"], header["exercise"]
        self.references = resolve_all(self.exercise)  # before the learner's code can patch anything
        name = os.path.splitext(os.path.basename(self.path))[0]
        try:
            spec = importlib.util.spec_from_file_location(name, self.path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except SystemExit as err:
            self.send({"op": "import_error", "message": f"your file called sys.exit({err.code!r:.40}) while it was imported"})
            return False
        except KeyboardInterrupt:
            self.send({"op": "import_error", "message": "your file raised KeyboardInterrupt while it was imported"})
            return False
        except BaseException as err:  # noqa: BLE001 - everything a learner's file can raise
            self.send({"op": "import_error", "message": f"your file raised {type(err).__name__} while it was imported: "
                                                        f"{_text(err)}{self.learner_line(err)}"})
            return False
        self.module = module
        self.send({"op": "loaded"})
        return True

    def learner_line(self, err: BaseException) -> str:
        """' (at ch03_attention.py line 42: s = q @ k)': the deepest frame in the learner's file."""
        try:
            frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == self.path]
        except Exception:  # noqa: BLE001
            return ""
        if not frames:
            return ""
        f = frames[-1]
        return f" (at {os.path.basename(f.filename)} line {f.lineno}: {(f.line or '').strip()[:120]})"

    # ------------------------------------------------------------------ call

    def call(self, header: dict, blobs: list[bytes]) -> None:
        import numpy as np

        from .references import CallWatch, identity_use

        codec, name = self.codec, header["name"]
        fn = getattr(self.module, name, None)
        if not callable(fn):
            try:  # the functions it does define: the parent names a renamed one
                names = [n for n, v in vars(self.module).items() if callable(v) and not n.startswith("_")][:500]
            except Exception:  # noqa: BLE001 - a learner's module that broke its own namespace
                names = []
            self.send({"op": "missing", "found": type(fn).__name__ if fn is not None else None,
                       "names": [str(n)[:100] for n in names]})
            return
        decoder = codec.Decoder(blobs, callback=self.make_callback, allow_import=True)
        args = list(decoder.dec(header["args"]))
        kwargs = decoder.dec(header["kwargs"])
        made = dict(decoder.made)
        pristine = {ref: obj.copy() for ref, obj in made.items() if type(obj) is np.ndarray}
        self.call_state = (made, pristine, args, kwargs)
        uses = []
        used = identity_use(fn, self.references)
        if used:
            uses.append(used)
        watch = CallWatch(self.references)
        try:
            with watch.watching():
                result = fn(*args, **kwargs)
        except NotImplementedError as err:
            self.send({"op": "notimpl", "message": _text(err) or name})
            return
        except KeyboardInterrupt:
            self.send({"op": "interrupted", "message": self.learner_line_of_current()})
            return
        except SystemExit as err:
            self.send({"op": "exit", "message": f"sys.exit({err.code!r:.40})"})
            return
        except MemoryError as err:
            self.send({"op": "memory", "message": self.learner_line(err)})
            return
        except BaseException as err:  # noqa: BLE001
            self.send({"op": "raised", "message": f"{type(err).__name__}: {_text(err)}{self.learner_line(err)}",
                       "uses": uses + [u for u in watch.hits if u not in uses]})
            return
        finally:
            self.call_state = None
        uses += [u for u in watch.hits if u not in uses]
        enc = self.state_encoder(made, pristine)
        try:
            sent_args, sent_kwargs = enc.enc(tuple(args)), enc.enc(kwargs)
        except (TypeError, ValueError, RecursionError) as err:
            self.send({"op": "unencodable", "what": "argument", "message": _text(err), "uses": uses})
            return
        try:
            sent_result = enc.enc(result)
        except (TypeError, ValueError, RecursionError) as err:
            self.send({"op": "unencodable", "what": "result", "message": _text(err), "uses": uses})
            return
        self.send({"op": "result", "args": sent_args, "kwargs": sent_kwargs, "result": sent_result, "uses": uses},
                  enc.blobs)

    def learner_line_of_current(self) -> str:
        _, err, _ = sys.exc_info()
        return self.learner_line(err) if err is not None else ""

    def state_encoder(self, made: dict, pristine: dict):
        known = {id(obj): ref for ref, obj in made.items()}

        def callback(ref, value):  # a callback stub we were given goes back as itself
            return {"t": "cb", "r": ref} if ref > 0 else None

        return self.codec.Encoder(known=known, pristine=pristine, sign=-1, callback=callback)

    def make_callback(self, ref: int, node: dict):
        worker = self

        def call_the_parent(*args, **kwargs):
            """A function that lives in the grader: calling it asks the grader to run it."""
            codec = worker.codec
            if worker.call_state is None:
                raise RuntimeError("a function from the grader was called after the call that received it returned")
            made, pristine, call_args, call_kwargs = worker.call_state
            enc = worker.state_encoder(made, pristine)
            header = {"op": "callback", "r": ref, "state": [enc.enc(tuple(call_args)), enc.enc(call_kwargs)],
                      "args": enc.enc(list(args)), "kwargs": enc.enc(kwargs)}
            worker.send(header, enc.blobs)
            for r, obj in made.items():  # the parent now holds these contents: compare with them next time
                if r in pristine:
                    pristine[r] = obj.copy()
            reply, blobs = codec.read_blocking(worker.cmd_fd)
            if reply.get("op") != "callback_result":
                raise RuntimeError(f"the grader's function failed: {reply.get('message', '')}")
            return codec.Decoder(blobs, allow_import=True).dec(reply["value"])

        return call_the_parent


def _text(err: BaseException, limit: int = 1500) -> str:
    try:
        text = str(err)
    except Exception:  # noqa: BLE001 - a learner's exception whose __str__ fails
        text = f"<{type(err).__name__} whose message cannot be shown>"
    return text if len(text) <= limit else text[:limit] + " ..."


def not_dumpable() -> None:
    """Linux: other processes of the same user (a child a learner's code left running, in this
    or another worker) cannot open this process's file descriptors through /proc or trace it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        except (OSError, AttributeError):
            pass


def main(argv: list[str] | None = None) -> None:
    not_dumpable()  # first of all, before a learner's leftover process can reach our pipes
    argv = sys.argv[1:] if argv is None else argv
    cmd_fd, reply_fd = int(argv[0]), int(argv[1])
    if os.name == "posix":
        set_limits(float(os.environ.get("COMPANION_WORKER_CPU_S", "60")),
                   int(os.environ.get("COMPANION_WORKER_MEMORY_BYTES", str(2 * 2**30))),
                   int(os.environ.get("COMPANION_WORKER_FILE_BYTES", str(64 * 2**20))),
                   int(os.environ.get("COMPANION_WORKER_NPROC", "0")))
    sys.dont_write_bytecode = True
    import numpy  # noqa: F401 - imported while trusted, and before the clock of any exercise starts

    import companion  # noqa: F401
    from companion.grading import codec, references  # noqa: F401

    try:
        Worker(cmd_fd, reply_fd).serve()
    except Exception:  # noqa: BLE001 - a broken pipe or a learner who broke this process's state
        pass
    os._exit(0)  # no atexit handlers, no finalizers a learner registered


if __name__ == "__main__":
    main()
