"""The pool's team (cpp/runtime/thread_pool.h, ThreadPool::run_team and Team::phase): every pool thread walks
the same chain of phases at once, the way a one-session decode step is walked (cpp/forward/pass.cpp). The
rules: every part of every phase runs exactly once across the members; no part runs before the phase before
its own is done; a member that fails releases the others and its named error surfaces, the pool usable
after; a slow member's parts leave the walk whole (the others resign or wait, never skip a part); a
parallel_for inside a team runs on the member."""

from __future__ import annotations

import pytest

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput

# Part counts as a decode step's phases make them: a small op (1), a layer product (one part a thread), an
# attention of 1 or 3 KV heads cut into segments, the output matrix's many parts, and an empty phase.
PHASES = [1, 2, 1, 6, 1, 44, 3, 0, 128, 2, 1, 1, 5] * 20


@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_every_part_of_every_phase_runs_exactly_once_across_the_team(n_threads):
    counts, _ = kernels.team_phases(PHASES, n_threads)
    assert counts.size == sum(PHASES)
    assert (counts == 1).all(), f"parts run {sorted(set(counts.tolist()))} times"


@pytest.mark.parametrize("n_threads", [2, 3])
def test_no_part_runs_before_the_phase_before_its_own_is_done(n_threads):
    _, early = kernels.team_phases(PHASES, n_threads)
    assert early == 0


@pytest.mark.parametrize("pause_us", [300, 2000])  # shorter than a member's spin, and longer: the other resigns or sleeps
@pytest.mark.parametrize("pause_member", [0, 1])
def test_a_slow_member_leaves_every_part_run_once_in_order(pause_member, pause_us):
    # Each part the slow member takes sleeps (a thread descheduled mid-walk); a worker's member waiting for it
    # past its spin leaves the walk to the others (Team::Resigned), the caller's sleeps until it is done.
    counts, early = kernels.team_phases(PHASES[:26], 2, pause_member=pause_member, pause_us=pause_us)
    assert (counts == 1).all() and early == 0
    counts, early = kernels.team_phases(PHASES, 2)
    assert (counts == 1).all() and early == 0


@pytest.mark.parametrize("fail_at", [0, 7, len(PHASES) - 1])
@pytest.mark.parametrize("fail_member", [0, 1])
def test_a_failing_member_surfaces_its_named_error_and_the_pool_runs_after(fail_member, fail_at):
    with pytest.raises(InvalidInput, match=f"member {fail_member} failed on purpose at phase {fail_at}"):
        kernels.team_phases(PHASES, 2, fail_member=fail_member, fail_at=fail_at)
    # The same pool (one per thread count in the process): a plain job, then a team, run whole.
    counts, _ = kernels.parallel_for_items([64, 5, 200], 2)
    assert (counts == 1).all()
    counts, early = kernels.team_phases(PHASES, 2)
    assert (counts == 1).all() and early == 0


def test_a_phase_of_more_parts_than_a_team_takes_is_a_named_error_and_the_pool_runs_after():
    with pytest.raises(InvalidInput, match="at most"):
        kernels.team_phases([2, 1 << 20, 2], 2)
    counts, early = kernels.team_phases(PHASES, 2)
    assert (counts == 1).all() and early == 0


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_parallel_for_inside_a_team_runs_every_item_on_the_member(n_threads):
    counts, _ = kernels.team_phases([2, 7, 1, 3] * 5, n_threads, nested=True)
    assert (counts == 1).all(), "a nested parallel_for lost or repeated items"


def test_a_team_after_the_workers_fell_asleep_runs_whole():
    # Calls far apart: each team wakes its sleeping worker (a team whose worker never woke would still end,
    # its parts taken by the caller; either way every part once).
    for _ in range(3):
        counts, early = kernels.team_phases([2, 44, 1, 2], 2)
        assert (counts == 1).all() and early == 0
        kernels.parallel_for_items([1], 2, pause_us=2000)
