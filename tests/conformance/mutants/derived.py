"""Mutants derived from the table: one per edge of every range, per effect, per must-wait cell.

The hand-written mutants (the other modules) each break a rule someone
thought of. These are generated from ``spec/lifecycle.yaml`` itself, so the
list of rules they break is the table's, complete by construction:

- **edges** (``ranges``): for every bound of every numeric value a guard
  checks (``config_valid``, ``sampling_valid``, ``input_valid``'s
  ``max_tokens``), one runtime that refuses the
  last value inside the bound and one that accepts the first value outside
  it (the value "just past", by the range's ``step``); and for every nullable
  value, one that refuses null;
- **effects** (each branch's ``effects``): for every operation and every
  effect it has somewhere in the table (``last_error: set``, ``request:
  cleared``, ``sampling: applied`` ...), one runtime that does everything else
  right but leaves that datum as it was on every branch naming that effect;
- **must-wait cells** (``serialized``): for every command and transient
  state whose cell says the call waits, one runtime that refuses it at once
  with InvalidState instead.

Names say what is broken: ``TopPLowerEdgeAcceptsOutside``,
``ResetSkipsLastErrorCleared``, ``SetSamplingDoesNotWaitInLoading``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from ggufsm.reference.runtime.commands import Command, InstallModel
from ggufsm.reference.runtime.config import RuntimeConfig
from ggufsm.reference.sampling import SamplingConfig
from ggufsm.spec import load_spec
from ggufsm.spec.errors import InvalidInput, error_class
from ggufsm.spec.names import ErrorCode, Guard, ResidentDatum, State
from ggufsm.spec.ranges import in_range, range_text
from ggufsm.spec.table import Branch, Interval, ValueRange
from mutants.base import Mutant, MutantLifecycle, MutantRuntime, runtime_with
from mutants.rules import Rule, cell

SPEC = load_spec()


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


# ─── edges ──


@dataclass(frozen=True)
class Flip:
    """One value whose verdict the mutant's guard flips: ``accepts`` an out-of-range value, or refuses an in-range one."""

    guard: str
    name: str
    value: Any
    accepts: bool

    def judge(self, value_range: ValueRange, value: Any) -> bool:
        right = in_range(value_range, value)
        same = value is None if self.value is None else (
            value is not None and not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isclose(value, self.value, rel_tol=0, abs_tol=1e-12))
        return (not right) if same else right


def edge_flips() -> Iterator[tuple[str, Flip]]:
    """(mutant name, flip) for every bound of every numeric range, and every nullable value."""
    for guard in (Guard.config_valid, Guard.sampling_valid, Guard.input_valid):
        for name, value_range in SPEC.ranges[guard].values.items():
            if value_range.range is None:
                continue
            integer = value_range.type == "integer"
            for side, bound_name in (("Lower", "lower"), ("Upper", "upper")):
                bound = getattr(value_range.range, bound_name)
                if bound is None or bound.symbolic:
                    continue
                inside, outside = _inside_outside(value_range.range, bound_name, integer, value_range.step)
                yield f"{_camel(name)}{side}EdgeRefusesInside", Flip(guard, name, inside, accepts=False)
                yield f"{_camel(name)}{side}EdgeAcceptsOutside", Flip(guard, name, outside, accepts=True)
            if value_range.nullable:
                yield f"{_camel(name)}RefusesNull", Flip(guard, name, None, accepts=False)


def _inside_outside(interval: Interval, side: str, integer: bool, step: float | None) -> tuple[Any, Any]:
    """The last value inside the bound and the first outside it, as the table's step measures "just past"."""
    bound = getattr(interval, side)
    delta = 1 if integer else (step or 0.01)
    outward = -1 if side == "lower" else +1
    edge = bound.value

    def rounded(value: float) -> Any:
        return int(value) if integer else round(value, 10)

    if bound.closed:
        return rounded(edge), rounded(edge + outward * delta)
    return rounded(edge - outward * delta), rounded(edge)


class _FlippedSampling(SamplingConfig):
    flip: Flip

    def _checks(self):
        for name, value, ok, expected in super()._checks():
            if name == self.flip.name:
                ok = self.flip.judge(SPEC.ranges[Guard.sampling_valid].values[name], value)
            yield name, value, ok, expected


def _edge_lifecycle(flip: Flip) -> type[MutantLifecycle]:
    if flip.guard == Guard.sampling_valid:
        sampling = type("FlippedSampling", (_FlippedSampling,), {"flip": flip})

        def sampling_valid(self, command) -> bool:
            candidate = command.candidate(self.resident.sampling)
            command.sampling = sampling(**asdict(candidate)).validated()
            return True

        return type("EdgeLifecycle", (MutantLifecycle,), {"sampling_valid": sampling_valid})

    if flip.guard == Guard.input_valid:   # a generate's numeric argument (max_tokens), read off the command
        def input_valid(self, command) -> bool:
            value_range, value = SPEC.ranges[Guard.input_valid].values[flip.name], getattr(command, flip.name)
            if flip.judge(value_range, value) != in_range(value_range, value):
                if not flip.accepts:
                    raise InvalidInput(f"{flip.name}={value!r} is out of range: expected {range_text(value_range)}")
                setattr(command, flip.name, _clamped(value_range, value))   # accepted, and used as the nearest
            return MutantLifecycle.input_valid(self, command)

        return type("EdgeLifecycle", (MutantLifecycle,), {"input_valid": input_valid})

    def config_valid(self, command) -> bool:
        config: RuntimeConfig = command.config
        ranges = SPEC.ranges[Guard.config_valid].values
        problems = [f"{name}={getattr(config, name)!r} is out of range: expected {range_text(value_range)}"
                    for name, value_range in ranges.items()
                    if not (flip.judge(value_range, getattr(config, name)) if name == flip.name
                            else in_range(value_range, getattr(config, name)))]
        if not problems and flip.accepts and not in_range(ranges[flip.name], getattr(config, flip.name)):
            # accepted, and used as the nearest value in range (a runtime that clamps instead of refusing)
            command.config = replace(config, **{flip.name: _clamped(ranges[flip.name], getattr(config, flip.name))})
        return command.holds(not problems, "; ".join(problems))

    return type("EdgeLifecycle", (MutantLifecycle,), {"config_valid": config_valid})


def _clamped(value_range: ValueRange, value: Any) -> Any:
    assert value_range.range is not None
    lower, upper = value_range.range.lower, value_range.range.upper
    if value is None:
        return value
    if lower is not None and not lower.symbolic and value <= lower.value:  # type: ignore[operator]
        return lower.value if lower.closed else lower.value + 1
    if upper is not None and not upper.symbolic and value >= upper.value:  # type: ignore[operator]
        return upper.value if upper.closed else upper.value - 1
    return value


def _edge_mutant(name: str, flip: Flip) -> type[Mutant]:
    value_range = SPEC.ranges[flip.guard].values[flip.name]
    what = "null" if flip.value is None else repr(flip.value)
    doc = (f"{flip.guard} {'accepts' if flip.accepts else 'refuses'} {flip.name}={what}, "
           f"{'outside' if flip.accepts else 'inside'} its range {value_range.range.text if value_range.range else ''}"
           f"{' (null is in range)' if flip.value is None else ''}; every other value is judged right.")
    rule = Rule(f"ranges.{flip.guard}.{flip.name}", f"{flip.name}: {range_text(value_range)}")
    return type(name, (Mutant,), {"__doc__": doc, "__module__": __name__, "kind": "edges", "breaks": rule,
                                  "runtime_class": runtime_with(lifecycle_class=_edge_lifecycle(flip))})


# ─── effects ──

UNDOABLE = {  # effect field -> the values a mutant can leave undone by putting the datum back as it was
    "last_error": ("set", "cleared"),
    "request": ("new", "cleared"),
    "config": ("applied",),
    "sampling": ("applied",),
    "model": ("installed", "released"),
}


def effect_combinations() -> Iterator[tuple[str, str, str]]:
    """(operation, effect field, value) for every effect an operation has on some branch, in table order."""
    seen: dict[tuple[str, str, str], None] = {}
    for branch in SPEC.all_branches():
        for field_name, value in branch.outcome.changes().items():
            if value in UNDOABLE.get(field_name, ()):
                seen.setdefault((branch.operation, field_name, value), None)
    yield from sorted(seen, key=lambda key: (list(SPEC.operations).index(key[0]), key[1], key[2]))


def _branch_taken(spec, origin: str, operation: str, command: Command) -> Branch | None:
    try:
        return spec.branch(origin, operation, command.values)
    except (LookupError, ValueError):
        return None


def _effect_lifecycle(operation: str, field_name: str, value: str) -> type[MutantLifecycle]:
    def names_the_effect(branch: Branch | None) -> bool:
        return branch is not None and branch.outcome.effects.get(field_name) == value

    class SkipsEffect(MutantLifecycle):
        """Does the operation's work, then puts the datum back as it was where the branch names the effect."""

        def perform(self, op, command) -> None:
            if op != operation:
                return super().perform(op, command)
            origin, resident = self.state, self.resident
            before = {"last_error": resident.last_error, "request": resident.request, "config": resident.config,
                      "sampling": resident.sampling}
            command._skip_origin = origin  # for keep_allowed and the install command below
            try:
                super().perform(op, command)
            finally:
                if field_name in before and names_the_effect(_branch_taken(self.spec, origin, op, command)):
                    self._undo(before)

        def _undo(self, before: dict) -> None:
            resident = self.resident
            if field_name == "sampling":
                resident.sampling = before["sampling"]
                if resident.request is not None:
                    resident.request.sampler.reconfigure(before["sampling"])
            else:
                setattr(resident, field_name, before[field_name])

        def keep_allowed(self, command) -> None:
            origin = getattr(command, "_skip_origin", None)
            if (field_name, value) == ("model", "released") and origin is not None and \
                    names_the_effect(_branch_taken(self.spec, origin, operation, command)):
                self.resident.keep_only(self._allowed[self.state] | {ResidentDatum.model})  # the model is not released
                return
            super().keep_allowed(command)

    return SkipsEffect


class _InstallKeepsPrevious(InstallModel):
    """A load that succeeds, whose model is then dropped: the previous model (if any) stays installed."""

    def commit(self, resident) -> None:
        self.summary = dict(resident.model.summary) if resident.model is not None else {}
        self.load.discard()


def _runtime_installing_nothing(operation: str) -> type[MutantRuntime]:
    class InstallsNothing(MutantRuntime):
        def _install(self, op, source) -> dict:
            if op != operation:
                return super()._install(op, source)
            command = _InstallKeepsPrevious(source)
            self._lifecycle.perform(op, command)
            return command.summary

    return InstallsNothing


def _effect_mutant(operation: str, field_name: str, value: str) -> tuple[str, type[Mutant]]:
    name = f"{_camel(operation)}Skips{_camel(field_name)}{_camel(value)}"
    branches = [branch for branch in SPEC.all_branches()
                if branch.operation == operation and branch.outcome.effects.get(field_name) == value]
    meaning = SPEC.effect_fields[field_name][value]
    doc = (f"{operation} leaves {field_name} as it was where the table says \"{field_name}: {value}\" "
           f"({meaning}); everything else as the reference does. {len(branches)} branch(es) name it, "
           f"e.g. {branches[0].source}.")
    rule = Rule(f"effects.{field_name}.{value} ({operation})", f"{meaning}: {', '.join(b.source for b in branches)}")
    if (field_name, value) == ("model", "installed"):
        runtime = _runtime_installing_nothing(operation)
    else:
        runtime = runtime_with(lifecycle_class=_effect_lifecycle(operation, field_name, value))
    return name, type(name, (Mutant,), {"__doc__": doc, "__module__": __name__, "kind": "effects (derived)",
                                        "breaks": rule, "runtime_class": runtime})


# ─── must-wait cells ──


def must_wait_cells() -> Iterator[tuple[str, str]]:
    seen = {(branch.state, branch.operation): None for branch in SPEC.all_branches() if branch.outcome.serialized}
    yield from seen


def _refusing_lifecycle(state: str, operation: str) -> type[MutantLifecycle]:
    class RefusesInsteadOfWaiting(MutantLifecycle):
        def perform(self, op, command) -> None:
            if op == operation and self.state == state and self.lock.locked():
                raise error_class(ErrorCode.InvalidState)(f"{op} is not allowed while {state} (refused, not waited)",
                                                          state_after=state)
            super().perform(op, command)

    return RefusesInsteadOfWaiting


def _must_wait_mutant(state: str, operation: str) -> tuple[str, type[Mutant]]:
    name = f"{_camel(operation)}DoesNotWaitIn{state}"
    doc = (f"{operation} sent while another command holds the handle in {state} is refused at once with "
           f"InvalidState instead of waiting for it (the table: serialized).")
    return name, type(name, (Mutant,), {"__doc__": doc, "__module__": __name__, "kind": "must-wait (derived)",
                                        "breaks": cell(state, operation),
                                        "runtime_class": runtime_with(lifecycle_class=_refusing_lifecycle(state, operation))})


# ─── the set ──

def _build() -> dict[str, type[Mutant]]:
    built: dict[str, type[Mutant]] = {}
    for name, flip in edge_flips():
        built[name] = _edge_mutant(name, flip)
    for operation, field_name, value in effect_combinations():
        name, mutant = _effect_mutant(operation, field_name, value)
        built[name] = mutant
    for state, operation in must_wait_cells():
        name, mutant = _must_wait_mutant(state, operation)
        built[name] = mutant
    return built


BUILT = _build()
globals().update(BUILT)   # importable as python:mutants.derived:NAME
MUTANTS: tuple[type[Mutant], ...] = tuple(BUILT.values())
assert not {State.Loading, State.Generating} - {state for state, _ in must_wait_cells()}
