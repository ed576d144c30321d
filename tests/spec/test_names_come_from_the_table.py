"""No room types the table's vocabulary by hand: states, errors, guards and finish reasons come from
the generated enums (spec/names.py) and error classes (spec/errors.py), which a renamed entry breaks at
import time, so the table stays the one place they are written.

Each room's sources are parsed and every string constant compared with the table's names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ggufsm.spec.names import ErrorCode, FinishReason, Guard, State

REPOSITORY = Path(__file__).resolve().parents[2]

VOCABULARIES = (State, ErrorCode, Guard, FinishReason)
TABLE_NAMES = {member.value: f"{vocabulary.__name__}.{member.name}" for vocabulary in VOCABULARIES for member in vocabulary}

# Words that are also the names of data fields: allowed as a dict key, a subscript or a .get() key, nowhere else.
FIELD_NAMES = {
    "context": "diagnostics()['context'] (the protocol's context-window field) shares the finish reason's name",
    "stop": "llama-server's stream events carry a boolean field 'stop' (the peer's JSON, not the finish reason)",
}

ROOMS = ["reference", "conformance"]
NOT_YET: dict[str, str] = {}


def hand_typed_names(source: str, filename: str = "<source>") -> list[str]:
    """Every string constant in the source that equals a table name, as 'file:line: ...'."""
    tree = ast.parse(source, filename)
    as_fields = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            as_fields.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            as_fields.add(id(node.slice))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
            as_fields.add(id(node.args[0]))
    names = [node for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in TABLE_NAMES
             and not (node.value in FIELD_NAMES and id(node) in as_fields)]
    names.sort(key=lambda node: (node.lineno, node.col_offset))
    return [f"{filename}:{node.lineno}: {node.value!r} (use {TABLE_NAMES[node.value]})" for node in names]


@pytest.mark.parametrize("room", ROOMS)
def test_no_room_types_a_state_error_guard_or_finish_reason_name(room):
    if room in NOT_YET:
        pytest.skip(NOT_YET[room])
    found = []
    for path in sorted((REPOSITORY / room).rglob("*.py")):
        found += hand_typed_names(path.read_text(encoding="utf-8"), str(path.relative_to(REPOSITORY)))
    assert found == [], "\n".join(found)


def test_the_scan_finds_names_in_any_expression_and_allows_field_names_as_keys():
    source = (
        'state = "Ready"\n'
        'if error.code == "InvalidModel": pass\n'
        'guards = {"prompt_fits": True}\n'
        'reason = "context"\n'
        'used = diagnostics["context"]["used"]\n'
        'snapshot = {"context": 1}\n'
        'stopped = event.get("stop")\n'
        'reason = "stop"\n'
        'text = "Ready to go"\n'
    )
    assert [line.split(": ", 1)[1] for line in hand_typed_names(source)] == [
        "'Ready' (use State.Ready)",
        "'InvalidModel' (use ErrorCode.InvalidModel)",
        "'prompt_fits' (use Guard.prompt_fits)",
        "'context' (use FinishReason.context)",
        "'stop' (use FinishReason.stop)",
    ]
