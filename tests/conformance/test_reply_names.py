"""An in-process reply reads as the protocol's: the table's names as plain strings, never its enums
(a message built from an in-process reply shows `'Ready'`, as one from serve-stdio does, not
`<State.Ready: 'Ready'>`)."""

from __future__ import annotations

import shlex
import sys

from ggufsm.conformance.adapter import Reply, open_implementation, plain
from ggufsm.conformance.adapters.reference import make_adapter
from ggufsm.spec.names import ErrorCode, Operation, State

SERVE_STDIO = f"{shlex.quote(sys.executable)} -m ggufsm serve-stdio"
# Queries and commands whose replies carry a state, a state name as the value, an error code and a
# state_after: each comes back from the table's enums in the reference.
CALLS = [
    (Operation.state, {}),
    (Operation.init_runtime, {"n_ctx": 128, "n_threads": 1}),
    (Operation.state, {}),
    (Operation.load_model, {"path": "/nonexistent/ggufsm-reply-names.gguf"}),
    (Operation.state, {}),
    (Operation.last_error, {}),
]


def _over_the_protocol() -> list[Reply]:
    with open_implementation(SERVE_STDIO) as implementation:
        adapter = implementation.open()
        return [adapter.call(op, dict(args)) for op, args in CALLS]


def _in_process() -> list[Reply]:
    adapter = make_adapter()
    try:
        return [adapter.call(op, dict(args)) for op, args in CALLS]
    finally:
        adapter.close()


def test_in_process_replies_carry_the_same_plain_names_as_serve_stdio():
    local, remote = _in_process(), _over_the_protocol()
    assert local == remote
    assert repr(local[0].value) == repr(State.Uninitialized.value)   # 'Uninitialized', as a message shows it
    assert type(local[4].state) is str and type(local[3].error.code) is str and type(local[3].error.state_after) is str
    assert local[3].error.code == ErrorCode.ModelUnavailable


def test_plain_turns_every_enum_in_a_value_into_its_name_and_keeps_the_rest():
    value = {"state": State.Ready, "codes": [ErrorCode.InvalidInput, "x", 3], "nested": ({"s": State.Freed},)}
    assert plain(value) == {"state": "Ready", "codes": ["InvalidInput", "x", 3], "nested": [{"s": "Freed"}]}
    assert repr(plain(value)["state"]) == "'Ready'"
