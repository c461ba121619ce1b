"""Data parallelism: one batch split across processes, the gradients summed.

    batch (B, T) --split by rows--> share 0 (this process) | share 1 (worker 1) | ... | share N-1
    each share: forward, loss, backward on its own replica of the model   (all at the same time)
    gradient = sum of the shares' gradients                              (then clipping, AdamW as ever)

This is data parallelism, the idea behind PyTorch's DistributedDataParallel across GPUs, here
across the cores of one CPU, with one difference: DDP's replicas all-reduce their gradients and
each runs its own optimizer step, while here one process sums the gradients, runs clipping and
AdamW once, and copies the new weights to the workers at the next step (as torch.nn.DataParallel
or a parameter server does). On one machine, through shared memory, that copy is cheap, and one
optimizer keeps checkpoints exactly as a single process writes them.

Why processes: NumPy runs element-wise work (GELU, softmax, LayerNorm, the residual adds) on one
core, and BLAS threads only speed up the matrix products, about half of a step. Two *threads* in
one process could each run half the batch on its own copy of the model, but a step is a long chain
of short NumPy calls, and the Python between them, and each call's setup, need the global
interpreter lock, so how much two threads overlap is a matter of measurement (chapter 11 times
both on the reader's machine). Two processes share no lock.

The mean loss over the batch is a sum over its counted tokens divided by their number ``n_total``,
so a share with ``n_share`` counted tokens (the loss mask may count different numbers in different
shares) contributes its own mean loss times ``n_share / n_total``; its gradient is scaled the same
way (on dlogits, before the backward pass), and the full gradient is then the plain sum of the
shares' gradients. The numbers equal a single process's up to rounding: the same sums, added in
another order. For a given number of workers they are the same on every run.

What moves between processes, all through one block of shared memory (``multiprocessing.
shared_memory``) that every process maps: the weights (this process copies its parameter buffer,
``model._flat_params``, into the block before each step: one memcpy, about 3 MB for nanoGPT's baby
model), the batch, each worker's gradient buffer (its replica's ``_flat_grads`` *is* a slice of the
block, so its backward pass writes there directly) and each share's summed loss. The pipe to each
worker carries only short byte messages (b"step", b"done", b"stop"); no array is pickled.

Cost model of a step with N processes: the slowest share's forward + backward (about 1/N of the
whole batch's), plus the weights' copy and N - 1 additions of a gradient buffer (each well under a
millisecond for the baby model), plus clipping and AdamW in this process as before, plus a few tens
of microseconds of messages. The workers start once (``spawn``: a fresh interpreter that imports
NumPy and the companion, a fraction of a second each), so a pool is opened for a whole training run.

Every process runs BLAS on one thread while the pool works (N processes x 1 thread). Workers are
started with ``spawn``, the one start method that works alike on Linux, macOS and Windows (``fork``
after BLAS has started its threads can deadlock the child); spawn's start-up message is the only
pickle, made by this process for its own child: a function's name, strings and integers. As with
any use of spawn, a script (not a notebook, not ``python -m companion``) that opens a pool must do
it under ``if __name__ == "__main__":``, since each worker imports the script's module first.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import traceback
import weakref
from multiprocessing import connection, shared_memory

import numpy as np

from .backend import BACKEND
from .kernels import _OVERRIDES
from .loss import cross_entropy_backward, cross_entropy_forward
from .module import flat_layout


def check_data_parallel(model, workers: int, batch_size: int) -> None:
    """Refuse, naming the reason, a worker count that cannot split this model's batches."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer (1: no data parallelism), got {workers!r}")
    if workers > batch_size:
        raise ValueError(f"workers={workers} is more than the batch's {batch_size} sequences: each process "
                         f"needs at least one; use at most {batch_size} workers")
    if workers == 1:
        return
    if BACKEND != "numpy":
        raise ValueError(f"data parallelism shares NumPy arrays between processes; the {BACKEND} backend's "
                         f"arrays live on a device: use workers=1")
    if model.config.dropout > 0:
        raise ValueError(f"dropout={model.config.dropout} with workers={workers}: dropout masks come from the "
                         f"training loop's generator in this process, which the workers cannot share; "
                         f"use workers=1 or dropout=0")
    if _OVERRIDES.get():
        raise ValueError(f"workers={workers} inside a companion.use(...) block: your kernels are plugged in "
                         f"only in this process, and the workers would run the companion's own; use workers=1")


def share_bounds(batch_size: int, workers: int) -> list[tuple[int, int]]:
    """Rows (start, stop) of each share: as equal as can be, the last ``B % N`` one row longer (share 0
    is this process's, which also adds up the gradients and runs the optimizer)."""
    base, extra = divmod(batch_size, workers)
    bounds, start = [], 0
    for rank in range(workers):
        stop = start + base + (rank >= workers - extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def share_forward_backward(model, idx, targets, mask, n_total: float) -> float:
    """Forward, loss and backward on one share (rows of the batch); leaves in the model's gradients
    this share's part of the gradient of the *whole batch's* mean loss. -> the share's summed loss."""
    model.zero_grad()
    n_share = float(mask.sum())
    if n_share == 0:  # no counted token here: this share adds nothing to the loss or the gradient
        return 0.0
    logits = model.forward(idx)  # (b, T, vocab_size)
    loss, cache = cross_entropy_forward(logits, targets, mask)  # the mean over this share's tokens
    dlogits = cross_entropy_backward(cache)  # (b, T, vocab_size): the gradient of that mean
    dlogits *= n_share / n_total  # ... made the gradient of this share's part of the whole batch's mean
    model.backward(dlogits)
    return loss * n_share


def _carve(buf, n_params: int, dtype, workers: int, batch_size: int, block_size: int) -> dict:
    """NumPy arrays over the shared block, laid out the same way in every process."""
    specs = [("params", (n_params,), dtype), ("grads", (workers - 1, n_params), dtype),
             ("idx", (batch_size, block_size), np.int64), ("targets", (batch_size, block_size), np.int64),
             ("mask", (batch_size, block_size), np.float64),
             ("header", (3,), np.float64),  # B, T and n_total of the current step
             ("losses", (workers,), np.float64)]  # each share's summed loss
    arrays, offset = {}, 0
    for name, shape, kind in specs:
        kind = np.dtype(kind)
        offset = -(-offset // 64) * 64  # each array starts on a cache line
        arrays[name] = np.ndarray(shape, dtype=kind, buffer=buf, offset=offset) if buf is not None else None
        offset += int(np.prod(shape)) * kind.itemsize
    arrays["nbytes"] = offset
    return arrays


class DataParallel:
    """A pool of ``workers - 1`` worker processes that, with this process, run each training step's
    forward and backward pass on ``workers`` shares of the batch.

        with DataParallel(model, workers=2, batch_size=12) as pool:
            loss = pool.forward_backward(idx, targets, loss_mask)  # gradients now in model.gradients()
            clip_grad_norm(model.gradients(), 1.0); optimizer.step()

    ``model`` stays this process's own: its parameters, optimizer and checkpoints are untouched.
    Leaving the with-block (or ``close()``) stops the workers and frees the shared memory, also after
    an exception (a pool dropped without either frees it when it is garbage-collected); a worker that
    dies makes the next step raise a RuntimeError that names it."""

    def __init__(self, model, workers: int, batch_size: int):
        from threadpoolctl import ThreadpoolController

        from .backend import MALLOC_TUNED

        check_data_parallel(model, workers, batch_size)
        self.model, self.workers, self.batch_size = model, int(workers), int(batch_size)
        self._processes, self._conns, self._segment, self._arrays = [], [], None, None
        self._broken = False
        self._blas = ThreadpoolController()  # to run this process's share on one BLAS thread
        if self.workers == 1:
            return
        flat = model._flat_params
        size = _carve(None, flat.size, flat.dtype, self.workers, self.batch_size, model.config.block_size)["nbytes"]
        try:
            self._segment = shared_memory.SharedMemory(create=True, size=size)
            # a pool dropped without close() frees its block all the same (its workers end when their pipes close)
            self._unlink = weakref.finalize(self, self._segment.unlink)
            self._arrays = _carve(self._segment.buf, flat.size, flat.dtype, self.workers, self.batch_size,
                                  model.config.block_size)
            spawn = multiprocessing.get_context("spawn")
            config = json.dumps(model.config.to_dict())
            for rank in range(1, self.workers):
                ours, theirs = spawn.Pipe()
                process = spawn.Process(target=_worker_main, name=f"companion-data-parallel-{rank}", daemon=True,
                                        args=(theirs, self._segment.name, config, rank, self.workers,
                                              self.batch_size, MALLOC_TUNED))
                process.start()
                theirs.close()  # the worker holds its end; when it dies, ours reads end-of-file
                self._processes.append(process)
                self._conns.append(ours)
            self._wait_all(b"ready")
        except BaseException:
            self.close()
            raise

    def forward_backward(self, idx, targets, loss_mask=None) -> float:
        """idx, targets (B, T) token ids, loss_mask (B, T) or None (every token counts) -> the mean loss
        over the batch's counted tokens; the model's gradients hold that loss's gradient."""
        idx, targets = np.asarray(idx), np.asarray(targets)
        mask = np.ones(idx.shape) if loss_mask is None else np.asarray(loss_mask, dtype=np.float64)  # (B, T)
        if idx.ndim != 2 or targets.shape != idx.shape or mask.shape != idx.shape:  # checked before any share runs
            raise ValueError(f"token ids {idx.shape}, targets {targets.shape} and loss mask {mask.shape}: "
                             f"all three must have the same shape (B, T)")
        B, T = idx.shape
        if B > self.batch_size or B < self.workers or T > self.model.config.block_size:
            raise ValueError(f"batch of shape {idx.shape}: the pool takes between {self.workers} and "
                             f"{self.batch_size} sequences of up to {self.model.config.block_size} tokens")
        check_data_parallel(self.model, self.workers, self.batch_size)  # again: a use() block may have begun since
        n_total = float(mask.sum())
        if n_total == 0:
            raise ValueError("the mask leaves no target to score: every position is masked out")
        start, stop = share_bounds(B, self.workers)[0]
        if self.workers == 1:
            with self._blas.limit(limits=1, user_api="blas"):
                return share_forward_backward(self.model, idx, targets, mask, n_total) / n_total
        if self._segment is None or self._broken:
            raise RuntimeError(f"this DataParallel pool is {'closed' if self._segment is None else 'broken'} "
                               f"(a step failed or was interrupted); close it and open a new one")
        self._broken = True  # until the step has ended well: the workers' replies could be out of step
        # The block's arrays are reached through self, never held in a local: a traceback keeps this frame,
        # and close() unmaps the memory they point into (reading one after that would crash Python).
        self._arrays["params"][:] = self.model._flat_params  # this step's weights, for every replica
        self._arrays["idx"][:B, :T] = idx  # (B, T) each
        self._arrays["targets"][:B, :T] = targets
        self._arrays["mask"][:B, :T] = mask
        self._arrays["header"][:] = (B, T, n_total)
        for rank, conn in enumerate(self._conns, start=1):
            try:
                conn.send_bytes(b"step")
            except OSError:  # a broken pipe: that worker is gone
                raise self._died(rank) from None
        try:
            with self._blas.limit(limits=1, user_api="blas"):  # the other cores are the workers'
                self._arrays["losses"][0] = share_forward_backward(
                    self.model, idx[start:stop], targets[start:stop], mask[start:stop], n_total)
        finally:
            self._wait_all(b"done")  # even after an error here, so that no reply is left unread
        for grads in self._arrays["grads"]:  # in rank order: the same additions, in the same order, every run
            self.model._flat_grads += grads
        self._broken = False
        return float(self._arrays["losses"].sum()) / n_total

    def _wait_all(self, expected: bytes) -> None:
        """Each worker's reply, or a RuntimeError naming the worker that died or failed."""
        for rank, (process, conn) in enumerate(zip(self._processes, self._conns), start=1):
            connection.wait([conn, process.sentinel])  # a reply, or the process's end: never a hang
            try:
                reply = conn.recv_bytes() if conn.poll() else b""
            except (EOFError, OSError):
                reply = b""
            if reply == expected:
                continue
            if reply.startswith(b"error"):
                raise RuntimeError(f"data-parallel worker {rank} failed:\n{reply[len(b'error '):].decode()}")
            raise self._died(rank, starting=expected == b"ready")

    def _died(self, rank: int, starting: bool = False) -> RuntimeError:
        process = self._processes[rank - 1]
        process.join(timeout=5)
        what = f"data-parallel worker {rank} (process {process.pid}) exited with code {process.exitcode}"
        if starting:  # most often spawn re-running a script's top level in the worker
            return RuntimeError(f"{what} while starting; a script that opens a pool needs the "
                                f"`if __name__ == \"__main__\":` guard that spawn requires (the worker's own "
                                f"message is printed above)")
        return RuntimeError(f"{what}; close this pool and open a new one")

    def close(self) -> None:
        """Stop the workers and free the shared memory. Safe to call twice, and after a failure."""
        for conn in self._conns:
            try:
                conn.send_bytes(b"stop")
            except OSError:  # that worker is gone already
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():  # stuck: stop it the hard way
                process.terminate()
                process.join()
        for conn in self._conns:
            conn.close()
        self._processes, self._conns, self._arrays = [], [], None  # the arrays pointed into the segment
        if self._segment is not None:
            self._segment.close()
            self._unlink()  # the finalizer, called now: it unlinks once, and never again at collection
            self._segment = None

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _use_buffers(model, flat_params, flat_grads) -> None:
    """Make every parameter and gradient of ``model`` a view of the given buffers (same layout)."""
    _, slices = flat_layout(model.parameters())  # where each parameter lies in the model's own buffer
    for prefix, module in model.named_modules():
        for name, p in module.params.items():
            part = slices[f"{prefix}{name}"]
            module.params[name] = flat_params[part].reshape(p.shape)
            module.grads[name] = flat_grads[part].reshape(p.shape)
    model._flat_params, model._flat_grads = flat_params, flat_grads


def _worker_main(conn, segment_name: str, config_json: str, rank: int, workers: int, batch_size: int,
                 tune_malloc: bool) -> None:
    """A worker: a replica of the model whose weights and gradients live in the shared block; for each
    b"step", its share of the batch; b"stop" or end-of-file (the parent is gone) ends it."""
    from threadpoolctl import threadpool_limits

    from .backend import tune_allocator
    from .config import ModelConfig
    from .model import Transformer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    threadpool_limits(limits=1, user_api="blas")
    if tune_malloc:
        tune_allocator()
    config = ModelConfig.from_dict(json.loads(config_json))
    model = Transformer(config, np.random.default_rng(0))  # its weights are replaced by the shared ones
    segment = shared_memory.SharedMemory(name=segment_name)
    a = _carve(segment.buf, model._flat_params.size, model._flat_params.dtype, workers, batch_size,
               config.block_size)
    _use_buffers(model, a["params"], a["grads"][rank - 1])
    try:
        conn.send_bytes(b"ready")
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):  # the parent has gone: nothing more to do
                break
            if message != b"step":
                break
            try:
                B, T, n_total = int(a["header"][0]), int(a["header"][1]), float(a["header"][2])
                start, stop = share_bounds(B, workers)[rank]
                rows = slice(start, stop)
                a["losses"][rank] = share_forward_backward(
                    model, np.ascontiguousarray(a["idx"][rows, :T]), np.ascontiguousarray(a["targets"][rows, :T]),
                    a["mask"][rows, :T], n_total)
                conn.send_bytes(b"done")
            except Exception:  # reported to the parent, which raises it; this worker waits for the next step
                conn.send_bytes(b"error " + traceback.format_exc().encode())
    except (EOFError, OSError):  # the parent went away while we replied
        pass
    finally:
        del model, a  # every array over the segment, before it can close
        segment.close()
