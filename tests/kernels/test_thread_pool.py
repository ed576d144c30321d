"""The thread pool runs every item of every job exactly once, on the caller and its workers."""

from __future__ import annotations

import numpy as np
import pytest

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput


@pytest.mark.parametrize("chunks_per_thread", [1, 4])  # matmul's split, and the default
@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_back_to_back_jobs_run_every_item_exactly_once(n_threads, chunks_per_thread):
    # Sizes that change the chunk count from job to job (1 item, fewer items
    # than threads, many chunks), as a decode step's matmuls and norms do.
    rng = np.random.default_rng(n_threads)
    sizes = [int(s) for s in rng.choice([1, 2, 3, 7, 16, 96, 1000], size=3000)]
    counts, threads = kernels.parallel_for_items(sizes, n_threads, chunks_per_thread=chunks_per_thread)
    assert counts.size == sum(sizes)
    assert (counts == 1).all(), f"items run {sorted(set(counts.tolist()))} times"
    assert ((threads >= 0) & (threads < n_threads)).all()


@pytest.mark.parametrize("n_threads", [2, 3])
def test_jobs_after_the_workers_fell_asleep_run_every_item_exactly_once(n_threads):
    # 2 ms between jobs: longer than a worker spins, so each job wakes sleepers.
    sizes = [64, 5, 200, 2, 64] * 4
    counts, _ = kernels.parallel_for_items(sizes, n_threads, pause_us=2000)
    assert (counts == 1).all()


@pytest.mark.parametrize("switch", ["worker_spin_us", "small_op_read_ahead", "walk_part_bytes"])
def test_a_negative_step_shape_length_is_refused_by_name(switch):
    try:
        with pytest.raises(InvalidInput, match=f"{switch} is -1"):
            kernels.set_step_shape(**{switch: -1})
    finally:
        kernels.set_step_shape()


@pytest.mark.parametrize("worker_spin_us", [0, 5000])
def test_workers_that_sleep_at_once_or_spin_long_run_every_item_of_back_to_back_jobs_exactly_once(worker_spin_us):
    # Spin 0: every job finds the workers asleep or falling asleep (the race of a sleep's announcement with the
    # job's look at the sleepers, thousands of times); 5000 us: they never sleep between jobs.
    sizes = [int(s) for s in np.random.default_rng(7).choice([1, 2, 7, 96, 1000], size=2000)]
    kernels.set_step_shape(worker_spin_us=worker_spin_us)
    try:
        counts, _ = kernels.parallel_for_items(sizes, 2)
    finally:
        kernels.set_step_shape()
    assert counts.size == sum(sizes)
    assert (counts == 1).all(), f"items run {sorted(set(counts.tolist()))} times"


@pytest.mark.parametrize("chunks_per_thread", [1, 4])
@pytest.mark.parametrize("pause_us", [0, 2000])
def test_workers_take_chunks_of_a_long_job_whether_spinning_or_asleep(pause_us, chunks_per_thread):
    # 2 or 8 chunks per job, and the caller's chunks hold until a worker has started
    # one: the job ends only if the worker, spinning or asleep, wakes and claims
    # a chunk (a pool that never wakes it hangs here, and pytest-timeout names it).
    counts, threads = kernels.parallel_for_items([8] * 5, 2, pause_us=pause_us, caller_waits_for_a_worker=True,
                                               chunks_per_thread=chunks_per_thread)
    assert (counts == 1).all()
    assert (threads == 1).any(), "the worker never ran a chunk"


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_an_error_inside_a_chunk_reaches_the_caller_and_the_pool_keeps_working(n_threads):
    with pytest.raises(InvalidInput, match="item 37 failed on purpose"):
        kernels.parallel_for_items([100], n_threads, fail_at=37)
    counts, _ = kernels.parallel_for_items([100, 3, 100], n_threads)
    assert (counts == 1).all()


def test_empty_and_negative_jobs_run_nothing():
    counts, _ = kernels.parallel_for_items([0, -5, 0], 2)
    assert counts.size == 0


@pytest.mark.parametrize("n_threads", [2, 3])
def test_a_caller_that_blocked_waiting_for_a_worker_is_woken_when_the_worker_finishes(n_threads):
    # The caller spins for the others' chunks only a while, then blocks (so a
    # descheduled worker gets a core). Here a worker's chunk does not end until the
    # caller has blocked: each job ends only if the worker's finish wakes the
    # blocked caller (a lost wake-up hangs here, and pytest-timeout names it).
    counts, threads = kernels.parallel_for_items([4] * 5, n_threads, caller_waits_for_a_worker=True,
                                               worker_waits_for_caller_to_block=True, chunks_per_thread=1)
    assert (counts == 1).all()
    assert (threads != 0).any(), "no worker ran a chunk"
