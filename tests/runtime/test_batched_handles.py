"""Handles on one model share its forward, and their decode steps batch, invisibly to each handle's lifecycle.

Every rule here compares handles generating at once (batch_decode on, the default) with the same handles
generating alone, one after another (batch_decode off): the same tokens, seed for seed. That at least one pass
really batched several handles' steps is made certain, not hoped for: the shared scheduler's first pass is held
until the other handles' steps are queued behind it (`hold_first_pass`, waiting on the scheduler's own
condition). Threads start together on a barrier; nothing waits on time. The real models (SmolLM2, Gemma 3)
run the same comparison.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable

import pytest

from ggufsm.reference.architectures import shared_forward
from ggufsm.reference.runtime import Runtime, loading
from ggufsm.reference.runtime.config import usable_cores
from ggufsm.spec.errors import Cancelled, InvalidInput, InvalidModel, ModelUnavailable
from ggufsm.spec.names import State

PROMPTS = ["Hello", "The quick brown fox", "Once upon a time", "1 2 3 4"]
SEEDS = [11, 22, 33, 44]


def loaded(path, *, batch_decode: bool = True, n_threads: int = 1, n_ctx: int = 64) -> Runtime:
    runtime = Runtime()
    runtime.init_runtime(n_ctx=n_ctx, n_threads=n_threads, batch_decode=batch_decode)
    runtime.load_model(path)
    return runtime


def scheduler_of(runtime: Runtime):
    return runtime._lifecycle.resident.session.scheduler


def forward_of(runtime: Runtime):
    return runtime._lifecycle.resident.session.model._core


def hold_first_pass(scheduler, until_queued: int) -> None:
    """The scheduler's first pass waits until `until_queued` steps are queued behind it; later passes run free."""
    run, held = scheduler._run, []

    def first_held(steps):
        if not held:
            held.append(True)
            scheduler.watch(lambda: len(scheduler._queue) >= until_queued)
        run(steps)

    scheduler._run = first_held


def sampling(i: int, greedy: bool) -> dict:
    return {"temperature": 0.0} if greedy else {"temperature": 0.9, "top_k": 40, "seed": SEEDS[i]}


def alone(path, n: int, max_tokens: int, greedy: bool, **load) -> list[list[int]]:
    """Each handle's tokens generated alone (batching off), one handle after another."""
    out = []
    for i in range(n):
        runtime = loaded(path, batch_decode=False, **load)
        out.append(runtime.generate(PROMPTS[i], max_tokens, stop_at_eos=False, **sampling(i, greedy)).token_ids)
        runtime.free()
    return out


def at_once(handles: list[Runtime], work: list[Callable[[Runtime], object]]) -> list[object]:
    """work[i](handles[i]) on a thread each, started together; each one's result or exception."""
    start = threading.Barrier(len(handles))
    results: list[object] = [None] * len(handles)

    def run(i):
        start.wait()
        try:
            results[i] = work[i](handles[i])
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def generating(i: int, max_tokens: int, greedy: bool, **options) -> Callable[[Runtime], object]:
    return lambda runtime: runtime.generate(PROMPTS[i], max_tokens, stop_at_eos=False, **sampling(i, greedy),
                                            **options).token_ids


def free_all(*handles: Runtime) -> None:
    for runtime in handles:
        runtime.free()


# ─── one forward per model ──

def test_handles_on_one_file_share_one_forward_and_the_last_to_let_go_releases_it(tiny_model):
    before = shared_forward.held()
    first, second = loaded(tiny_model), loaded(tiny_model)
    assert forward_of(first) is forward_of(second)
    assert scheduler_of(first) is scheduler_of(second)
    (key,) = set(shared_forward.held()) - set(before)
    assert shared_forward.held()[key] == 2
    first.free()
    assert shared_forward.held()[key] == 1
    second.reset()
    assert second.generate("Hello", 3, temperature=0.0, stop_at_eos=False).token_ids == alone(tiny_model, 1, 3, True)[0]
    second.free()
    assert shared_forward.held() == before


def test_replacing_a_shared_model_moves_the_lease_and_the_others_keep_theirs(tiny_model, other_tiny_model):
    before = shared_forward.held()
    first, second = loaded(tiny_model), loaded(tiny_model)
    first.replace_model(other_tiny_model)
    assert forward_of(first) is not forward_of(second)
    assert sum(shared_forward.held().values()) - sum(before.values()) == 2
    second.replace_model(tiny_model)   # the same file again: the same forward, not a rebuild
    assert second.generate("Hello", 3, temperature=0.0, stop_at_eos=False).token_ids == alone(tiny_model, 1, 3, True)[0]
    free_all(first, second)
    assert shared_forward.held() == before


def test_handles_with_different_thread_counts_each_get_their_own_forward(tiny_model):
    if usable_cores() < 2:
        pytest.skip("one usable core: every thread count is capped to 1")
    one, two = loaded(tiny_model, n_threads=1), loaded(tiny_model, n_threads=2)
    assert forward_of(one) is not forward_of(two)
    assert (forward_of(one).n_threads, forward_of(two).n_threads) == (1, 2)
    free_all(one, two)


def test_loads_and_frees_racing_on_threads_leave_the_registry_as_they_found_it(tiny_model):
    before = shared_forward.held()
    start = threading.Barrier(6)
    expected = alone(tiny_model, 1, 3, True)[0]
    outcomes: list[object] = []

    def churn():
        start.wait()
        for _ in range(10):
            runtime = loaded(tiny_model)
            outcomes.append(runtime.generate(PROMPTS[0], 3, temperature=0.0, stop_at_eos=False).token_ids)
            runtime.free()

    threads = [threading.Thread(target=churn) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [expected] * 60
    assert shared_forward.held() == before


def test_models_given_as_bytes_are_never_shared(tiny_model):
    data = tiny_model.read_bytes()
    first, second = loaded(data), loaded(data)
    assert forward_of(first) is not forward_of(second)
    free_all(first, second)


def test_a_failed_load_of_a_shared_file_leaves_the_others_model_untouched(tiny_model, monkeypatch):
    sharer = loaded(tiny_model)
    held = shared_forward.held()
    expected = alone(tiny_model, 1, 4, True)[0]

    def not_finite(model):
        raise InvalidModel("weights not finite (injected after the forward was leased)")

    failing = Runtime()
    failing.init_runtime(n_ctx=64, n_threads=1)
    monkeypatch.setattr(loading, "weights_are_finite", not_finite)
    with pytest.raises(InvalidModel):
        failing.load_model(tiny_model)
    monkeypatch.undo()
    assert shared_forward.held() == held   # the failed load's lease was given back
    assert sharer.generate(PROMPTS[0], 4, temperature=0.0, stop_at_eos=False).token_ids == expected
    free_all(sharer, failing)


def test_a_file_changed_under_a_shared_model_is_every_sharers_model_unavailable(tiny_model, tmp_path):
    path = tmp_path / "shared.gguf"
    shutil.copyfile(tiny_model, path)
    first, second = loaded(path), loaded(path)
    assert forward_of(first) is forward_of(second)
    with open(path, "r+b") as file:   # as `cp other path` does: the same inode, new bytes
        file.truncate(0)
        file.write(tiny_model.read_bytes()[: len(tiny_model.read_bytes()) // 3])
    for runtime in (first, second):
        with pytest.raises(ModelUnavailable, match="changed after it was loaded"):
            runtime.generate("Hello", 4, temperature=0.0)
    free_all(first, second)


# ─── batched decode steps give each handle what it gets alone ──

@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "seeded"])
def test_handles_generating_at_once_get_the_tokens_each_gets_alone(tiny_model, greedy):
    expected = alone(tiny_model, 4, 12, greedy)
    handles = [loaded(tiny_model) for _ in range(4)]
    scheduler = scheduler_of(handles[0])
    hold_first_pass(scheduler, 3)
    got = at_once(handles, [generating(i, 12, greedy) for i in range(4)])
    assert got == expected
    assert max(scheduler.pass_sizes) >= 3   # the held pass made the other three's steps one pass
    free_all(*handles)


def test_with_batching_off_every_step_runs_alone_and_the_tokens_are_the_same(tiny_model):
    expected = alone(tiny_model, 2, 8, True)
    handles = [loaded(tiny_model, batch_decode=False) for _ in range(2)]
    assert scheduler_of(handles[0]) is None and forward_of(handles[0]) is forward_of(handles[1])
    assert at_once(handles, [generating(i, 8, True) for i in range(2)]) == expected
    free_all(*handles)


def test_generate_next_token_steps_of_several_handles_batch_too(tiny_model):
    expected = alone(tiny_model, 3, 6, False)
    handles = [loaded(tiny_model) for _ in range(3)]
    scheduler = scheduler_of(handles[0])
    hold_first_pass(scheduler, 2)

    def step_by_step(i):
        def work(runtime):
            runtime.generate(PROMPTS[i], 0, stop_at_eos=False, **sampling(i, False))  # the prompt, no token yet
            return [runtime.generate_next_token().token_id for _ in range(6)]
        return work

    assert at_once(handles, [step_by_step(i) for i in range(3)]) == expected
    assert max(scheduler.pass_sizes) >= 2
    free_all(*handles)


# ─── one handle's cancel, reset, free or error mid-batch leaves the others' outputs unchanged ──

def test_one_handle_cancelled_mid_batch_stops_and_the_others_are_unchanged(tiny_model):
    expected = alone(tiny_model, 4, 12, False)
    handles = [loaded(tiny_model) for _ in range(4)]
    hold_first_pass(scheduler_of(handles[0]), 3)
    victim = handles[1]

    def cancel_at_third(event):
        if event.index == 2:
            victim.cancel()

    work = [generating(i, 12, False) for i in range(4)]
    work[1] = lambda runtime: runtime.generate(PROMPTS[1], 12, stop_at_eos=False, on_token=cancel_at_third,
                                               **sampling(1, False))
    got = at_once(handles, work)
    assert isinstance(got[1], Cancelled)
    assert victim._lifecycle.resident.request.generated_token_ids == expected[1][:3]
    assert [got[i] for i in (0, 2, 3)] == [expected[i] for i in (0, 2, 3)]
    free_all(*handles)


def test_one_handles_callback_failing_mid_batch_ends_its_request_alone(tiny_model):
    expected = alone(tiny_model, 4, 12, True)
    handles = [loaded(tiny_model) for _ in range(4)]
    hold_first_pass(scheduler_of(handles[0]), 3)

    def fail_at_third(event):
        if event.index == 2:
            raise RuntimeError("the caller's callback failed")

    work = [generating(i, 12, True) for i in range(4)]
    work[2] = generating(2, 12, True, on_token=fail_at_third)
    got = at_once(handles, work)
    assert isinstance(got[2], Cancelled) and isinstance(got[2].__cause__, RuntimeError)
    assert [got[i] for i in (0, 1, 3)] == [expected[i] for i in (0, 1, 3)]
    assert handles[2].generate(PROMPTS[2], 12, stop_at_eos=False, temperature=0.0).token_ids == expected[2]
    free_all(*handles)


@pytest.mark.parametrize("leave", ["reset", "free"])
def test_one_handle_leaving_mid_batch_leaves_the_others_unchanged(tiny_model, leave):
    expected = alone(tiny_model, 4, 12, False)
    handles = [loaded(tiny_model) for _ in range(4)]
    hold_first_pass(scheduler_of(handles[0]), 3)
    before = shared_forward.held()

    def three_steps_then_leave(runtime):
        runtime.generate(PROMPTS[3], 0, stop_at_eos=False, **sampling(3, False))
        tokens = [runtime.generate_next_token().token_id for _ in range(3)]
        getattr(runtime, leave)()
        return tokens

    work = [generating(i, 12, False) for i in range(3)] + [three_steps_then_leave]
    got = at_once(handles, work)
    assert got == expected[:3] + [expected[3][:3]]
    assert handles[3].state == (State.Freed if leave == "free" else State.Ready)
    if leave == "free":   # the freed handle gave its lease back; the others still hold theirs
        assert sum(shared_forward.held().values()) == sum(before.values()) - 1
    free_all(*handles)


def test_a_guard_refusing_one_handle_mid_batch_leaves_the_others_unchanged(tiny_model):
    expected = alone(tiny_model, 3, 12, True)
    handles = [loaded(tiny_model) for _ in range(3)]
    refusing = loaded(tiny_model)
    hold_first_pass(scheduler_of(handles[0]), 2)
    refused = []

    def meanwhile(event):  # while the batch runs: a bad prompt on a fourth handle is its own InvalidInput
        if event.index == 4 and not refused:
            try:
                refusing.generate([10**9], 4)
            except Exception as error:  # noqa: BLE001 - inspected below
                refused.append(error)

    work = [generating(0, 12, True, on_token=meanwhile)] + [generating(i, 12, True) for i in (1, 2)]
    assert at_once(handles, work) == expected
    assert isinstance(refused[0], InvalidInput)
    free_all(*handles, refusing)


def test_batch_decode_must_be_true_or_false(tiny_model):
    runtime = Runtime()
    with pytest.raises(InvalidInput, match="batch_decode"):
        runtime.init_runtime(batch_decode="yes")


# ─── the real model ──

@pytest.mark.real_model
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "seeded"])
@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_real_model_handles_generating_at_once_get_the_tokens_each_gets_alone(model, greedy, request):
    path = request.getfixturevalue(f"{model}_path")
    options = {"n_ctx": 128, "n_threads": 2}
    expected = alone(path, 4, 16, greedy, **options)
    handles = [loaded(path, **options) for _ in range(4)]
    scheduler = scheduler_of(handles[0])
    hold_first_pass(scheduler, 3)
    assert at_once(handles, [generating(i, 16, greedy) for i in range(4)]) == expected
    assert max(scheduler.pass_sizes) >= 3
    free_all(*handles)


def core_session_of(runtime: Runtime):
    return runtime._lifecycle.resident.session._core


def test_a_handle_whose_generate_ended_or_that_was_freed_is_not_waited_for_by_the_next_pass(tiny_model):
    """A leader gathers the last pass's sessions before its pass; a session whose request ended, or that was
    freed, asks for no step, so it is no longer among those expected back (it withdrew)."""
    finished, freed, stepping = loaded(tiny_model), loaded(tiny_model), loaded(tiny_model)
    scheduler = scheduler_of(stepping)
    try:
        finished.generate("Hello", 3, temperature=0.0, stop_at_eos=False)
        assert id(core_session_of(finished)) not in scheduler._awaited
        freed.generate("Hello", 2, temperature=0.0, stop_at_eos=False)
        freed.generate_next_token()  # a step of its own: its session is the one expected back now
        gone = core_session_of(freed)
        assert scheduler._awaited == {id(gone)}
        freed.free()
        assert not scheduler._awaited
        stepping.generate("Hello", 1, temperature=0.0, stop_at_eos=False)
        stepping.generate_next_token()
        assert scheduler._awaited == {id(core_session_of(stepping))}  # a step of an open request: expected back
    finally:
        for runtime in (finished, freed, stepping):
            runtime.free()
