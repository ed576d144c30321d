"""Hand-written mutants of the reference runtime: each breaks exactly one rule of the table or the seed.

They measure the conformance suite's power (docs/conformance/power.md): a
suite that is worth its name fails every one of them. Each is an adapter
factory (``python:mutants.KIND:ClassName``, with tests/conformance on the
path) built from the REAL reference runtime with one part swapped (see
base.py); its docstring says what is broken, ``breaks`` the rule (looked up in
the table), ``observable`` how it can be seen.
"""

from __future__ import annotations

from mutants import boundaries, concurrency, derived, determinism, effects, errors, handles, memory, outputs, reporting
from mutants.base import Mutant

ALL: tuple[type[Mutant], ...] = (
    *effects.MUTANTS, *outputs.MUTANTS, *boundaries.MUTANTS, *determinism.MUTANTS, *handles.MUTANTS,
    *concurrency.MUTANTS, *memory.MUTANTS, *reporting.MUTANTS, *errors.MUTANTS,
)
# Generated from the table (derived.py): every range's edges, every operation's effects, every must-wait cell.
DERIVED: tuple[type[Mutant], ...] = derived.MUTANTS
BY_NAME: dict[str, type[Mutant]] = {mutant.__name__: mutant for mutant in (*ALL, *DERIVED)}
assert len(BY_NAME) == len(ALL) + len(DERIVED), "two mutants share a name"
