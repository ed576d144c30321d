"""The kit's layers: planning is pure table work, execution runs it, and only the reference's
adapter knows the reference runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import ggufsm.conformance

KIT = Path(ggufsm.conformance.__file__).resolve().parent
# What running an implementation takes: none of it belongs in a plan.
RUNNING = ("threading", "subprocess", "multiprocessing", "signal", "socket", "queue", "time", "os", "hypothesis",
           "ggufsm.reference", "ggufsm.conformance.adapter", "ggufsm.conformance.adapters",
           "ggufsm.conformance.protocol", "ggufsm.conformance.run")


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, at any depth (lazy imports too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_planning_imports_only_the_table_and_other_planning_modules():
    allowed = ("ggufsm.spec", "ggufsm.conformance.plan")
    offending = {}
    for path in sorted((KIT / "plan").glob("*.py")):
        wrong = sorted(module for module in imported_modules(path)
                       if within(module, RUNNING) or (module.startswith("ggufsm") and not within(module, allowed)))
        if wrong:
            offending[path.name] = wrong
    assert offending == {}


def test_execution_is_the_only_layer_of_the_suite_that_starts_threads():
    users = {path.relative_to(KIT).as_posix() for path in KIT.rglob("*.py") if "threading" in imported_modules(path)}
    assert {user for user in users if user.startswith(("plan/", "fixtures/"))} == set()
    assert "run/overlap.py" in users


def test_only_the_reference_adapter_imports_the_reference_runtime():
    importers = {path.relative_to(KIT).as_posix() for path in KIT.rglob("*.py")
                 if any(within(module, ("ggufsm.reference",)) for module in imported_modules(path))}
    assert importers == {"adapters/reference.py"}
