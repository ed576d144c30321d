"""The pool's team (cpp/runtime/thread_pool.h, ThreadPool::run_team and Team): every pool thread walks the
same ops at once and meets the others at Team::sync, the way a one-session decode step is walked
(cpp/forward/pass.cpp). The rules: every part of every claim runs exactly once across the members; no member
leaves a sync before every member has reached it; a member that fails releases the others and its named
error surfaces, the pool usable after; a parallel_for inside a team runs on the member (no deadlock)."""

from __future__ import annotations

import pytest

from ggufsm._core import kernels
from ggufsm.spec.errors import InvalidInput

# Part counts as a decode step's claims make them: a layer product (one part a thread), an attention of
# 1 or 3 KV heads cut into segments, the output matrix's many parts, and fewer parts than members.
CLAIMS = [2, 6, 1, 44, 3, 0, 128, 2, 5] * 20


@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_every_part_of_every_claim_runs_exactly_once_across_the_team(n_threads):
    counts, _ = kernels.team_claims(CLAIMS, n_threads)
    assert counts.size == sum(CLAIMS)
    assert (counts == 1).all(), f"parts run {sorted(set(counts.tolist()))} times"


@pytest.mark.parametrize("n_threads", [2, 3])
def test_no_member_leaves_a_sync_before_every_member_has_reached_it(n_threads):
    _, early = kernels.team_claims(CLAIMS, n_threads)
    assert early == 0


@pytest.mark.parametrize("fail_at", [0, 7, len(CLAIMS) - 1])
@pytest.mark.parametrize("fail_member", [0, 1])
def test_a_failing_member_surfaces_its_named_error_and_the_pool_runs_after(fail_member, fail_at):
    with pytest.raises(InvalidInput, match=f"member {fail_member} failed on purpose at claim {fail_at}"):
        kernels.team_claims(CLAIMS, 2, fail_member=fail_member, fail_at=fail_at)
    # The same pool (one per thread count in the process): a plain job, then a team, run whole.
    counts, _ = kernels.parallel_for_items([64, 5, 200], 2)
    assert (counts == 1).all()
    counts, early = kernels.team_claims(CLAIMS, 2)
    assert (counts == 1).all() and early == 0


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_parallel_for_inside_a_team_runs_every_item_on_the_member(n_threads):
    counts, _ = kernels.team_claims([2, 7, 1, 3] * 5, n_threads, nested=True)
    assert (counts == 1).all(), "a nested parallel_for lost or repeated items"


def test_a_team_after_the_workers_fell_asleep_runs_whole():
    # Separate calls far apart on a busy machine: each team wakes its sleeping worker (a team that never
    # woke it would hang at its first sync, and pytest-timeout names it).
    for _ in range(3):
        counts, early = kernels.team_claims([2, 44], 2)
        assert (counts == 1).all() and early == 0
        kernels.parallel_for_items([1], 2, pause_us=2000)

