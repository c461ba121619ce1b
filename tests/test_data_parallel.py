"""Data parallelism (companion/data_parallel.py): a batch split across processes gives the loss and
gradients of the whole batch (float64: to 1e-12, with uneven masks and an odd batch, in both
families), training matches one process to float32 rounding and repeats itself exactly (resumed
from a checkpoint too), a dead worker is an error and not a hang, the shared memory is freed after
close, after errors and when a pool is dropped, and the refusals say why, before any share runs.

Starting a worker is a fresh interpreter (``spawn``), so the equality tests share one pool."""

from __future__ import annotations

import json
import multiprocessing
import sys

import numpy as np
import pytest

from companion import Transformer, cross_entropy_backward, cross_entropy_forward, preset, use
from companion.data_parallel import DataParallel, check_data_parallel, share_bounds
from companion.feedforward import gelu_forward
from companion.tasks import make_task
from companion.tools.cli import main
from companion.train import TrainConfig, train

B = 5  # odd: shares of 2 and 3 rows


def float64_model(seed: int = 0, **overrides) -> Transformer:
    return Transformer(preset("tiny", dtype="float64", **overrides), np.random.default_rng(seed))


def segment_exists(name: str) -> bool:
    """Whether a shared memory block of that name is there to attach to (on every platform)."""
    from multiprocessing import shared_memory

    try:
        segment = shared_memory.SharedMemory(name=name)  # Python < 3.13 registers it with this process's
    except FileNotFoundError:  # resource tracker, which holds a set of names: the pool's own entry stays one
        return False
    segment.close()
    return True


@pytest.fixture(scope="module")
def pool():
    model = float64_model()
    with DataParallel(model, workers=2, batch_size=B) as opened:
        yield opened


def whole_batch(model, idx, targets, mask):
    """The single-process reference: loss and gradients of the whole batch at once."""
    logits = model.forward(idx)
    loss, cache = cross_entropy_forward(logits, targets, mask)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    return loss, {k: g.copy() for k, g in model.gradients().items()}


def batch(model, n: int, seed: int):
    rng = np.random.default_rng(seed)
    V, T = model.config.vocab_size, model.config.block_size
    return rng.integers(0, V, size=(n, T)), rng.integers(0, V, size=(n, T))  # (n, T) each


def test_shares_cover_the_batch_in_order_as_evenly_as_possible():
    assert share_bounds(5, 2) == [(0, 2), (2, 5)]  # this process, which also sums and steps, gets fewer
    assert share_bounds(12, 2) == [(0, 6), (6, 12)]
    assert share_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert share_bounds(3, 3) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("masking", ["none", "uneven", "worker's share empty", "this process's share empty"])
def test_two_workers_give_the_whole_batch_loss_and_every_gradient(pool, masking):
    model = pool.model
    idx, targets = batch(model, B, seed=1)
    mask = np.ones(idx.shape)
    if masking == "uneven":  # share 0 (rows 0-1) counts 3 tokens per row, share 1 (rows 2-4) all of them
        mask[:2, 3:] = 0
    elif masking == "worker's share empty":  # a share that counts nothing must add nothing
        mask[2:] = 0
    elif masking == "this process's share empty":
        mask[:2] = 0
    loss_1, grads_1 = whole_batch(model, idx, targets, None if masking == "none" else mask)
    model.zero_grad()
    loss_2 = pool.forward_backward(idx, targets, None if masking == "none" else mask)
    assert loss_2 == pytest.approx(loss_1, rel=1e-12, abs=0)
    grads_2 = model.gradients()
    for name, g in grads_1.items():
        np.testing.assert_allclose(grads_2[name], g, rtol=1e-12, atol=1e-13, err_msg=name)
    assert np.abs(model._flat_grads).max() > 1e-3  # real gradients, not zeros equal to zeros


def test_the_workers_see_the_new_weights_and_a_shorter_batch(pool):
    model = pool.model
    model._flat_params += 0.01 * np.random.default_rng(2).standard_normal(model._flat_params.shape)  # an update
    idx, targets = batch(model, B - 1, seed=3)  # 4 rows: fewer than the pool's capacity
    idx, targets = idx[:, :5], targets[:, :5]  # and fewer positions than block_size
    loss_1, grads_1 = whole_batch(model, idx, targets, None)
    loss_2 = pool.forward_backward(idx, targets)
    assert loss_2 == pytest.approx(loss_1, rel=1e-12, abs=0)
    for name, g in grads_1.items():
        np.testing.assert_allclose(model.gradients()[name], g, rtol=1e-12, atol=1e-13, err_msg=name)
    with pytest.raises(ValueError, match="the pool takes between 2 and 5 sequences"):
        pool.forward_backward(*batch(model, B + 1, seed=4))


def test_a_llama_model_with_grouped_query_attention_a_bool_mask_and_ignored_targets():
    """The other family's replica: RoPE, SwiGLU, RMSNorm, 2 key/value heads for 4 query heads and an
    untied head; the loss mask a bool array, the masked targets -1 (never read), int32 ids."""
    model = float64_model(family="llama", n_head=4, n_kv_head=2)
    idx, targets = batch(model, 4, seed=10)
    mask = np.random.default_rng(11).random(idx.shape) > 0.3  # (4, T) bool
    targets[~mask] = -1
    loss_1, grads_1 = whole_batch(model, idx, targets, mask)
    with DataParallel(model, workers=2, batch_size=4) as opened:
        loss_2 = opened.forward_backward(idx.astype(np.int32), targets.astype(np.int32), mask)
    assert loss_2 == pytest.approx(loss_1, rel=1e-12, abs=0)
    for name, g in grads_1.items():
        np.testing.assert_allclose(model.gradients()[name], g, rtol=1e-12, atol=1e-13, err_msg=name)
    assert "head.proj.w" in grads_1 and np.abs(model._flat_grads).max() > 1e-3


def test_a_batch_of_mismatched_shapes_is_refused_before_any_share_runs(pool):
    """A wrong mask shape broadcast into the shared block (or failed there) and broke the pool."""
    model = pool.model
    idx, targets = batch(model, B, seed=8)
    T = idx.shape[1]
    for mask in (np.ones((B, T - 1)), np.ones((1, T)), np.ones(T)):
        with pytest.raises(ValueError, match=rf"loss mask \({', '.join(map(str, mask.shape))},?\): all three must"):
            pool.forward_backward(idx, targets, mask)
    with pytest.raises(ValueError, match=r"token ids \(16,\), targets \(16,\)"):
        pool.forward_backward(idx[0], targets[0])
    loss_1, _ = whole_batch(model, idx, targets, None)
    assert pool.forward_backward(idx, targets) == pytest.approx(loss_1, rel=1e-12, abs=0)  # not broken


def test_kernels_plugged_in_after_the_pool_opened_are_refused_at_the_step(pool):
    """Checked only at opening, a later use() block ran the learner's kernel on this process's share
    and the companion's on the workers': a gradient mixed from two different functions."""
    model = pool.model
    idx, targets = batch(model, B, seed=9)
    with use(gelu_forward=lambda x: gelu_forward(2 * x)):
        with pytest.raises(ValueError, match=r"inside a companion.use\(...\) block"):
            pool.forward_backward(idx, targets)
    loss_1, _ = whole_batch(model, idx, targets, None)
    assert pool.forward_backward(idx, targets) == pytest.approx(loss_1, rel=1e-12, abs=0)  # not broken


def test_an_error_in_a_share_breaks_the_pool_until_it_is_reopened():
    model = float64_model()
    idx, targets = batch(model, 4, seed=5)
    targets[3, 0] = model.config.vocab_size  # outside the vocabulary, in the worker's share (rows 2-3)
    with DataParallel(model, workers=2, batch_size=4) as opened:
        name = opened._segment.name
        with pytest.raises(RuntimeError, match=r"worker 1 failed:(.|\n)*target id outside the vocabulary"):
            opened.forward_backward(idx, targets)
        with pytest.raises(RuntimeError, match="pool is broken"):
            opened.forward_backward(*batch(model, 4, seed=6))
    assert not segment_exists(name)
    with pytest.raises(RuntimeError, match="pool is closed"):
        opened.forward_backward(*batch(model, 4, seed=6))


def test_a_failed_step_leaves_no_array_over_the_shared_block_in_its_traceback():
    """close() unmaps the block, so an array over it that outlives the pool points at freed memory:
    reading it crashes the interpreter. A traceback keeps the failed step's frames and their locals
    (a debugger's ``up``, a traceback printer that shows locals), so none may name such an array."""
    import mmap

    model = float64_model()
    idx, targets = batch(model, 4, seed=12)
    targets[3, 0] = model.config.vocab_size  # outside the vocabulary, in the worker's share
    with DataParallel(model, workers=2, batch_size=4) as opened:
        try:
            opened.forward_backward(idx, targets)
        except RuntimeError as err:
            failed = err
    found, tb = [], failed.__traceback__
    while tb is not None:
        for name, value in tb.tb_frame.f_locals.items():
            for item in value.values() if isinstance(value, dict) else [value]:
                base = item
                while isinstance(base, np.ndarray):
                    base = base.base
                if isinstance(base, (mmap.mmap, memoryview)):
                    found.append(f"{tb.tb_frame.f_code.co_name}: {name}")
        tb = tb.tb_next
    assert not found, f"the traceback keeps arrays over the closed shared block: {sorted(set(found))}"


def test_a_killed_worker_is_named_with_its_exit_code_not_waited_for_forever():
    model = float64_model()
    opened = DataParallel(model, workers=3, batch_size=6)
    name, victim = opened._segment.name, opened._processes[1]  # worker 2
    victim.kill()
    victim.join(timeout=10)
    with pytest.raises(RuntimeError, match=rf"worker 2 \(process {victim.pid}\) exited with code {victim.exitcode}"):
        opened.forward_backward(*batch(model, 6, seed=7))
    assert victim.exitcode is not None and victim.exitcode != 0
    opened.close()
    opened.close()  # twice is harmless
    assert not segment_exists(name)


@pytest.mark.parametrize("error", [KeyError, KeyboardInterrupt])
def test_shared_memory_is_freed_after_an_exception_in_the_with_block(error):
    model = float64_model()
    with pytest.raises(error, match="on purpose"):
        with DataParallel(model, workers=2, batch_size=2) as opened:
            name, processes = opened._segment.name, list(opened._processes)
            assert segment_exists(name)
            raise error("on purpose")
    assert not segment_exists(name)
    assert all(not p.is_alive() for p in processes)


def test_a_pool_dropped_without_close_frees_its_shared_memory_and_its_workers_end():
    import gc

    opened = DataParallel(float64_model(), workers=2, batch_size=2)
    name, worker = opened._segment.name, opened._processes[0]
    del opened
    gc.collect()
    assert not segment_exists(name)  # it stayed in /dev/shm until the interpreter exited
    worker.join(timeout=10)  # its pipe closed: it reads end-of-file and returns
    assert worker.exitcode == 0


def test_a_diverging_run_stops_its_workers():
    task = make_task("listops")
    model = Transformer(preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size),
                        np.random.default_rng(0))
    cfg = TrainConfig(steps=100, batch_size=4, lr=1e6, min_lr=0.0, warmup_steps=0, grad_clip=None, eval_every=0)
    before = set(multiprocessing.active_children())  # the module's shared pool may be running
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="training diverged"):
        train(model, task, cfg, np.random.default_rng(0), progress=False, workers=2)
    assert set(multiprocessing.active_children()) == before  # train's pool was closed on the way out


def test_refusals_say_why():
    model = float64_model()
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        check_data_parallel(model, 0, 8)
    with pytest.raises(ValueError, match="workers=9 is more than the batch's 8 sequences: each process needs at least one; use at most 8"):
        check_data_parallel(model, 9, 8)
    with pytest.raises(ValueError, match="dropout=0.1 with workers=2"):
        check_data_parallel(float64_model(dropout=0.1), 2, 8)
    check_data_parallel(float64_model(dropout=0.1), 1, 8)  # one process: dropout works as ever
    with use(gelu_forward=lambda x: gelu_forward(x)):
        with pytest.raises(ValueError, match=r"inside a companion.use\(...\) block"):
            DataParallel(model, 2, 8)
    task = make_task("listops")
    small = Transformer(preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size),
                        np.random.default_rng(0))
    with pytest.raises(ValueError, match="workers=3 is more than the batch's 2 sequences"):
        train(small, task, TrainConfig(steps=2, batch_size=2), np.random.default_rng(0), progress=False, workers=3)


def test_training_with_two_workers_matches_one_to_float32_rounding_and_repeats_exactly(tmp_path):
    from companion.checkpoint import load_checkpoint, save_checkpoint

    task = make_task("listops")
    cfg = TrainConfig(steps=12, batch_size=9, lr=3e-3, min_lr=3e-4, warmup_steps=2, eval_every=6, eval_size=40)

    def save_at_6(step, model, optimizer, rng, history):
        if step == 6:
            save_checkpoint(tmp_path, model, optimizer, step, rng, history=history, train_config=cfg)

    runs = {}
    for name, workers in (("one", 1), ("two", 2), ("two again", 2)):
        model = Transformer(preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size),
                            np.random.default_rng(3))
        history = train(model, task, cfg, np.random.default_rng(3), progress=False, workers=workers,
                        callback=save_at_6 if name == "two again" else None)
        runs[name] = (np.array(history.train_losses), model._flat_params.copy())
        val_losses = [r["val_loss"] for r in history.records]  # evaluations at steps 6 and 12
    ck = load_checkpoint(tmp_path)  # the second run of two workers, stopped at step 6 and resumed with two
    resumed = train(ck.model, task, cfg, ck.rng, optimizer=ck.optimizer, start_step=6, history=ck.history,
                    progress=False, workers=2)
    runs["two resumed"] = (np.array(resumed.train_losses), ck.model._flat_params.copy())
    assert [r["val_loss"] for r in resumed.records] == val_losses
    (loss_1, w_1), (loss_2, w_2), (loss_3, w_3) = runs["one"], runs["two"], runs["two again"]
    for name in ("two again", "two resumed"):  # same seed, same workers: the same numbers exactly
        np.testing.assert_array_equal(runs[name][0], loss_2, err_msg=name)
        np.testing.assert_array_equal(runs[name][1], w_2, err_msg=name)
    assert loss_1[-1] < loss_1[0]  # it trained
    # float32 sums in another order: about 1e-7 relative per step, a little more after 12 Adam updates
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-5)
    np.testing.assert_allclose(w_2, w_1, rtol=0, atol=2e-5)


def test_cli_train_and_bench_with_two_processes(capsys):
    assert main(["train", "--task", "listops", "--preset", "tiny", "--steps", "3", "--batch-size", "4",
                 "--eval-size", "20", "--workers", "2", "--no-progress", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 3 and np.isfinite(metrics["test_loss"])
    assert main(["bench", "--threads", "2", "--steps", "2", "--warmup", "1", "--preset", "tiny", "--no-memory",
                 "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "the companion runs as 2 data-parallel processes x 1 BLAS thread" in out
    assert result["companion"]["processes"] == 2 and result["companion"]["blas_threads"] == 1
    assert result["companion"]["first_loss"] == pytest.approx(np.log(result_vocab(result)), rel=0.05)
    assert main(["bench", "--threads", "2", "--steps", "2", "--warmup", "1", "--preset", "tiny", "--no-memory",
                 "--no-data-parallel", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "the companion runs as 1 process x 2 BLAS thread(s)" in out
    assert result["companion"]["processes"] == 1 and result["companion"]["blas_threads"] == 2


def result_vocab(result) -> int:
    return preset(result["config"]).vocab_size if isinstance(result["config"], str) else result["config"]["vocab_size"]


@pytest.mark.slow
def test_listops_is_learned_with_two_workers():
    """tests/test_learning.py's ListOps test (seed 0), its batches split across two processes."""
    from threadpoolctl import threadpool_limits

    from companion.evaluate import evaluate
    from companion.train import default_train_config

    task = make_task("listops", seed=0)
    model = Transformer(preset("listops", vocab_size=task.vocab_size, block_size=task.block_size, tie_weights=True),
                        np.random.default_rng(0))
    with threadpool_limits(1):
        history = train(model, task, default_train_config(task.name), np.random.default_rng(0), progress=False,
                        workers=2)
    result = evaluate(model, task, "test")
    assert result["n"] == len(task.test) > 400
    assert result["exact_match"] >= 0.995, (result["per_op_accuracy"], result["mistakes"])
    assert min(result["per_op_accuracy"].values()) >= 0.98
    assert history.train_losses[-1] < history.train_losses[0] / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the workers' state in /proc (Linux)")
def test_workers_exit_when_their_parent_is_killed():
    import os
    import signal
    import subprocess
    import time

    script = ("import sys, time, numpy as np\n"
              "from companion import Transformer, preset\n"
              "from companion.data_parallel import DataParallel\n"
              "if __name__ == '__main__':\n"
              "    pool = DataParallel(Transformer(preset('tiny'), np.random.default_rng(0)), 3, 3)\n"
              "    print(pool._segment.name, *[p.pid for p in pool._processes], flush=True)\n"
              "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    name, *pids = parent.stdout.readline().split()
    assert len(pids) == 2, "the parent did not start its two workers"
    os.kill(parent.pid, signal.SIGKILL)  # no close(), no finally: the parent is simply gone
    parent.wait()

    def running(pid: str) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(pid) for pid in pids), "a worker outlived its parent"
    path = f"/dev/shm/{name.lstrip('/')}"  # looked at, not attached: this process's tracker stays out of it
    while os.path.exists(path) and time.monotonic() < deadline:  # the dead parent's resource tracker frees it
        time.sleep(0.05)
    assert not os.path.exists(path)


def test_a_script_without_the_main_guard_is_told_what_spawn_needs(tmp_path):
    import os
    import subprocess

    script = tmp_path / "no_guard.py"  # spawn re-runs this top level in the worker, which then fails to start
    script.write_text("import numpy as np\n"
                      "from companion import Transformer, preset\n"
                      "from companion.data_parallel import DataParallel\n"
                      "DataParallel(Transformer(preset('tiny'), np.random.default_rng(0)), 2, 2).close()\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "exited with code" in last and "while starting" in last and '__name__ == "__main__"' in last, run.stderr[-2000:]
