"""The handle is decided by the table's machine: its state is the machine's, its guards are the table's
guards and are computed lazily, transient states are entered and left through the machine, and a named
error inside a guard takes the table's failure path. Proven on the reference Runtime with a tiny model."""

from __future__ import annotations

import threading

import pytest

from ggufsm.reference.runtime import Runtime, commands
from ggufsm.reference.runtime.commands import Cancel
from ggufsm.reference.runtime.guards import Guards
from ggufsm.spec import errors, load_spec
from ggufsm.spec.guard import STATE_ATTRIBUTE, StepKind, lifecycle_machine
from ggufsm.spec.names import Guard, Operation, State

GREEDY = {"temperature": 0.0}
PROMPT = "hello world"


def steps_of(runtime: Runtime) -> list:
    """Record every step the machine takes on this handle."""
    lifecycle, taken = runtime._lifecycle, []
    fire = lifecycle._fire

    def recording(operation, command):
        step = fire(operation, command)
        taken.append(step)
        return step

    lifecycle._fire = recording
    return taken


# ─── where the state lives ───────────────────────────────────────────────────


def test_the_handles_state_is_the_attribute_the_tables_machine_keeps(ready_runtime):
    lifecycle = ready_runtime._lifecycle
    assert lifecycle.machine is lifecycle_machine(load_spec())
    assert getattr(lifecycle, STATE_ATTRIBUTE) == ready_runtime.state == State.Ready
    ready_runtime.generate(PROMPT, 2, stop_at_eos=False, **GREEDY)
    assert getattr(lifecycle, STATE_ATTRIBUTE) == State.ContinuationReady


def test_handles_share_the_machine_and_hold_their_own_states(ready_runtime):
    other = Runtime()
    assert other._lifecycle.machine is ready_runtime._lifecycle.machine
    assert (other.state, ready_runtime.state) == (State.Uninitialized, State.Ready)


def test_there_is_one_guard_function_per_table_guard_and_nothing_else():
    functions = {name for name, value in vars(Guards).items() if callable(value) and not name.startswith("_")}
    assert functions == {guard.value for guard in Guard}


# ─── the machine's path ──────────────────────────────────────────────────────


def test_lazy_init_is_a_step_of_the_machine_before_the_initialized_cell():
    runtime = Runtime()
    taken = steps_of(runtime)
    with pytest.raises(errors.ModelNotLoaded):
        runtime.generate(PROMPT)
    assert [(step.kind, step.source, step.to) for step in taken] == [
        (StepKind.LAZY_INIT, State.Uninitialized, State.Initialized),
        (StepKind.FINISH, State.Initialized, State.Initialized)]


def test_a_generate_enters_generating_and_leaves_it_through_the_machine(ready_runtime):
    taken, seen = steps_of(ready_runtime), []

    def on_token(event):
        seen.append((ready_runtime.state, ready_runtime.diagnostics()["state"], "request" in ready_runtime.diagnostics()["resident"]))

    ready_runtime.generate(PROMPT, 2, on_token=on_token, stop_at_eos=False, **GREEDY)
    assert seen == [(State.Generating, State.Generating, True)] * 2
    assert [(step.kind, step.to) for step in taken] == [(StepKind.ENTER, State.Generating),
                                                        (StepKind.FINISH, State.ContinuationReady)]


def test_a_load_reads_the_file_while_loading(monkeypatch, tiny_model):
    runtime, states = Runtime(), []
    load = commands.load_off_to_the_side

    def watched(source, config):
        states.append(runtime.state)
        return load(source, config)

    monkeypatch.setattr(commands, "load_off_to_the_side", watched)
    runtime.load_model(tiny_model)
    assert states == [State.Loading] and runtime.state == State.Ready


def test_an_unexpected_exception_in_the_work_leaves_no_transient_state(ready_runtime):
    def interrupt(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ready_runtime.generate(PROMPT, 4, on_token=interrupt, stop_at_eos=False, **GREEDY)
    assert ready_runtime.state == State.Ready
    assert "request" not in ready_runtime.diagnostics()["resident"]
    assert ready_runtime.generate(PROMPT, 2, stop_at_eos=False, **GREEDY).finish_reason == "length"


# ─── lazy guards ─────────────────────────────────────────────────────────────


def test_a_refused_load_never_reads_the_file(monkeypatch, ready_runtime, other_tiny_model):
    def never(source, config):
        raise AssertionError("a refused load read the file")

    monkeypatch.setattr(commands, "load_off_to_the_side", never)
    with pytest.raises(errors.InvalidState):
        ready_runtime.load_model(other_tiny_model)


def test_a_malformed_prompt_is_never_measured(ready_runtime):
    def never(command):
        raise AssertionError("prompt_fits was computed for a malformed request")

    ready_runtime._lifecycle.prompt_fits = never  # resolved by name on the handle, as the machine does
    with pytest.raises(errors.InvalidInput, match="max_tokens"):
        ready_runtime.generate(PROMPT, -1)


# ─── named errors inside guards ──────────────────────────────────────────────


def test_a_named_error_inside_a_guard_takes_the_tables_failure_path(monkeypatch, ready_runtime):
    def refuse(text, *args, **kwargs):
        raise errors.InvalidInput("the tokenizer refused the text at byte 3")

    monkeypatch.setattr(ready_runtime._model.tokenizer, "encode", refuse)
    errors_before = ready_runtime.diagnostics()["counters"]["errors"]
    with pytest.raises(errors.InvalidInput, match="byte 3") as raised:
        ready_runtime.generate(PROMPT, 2)
    assert raised.value.state_after == ready_runtime.state == State.RecoverableError
    assert ready_runtime.last_error is raised.value
    assert ready_runtime.diagnostics()["counters"]["errors"] == errors_before + 1


def test_the_table_names_the_error_a_guard_raised_under_another_name(monkeypatch, ready_runtime):
    def overflow(text, *args, **kwargs):
        raise errors.ContextOverflow("raised inside input_valid")

    monkeypatch.setattr(ready_runtime._model.tokenizer, "encode", overflow)
    with pytest.raises(errors.InvalidInput, match="raised inside input_valid") as raised:
        ready_runtime.generate(PROMPT, 2)
    assert isinstance(raised.value.__cause__, errors.ContextOverflow)


def test_a_guard_whose_false_value_succeeds_must_not_raise(ready_runtime):
    def broken(command):
        raise errors.InvalidInput("cancelled cannot fail")

    ready_runtime._lifecycle.cancelled = broken
    with pytest.raises(RuntimeError, match="cancelled guard raised"):
        ready_runtime.generate(PROMPT, 2, stop_at_eos=False, **GREEDY)
    assert ready_runtime.state == State.Ready  # never a silent success, and no transient state left behind


# ─── cancel ──────────────────────────────────────────────────────────────────


def test_a_cancel_that_arrives_late_never_touches_a_later_request(ready_runtime):
    ready_runtime.generate(PROMPT, 2, stop_at_eos=False, **GREEDY)
    stale = Cancel(ready_runtime._lifecycle.resident.request)  # saw that request running; arrives only now

    def on_token(event):
        if event.index == 0:
            ready_runtime._lifecycle._fire(Operation.cancel, stale)

    later = ready_runtime.generate(PROMPT, 5, on_token=on_token, stop_at_eos=False, **GREEDY)
    assert later.finish_reason == "length" and len(later.token_ids) == 5


def test_cancel_and_queries_answer_while_a_command_holds_the_handle(ready_runtime):
    answers, asked = [], threading.Event()

    def from_another_thread():
        answers.append((ready_runtime.state, ready_runtime.diagnostics()["state"], ready_runtime.cancel()))
        asked.set()

    def on_token(event):
        if event.index == 0:
            threading.Thread(target=from_another_thread).start()
            asked.wait()  # the generate holds the lock: anything that waited on it would never answer

    with pytest.raises(errors.Cancelled):
        ready_runtime.generate(PROMPT, 50, on_token=on_token, stop_at_eos=False, **GREEDY)
    assert answers == [(State.Generating, State.Generating, True)]


# ─── the table's effects the runtime once missed ─────────────────────────────


def test_a_valid_set_sampling_in_recoverable_error_clears_the_last_error(ready_runtime):
    with pytest.raises(errors.InvalidSampling):
        ready_runtime.set_sampling(top_p=1.5)
    ready_runtime.set_sampling(top_p=0.9)
    assert ready_runtime.state == State.Ready and ready_runtime.last_error is None


def test_set_sampling_with_a_request_open_applies_from_the_next_sampled_token(ready_runtime, tiny_model):
    first = ready_runtime.generate(PROMPT, 3, stop_at_eos=False, **GREEDY)
    flat = {"temperature": 100.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 11}  # near uniform, seeded
    ready_runtime.set_sampling(**flat)
    assert ready_runtime.state == State.ContinuationReady
    more = [ready_runtime.generate_next_token().token_id for _ in range(4)]
    fresh = Runtime()
    fresh.init_runtime(n_ctx=64, n_threads=1)
    fresh.load_model(tiny_model)
    expected = fresh.generate(first.prompt_token_ids + first.token_ids, 4, stop_at_eos=False, **flat).token_ids
    greedy = fresh.generate(first.prompt_token_ids + first.token_ids, 4, stop_at_eos=False, **GREEDY).token_ids
    fresh.free()
    assert more == expected != greedy
