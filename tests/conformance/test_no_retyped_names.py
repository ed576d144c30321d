"""No state, error, guard or finish-reason name is typed by hand in the kit: every one comes from
the table, through ggufsm.spec.names (or the loaded Spec)."""

from __future__ import annotations

import ast
from pathlib import Path

import ggufsm.conformance
from ggufsm.spec import load_spec

KIT = Path(ggufsm.conformance.__file__).resolve().parent


def table_names() -> set[str]:
    spec = load_spec()
    return {*spec.states, *spec.errors, *spec.guards, *spec.finish_reasons}


def retyped_names(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every string literal equal to one of `names`."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]


def test_no_source_of_the_kit_types_a_name_of_the_table():
    names = table_names()
    found = [f"{path.relative_to(KIT.parent)}:{line}: {name!r}"
             for path in sorted(KIT.rglob("*.py")) for line, name in retyped_names(path.read_text("utf-8"), names)]
    assert found == [], "use ggufsm.spec.names (State, ErrorCode, Guard, FinishReason) instead:\n" + "\n".join(found)


def test_the_scan_finds_a_retyped_name():
    source = 'state = "Ready"\nif error == "ContextOverflow": pass\nhelp = "Ready to go"\n'
    assert retyped_names(source, table_names()) == [(1, "Ready"), (2, "ContextOverflow")]
