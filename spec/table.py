"""The lifecycle table, loaded and normalised into small frozen values.

``lifecycle.yaml`` is written for people: shared outcomes behind YAML
anchors, nested ``cases`` whose conditions accumulate, ``to: same``,
``lazy_init`` cells that borrow the Initialized cell, and query operations
answered by one ``query_outcome``. This module turns it into what code wants:
for every (state, operation) an ordered tuple of :class:`Branch`, each a
conjunction of guard values and one resolved :class:`Outcome`.

``load_spec()`` also runs the checker (``ggufsm.spec.check``) and refuses a
table with defects, so a :class:`Spec` in hand is always a sound one; a
sound file's normal form (the Spec as plain data, :func:`normal_form`) is
remembered across processes, keyed by the file's bytes and the checker's
code (``table_cache.py``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from ggufsm.spec import table_cache

TABLE_PATH = Path(__file__).with_name("lifecycle.yaml")

# The table's header defines lazy_init as "the Initialized cell of the same
# operation applies", so that state's name is part of the format.
LAZY_INIT_STATE = "Initialized"
SAME = "same"
OUTCOME_FIELDS = ("to", "error", "via", "effect", "effects", "lazy_init", "serialized")
BRANCH_FIELDS = (*OUTCOME_FIELDS, "when", "cases")
OPERATION_KINDS = ("command", "control", "query")
# When a guard's value can be known: before the operation changes anything, or
# only while it runs in its transient `via` state (from what its work found).
BEFORE, WHILE_RUNNING = "before", "while_running"
GUARD_KNOWN = (BEFORE, WHILE_RUNNING)
GUARD_FIELDS = ("name", "known", "needs", "description")
# Every effect field has this value unless an outcome names another (the table's `effects` header).
KEPT = "kept"
# What a lazy init does to the configuration, whatever the borrowed Initialized cell does.
LAZY_INIT_EFFECTS = {"config": "applied"}
RANGE_FIELDS = ("arguments_of", "values")
VALUE_FIELDS = ("type", "range", "step", "nullable", "null_means", "meaning", "length", "token_ids")
VALUE_TYPES = ("integer", "number", "prompt")
# Names a range bound may use instead of a number: resolved per handle and model.
SYMBOLIC_BOUNDS = ("n_ctx", "n_vocab")


class SpecError(ValueError):
    """The table cannot be read as a lifecycle table (the message says where)."""


class SpecDefects(SpecError):
    """The checker found defects; ``defects`` lists them."""

    def __init__(self, defects):
        self.defects = tuple(defects)
        lines = "\n".join(f"  {defect}" for defect in self.defects)
        super().__init__(f"the lifecycle table has {len(self.defects)} defect(s):\n{lines}")


class UnknownName(LookupError):
    """A state or operation name the table does not define."""


# ─── the values ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class State:
    name: str
    description: str
    transient: bool
    required: frozenset[str]
    optional: frozenset[str]
    allowed_summary: str = ""


@dataclass(frozen=True)
class Operation:
    name: str
    kind: str  # command | control | query
    description: str

    @property
    def is_query(self) -> bool:
        return self.kind == "query"


@dataclass(frozen=True)
class Guard:
    name: str
    description: str
    known: str = BEFORE  # one of GUARD_KNOWN
    needs: tuple[str, ...] = ()  # guards that must hold before this one can be computed

    @property
    def while_running(self) -> bool:
        return self.known == WHILE_RUNNING


@dataclass(frozen=True)
class ErrorCode:
    name: str
    meaning: str


@dataclass(frozen=True)
class Outcome:
    """What one operation does from one state under one guard assignment."""

    to: str  # the state after, resolved (never "same")
    error: str | None = None
    via: str | None = None
    lazy_init: bool = False
    serialized: bool = False
    effect: str = ""
    # field -> value for every field of the table's `effects` (the ones an outcome does not name: "kept")
    effects: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def changes(self) -> dict[str, str]:
        """The effects that are not `kept`, in the table's field order."""
        return {name: value for name, value in self.effects.items() if value != KEPT}


@dataclass(frozen=True)
class Bound:
    """One end of a range: a number, or a name resolved per handle and model (n_ctx, n_vocab)."""

    value: int | float | str
    closed: bool

    @property
    def symbolic(self) -> bool:
        return isinstance(self.value, str)


@dataclass(frozen=True)
class Interval:
    """A range as the table writes it: "[8, 1048576]", "(0, 1]", "[0, )", "[0, n_vocab)"."""

    lower: Bound | None
    upper: Bound | None
    text: str

    def resolve(self, names: Mapping[str, int]) -> Interval:
        """The same range with named bounds replaced by their values (KeyError naming what is missing)."""
        def number(bound: Bound | None) -> Bound | None:
            if bound is None or not bound.symbolic:
                return bound
            return Bound(names[str(bound.value)], bound.closed)
        return Interval(number(self.lower), number(self.upper), self.text)

    def contains(self, value: float) -> bool:
        lower, upper = self.lower, self.upper
        if lower is not None and (value < lower.value or (value == lower.value and not lower.closed)):  # type: ignore[operator]
            return False
        return upper is None or value < upper.value or (value == upper.value and upper.closed)  # type: ignore[operator]


@dataclass(frozen=True)
class ValueRange:
    """What one argument a guard checks may be."""

    name: str
    type: str                       # integer | number | prompt
    range: Interval | None = None   # integer, number
    step: float | None = None       # a number's "just past an edge"
    nullable: bool = False
    null_means: str = ""
    meaning: str = ""
    length: Interval | None = None      # prompt: its length (characters or token ids; in tokens once encoded)
    token_ids: Interval | None = None   # prompt: the range of a token id


@dataclass(frozen=True)
class GuardRanges:
    """The arguments one guard checks, and the operation whose arguments they are."""

    guard: str
    arguments_of: str
    values: Mapping[str, ValueRange]


@dataclass(frozen=True)
class Branch:
    """One row of a cell: when every condition holds, the outcome applies."""

    state: str
    operation: str
    conditions: tuple[tuple[str, bool], ...]  # (guard, required value), in table order
    outcome: Outcome
    source: str  # where in the YAML the branch was written, e.g. "cells.Ready.generate.cases[2]"

    @property
    def when(self) -> dict[str, bool]:
        return dict(self.conditions)

    def matches(self, guards: Mapping[str, bool]) -> bool:
        """Every condition is given and holds (guards the branch does not name are ignored)."""
        return all(name in guards and bool(guards[name]) == value for name, value in self.conditions)

    def excluded_by(self, guards: Mapping[str, bool]) -> bool:
        """Some given guard value contradicts a condition."""
        return any(name in guards and bool(guards[name]) != value for name, value in self.conditions)


@dataclass(frozen=True, eq=False)
class Spec:
    version: str
    source: str
    initial_state: str
    resident_data: Mapping[str, str]
    states: Mapping[str, State]
    operations: Mapping[str, Operation]
    guards: Mapping[str, Guard]
    errors: Mapping[str, ErrorCode]
    finish_reasons: Mapping[str, str]
    cells: Mapping[tuple[str, str], tuple[Branch, ...]] = field(repr=False)
    effect_fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)   # field -> value -> meaning
    ranges: Mapping[str, GuardRanges] = field(default_factory=dict)                # guard -> its arguments

    # ── look-ups ──

    def state(self, name: str) -> State:
        try:
            return self.states[name]
        except KeyError:
            raise UnknownName(f"{name!r} is not a state of the lifecycle table (states: {', '.join(self.states)})") from None

    def operation(self, name: str) -> Operation:
        try:
            return self.operations[name]
        except KeyError:
            raise UnknownName(
                f"{name!r} is not an operation of the lifecycle table (operations: {', '.join(self.operations)})"
            ) from None

    def branches(self, state: str, operation: str) -> tuple[Branch, ...]:
        self.state(state), self.operation(operation)
        return self.cells[(state, operation)]

    def guards_for(self, state: str, operation: str) -> frozenset[str]:
        """The guards whose values decide this cell's outcome."""
        return frozenset(name for branch in self.branches(state, operation) for name, _ in branch.conditions)

    def branch(self, state: str, operation: str, guards: Mapping[str, bool] | None = None) -> Branch:
        """The one branch of the cell that the guard values select.

        Only the guards on the way to the decision need values: once a branch's
        conditions all hold, the others cannot (the checker proves the
        branches partition every assignment). Extra values are ignored.
        """
        guards = guards or {}
        for branch in self.branches(state, operation):
            if branch.matches(guards):
                return branch
        missing = self.undecided_guards(state, operation, guards)
        if missing:
            raise KeyError(f"{state}.{operation} needs guard value(s) for: {', '.join(sorted(missing))}")
        # load_spec() proves every cell covers every assignment; only a Spec
        # built around the checker can get here.
        raise SpecError(f"{state}.{operation}: no branch matches guards {dict(guards)}")

    def undecided_guards(self, state: str, operation: str, guards: Mapping[str, bool]) -> frozenset[str]:
        """Guards without a value that still decide between the branches the given values leave open."""
        return frozenset(
            name
            for branch in self.branches(state, operation)
            if not branch.excluded_by(guards)
            for name, _ in branch.conditions
            if name not in guards
        )

    def outcome(self, state: str, operation: str, guards: Mapping[str, bool] | None = None) -> Outcome:
        return self.branch(state, operation, guards).outcome

    def resident(self, state: str) -> tuple[frozenset[str], frozenset[str]]:
        """(data that must be resident, data that may be) in this state; anything else must be absent."""
        entry = self.state(state)
        return entry.required, entry.optional

    # ── groupings used by the derived artifacts ──

    @property
    def stable_states(self) -> tuple[str, ...]:
        return tuple(name for name, entry in self.states.items() if not entry.transient)

    @property
    def transient_states(self) -> tuple[str, ...]:
        return tuple(name for name, entry in self.states.items() if entry.transient)

    @property
    def commands(self) -> tuple[str, ...]:
        """Every operation that is not a query (commands and controls), in table order."""
        return tuple(name for name, entry in self.operations.items() if not entry.is_query)

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(name for name, entry in self.operations.items() if entry.is_query)

    def all_branches(self) -> Iterator[Branch]:
        for state in self.states:
            for operation in self.operations:
                yield from self.cells[(state, operation)]


# ─── flattening (shared with the checker, which must survive bad tables) ─────


@dataclass(frozen=True)
class RawBranch:
    """A flattened branch before names are resolved: accumulated conditions and fields."""

    conditions: tuple[tuple[str, bool], ...]
    fields: Mapping[str, object]
    source: str


def flatten_cell(node, source: str) -> tuple[list[RawBranch], list[tuple[str, str]]]:
    """Flatten a cell's nested ``cases`` into branches; returns (branches, [(where, problem)]).

    A node's own outcome fields are defaults for its cases, and a case's
    ``when`` adds to the conditions of the node it sits in. YAML ``<<`` merges
    were already applied by the YAML loader.
    """
    branches: list[RawBranch] = []
    problems: list[tuple[str, str]] = []
    _flatten(node, (), {}, source, branches, problems)
    return branches, problems


def _flatten(node, conditions, fields, source, branches, problems) -> None:
    if isinstance(node, list):
        node = {"cases": node}
    if not isinstance(node, Mapping):
        problems.append((source, f"a cell or case must be a mapping, got {type(node).__name__}"))
        return
    unknown = [key for key in node if key not in BRANCH_FIELDS]
    if unknown:
        problems.append((source, f"unknown field(s) {', '.join(map(str, unknown))} (allowed: {', '.join(BRANCH_FIELDS)})"))
    when = node.get("when") or {}
    if not isinstance(when, Mapping):
        problems.append((source, "`when` must map guard names to true/false"))
        when = {}
    merged = dict(conditions)
    for guard, value in when.items():
        if not isinstance(value, bool):
            problems.append((source, f"guard {guard} must be true or false, got {value!r}"))
            continue
        if merged.get(guard, value) != value:
            problems.append((source, f"guard {guard} is {value} here but {merged[guard]} in the enclosing case"))
            continue
        merged[guard] = value
    conditions = tuple(merged.items())
    fields = {**fields, **{key: node[key] for key in OUTCOME_FIELDS if key in node}}
    cases = node.get("cases")
    if cases is None:
        branches.append(RawBranch(conditions, MappingProxyType(fields), source))
        return
    if not isinstance(cases, list) or not cases:
        problems.append((source, "`cases` must be a non-empty list"))
        return
    for index, case in enumerate(cases):
        _flatten(case, conditions, fields, f"{source}.cases[{index}]", branches, problems)


def raw_cell(raw: Mapping, state: str, operation: str):
    """The YAML node of a cell, or None. Query operations all share ``query_outcome``."""
    operation_entry = (raw.get("operations") or {}).get(operation) or {}
    if operation_entry.get("kind") == "query" and raw.get("query_outcome") is not None:
        return raw["query_outcome"]
    return ((raw.get("cells") or {}).get(state) or {}).get(operation)


def cell_source(raw: Mapping, state: str, operation: str) -> str:
    operation_entry = (raw.get("operations") or {}).get(operation) or {}
    if operation_entry.get("kind") == "query":
        return f"query_outcome ({state}.{operation})"
    return f"cells.{state}.{operation}"


def is_lazy(fields: Mapping) -> bool:
    """A lazy_init branch borrows its outcome; it writes neither `to` nor `error`."""
    return bool(fields.get("lazy_init")) and "to" not in fields and "error" not in fields


def combine(first, second) -> tuple[tuple[str, bool], ...] | None:
    """The conjunction of two condition tuples, or None when they contradict."""
    merged = dict(first)
    for guard, value in second:
        if merged.get(guard, value) != value:
            return None
        merged[guard] = value
    return tuple(merged.items())


def resolve_cell(raw: Mapping, state: str, operation: str, _borrowing: tuple = ()) -> list[RawBranch]:
    """The cell's flattened branches with `same` and `lazy_init` resolved (fields still raw names).

    Raises SpecError when the cell cannot be resolved (missing, malformed, a
    lazy_init cycle); the checker reports those as defects beforehand.
    """
    node = raw_cell(raw, state, operation)
    if node is None:
        raise SpecError(f"cells.{state}.{operation}: missing cell")
    branches, problems = flatten_cell(node, cell_source(raw, state, operation))
    if problems:
        raise SpecError("; ".join(f"{where}: {problem}" for where, problem in problems))
    resolved: list[RawBranch] = []
    for branch in branches:
        if not is_lazy(branch.fields):
            to = branch.fields.get("to")
            fields = {**branch.fields, "to": state if to == SAME else to}
            resolved.append(RawBranch(branch.conditions, MappingProxyType(fields), branch.source))
            continue
        if state == LAZY_INIT_STATE or (LAZY_INIT_STATE, operation) in _borrowing:
            raise SpecError(f"{branch.source}: lazy_init cannot borrow from {LAZY_INIT_STATE}.{operation} (cycle)")
        for borrowed in resolve_cell(raw, LAZY_INIT_STATE, operation, (*_borrowing, (state, operation))):
            conditions = combine(branch.conditions, borrowed.conditions)
            if conditions is None:
                continue
            effect = f"initialised with the default configuration, then: {borrowed.fields.get('effect', '')}".rstrip(": ")
            named = borrowed.fields.get("effects")
            effects = {**(named if isinstance(named, Mapping) else {}), **LAZY_INIT_EFFECTS}
            fields = {**borrowed.fields, "lazy_init": True, "effect": effect, "effects": effects}
            resolved.append(RawBranch(conditions, MappingProxyType(fields), f"{branch.source} -> {borrowed.source}"))
    return resolved


def guard_entries(raw: Mapping) -> list[Mapping]:
    """The `guards` section's entries, in order; whatever is not a mapping is left out (the checker reports it)."""
    section = raw.get("guards")
    if not isinstance(section, list):
        return []
    return [entry for entry in section if isinstance(entry, Mapping)]


def guard_names(raw: Mapping) -> list[str]:
    return [entry["name"] for entry in guard_entries(raw) if isinstance(entry.get("name"), str)]


def guard_assignments(guards) -> Iterator[dict[str, bool]]:
    """Every assignment of true/false to the given guards (sorted, so the order is stable)."""
    names = sorted(guards)
    for values in itertools.product((False, True), repeat=len(names)):
        yield dict(zip(names, values, strict=True))


# ─── building the Spec ───────────────────────────────────────────────────────


def read_table(path: Path | str = TABLE_PATH) -> dict:
    return parse_table(read_table_bytes(path), path)


def read_table_bytes(path: Path | str = TABLE_PATH) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise SpecError(f"cannot read the lifecycle table {path}: {error.strerror}") from None


def parse_table(table_bytes: bytes, path: Path | str = TABLE_PATH) -> dict:
    """The table file's bytes as YAML data; SpecError naming the file when they are not a YAML mapping."""
    try:
        text = table_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path} is not UTF-8 text: byte {error.start} ({error.reason})") from None
    try:
        # libyaml's safe loader where PyYAML was built with it (the same data; 0.3 s of every process's
        # first Runtime() in the pure-Python one).
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise SpecError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the table must be a YAML mapping at the top level")
    return raw


def build_spec(raw: Mapping) -> Spec:
    """Normalise a table the checker found sound."""
    states = {
        name: State(
            name=name,
            description=entry.get("description", ""),
            transient=bool(entry.get("transient", False)),
            required=frozenset(entry.get("required") or ()),
            optional=frozenset(entry.get("optional") or ()),
            allowed_summary=entry.get("allowed_summary", ""),
        )
        for name, entry in raw["states"].items()
    }
    operations = {
        name: Operation(name, entry["kind"], entry.get("description", "")) for name, entry in raw["operations"].items()
    }
    effect_fields = {name: MappingProxyType(dict(values)) for name, values in raw["effects"].items()}
    cells = {}
    for state in states:
        for operation in operations:
            cells[(state, operation)] = tuple(
                Branch(state, operation, branch.conditions, _outcome(branch.fields, effect_fields), branch.source)
                for branch in resolve_cell(raw, state, operation)
            )
    return Spec(
        version=str(raw["spec_version"]),
        source=str(raw.get("source", "")),
        initial_state=raw["initial_state"],
        resident_data=MappingProxyType(dict(raw.get("resident_data") or {})),
        states=MappingProxyType(states),
        operations=MappingProxyType(operations),
        guards=MappingProxyType({entry["name"]: _guard(entry) for entry in guard_entries(raw)}),
        errors=MappingProxyType(
            {name: ErrorCode(name, (entry or {}).get("meaning", "")) for name, entry in raw["errors"].items()}
        ),
        finish_reasons=MappingProxyType(dict(raw.get("finish_reasons") or {})),
        cells=MappingProxyType(cells),
        effect_fields=MappingProxyType(effect_fields),
        ranges=MappingProxyType({guard: _guard_ranges(guard, entry) for guard, entry in raw["ranges"].items()}),
    )


def _guard(entry: Mapping) -> Guard:
    return Guard(
        name=entry["name"],
        description=str(entry.get("description", "")),
        known=entry.get("known", BEFORE),
        needs=tuple(entry.get("needs") or ()),
    )


def _outcome(fields: Mapping, effect_fields: Mapping[str, Mapping[str, str]]) -> Outcome:
    named = fields.get("effects") or {}
    return Outcome(
        to=fields["to"],
        error=fields.get("error"),
        via=fields.get("via"),
        lazy_init=bool(fields.get("lazy_init", False)),
        serialized=bool(fields.get("serialized", False)),
        effect=str(fields.get("effect", "")),
        effects=MappingProxyType({name: str(named.get(name, KEPT)) for name in effect_fields}),
    )


def parse_interval(text: str) -> Interval:
    """ "[a, b]", "(a, b)", "[a, )" ...: SpecError saying what is wrong when it is not one."""
    text = str(text).strip()
    if len(text) < 3 or text[0] not in "[(" or text[-1] not in "])" or text.count(",") != 1:
        raise SpecError(f"range {text!r} is not written [a, b], (a, b], [a, ) ...")
    low, high = (part.strip() for part in text[1:-1].split(","))
    lower = _bound(low, text[0] == "[", text) if low else None
    upper = _bound(high, text[-1] == "]", text) if high else None
    numeric = lower is not None and upper is not None and not (lower.symbolic or upper.symbolic)
    if numeric and (lower.value > upper.value  # type: ignore[union-attr, operator]
                    or (lower.value == upper.value and not (lower.closed and upper.closed))):  # type: ignore[union-attr]
        raise SpecError(f"range {text!r} is empty")
    return Interval(lower, upper, text)


def _bound(text: str, closed: bool, whole: str) -> Bound:
    if text in SYMBOLIC_BOUNDS:
        return Bound(text, closed)
    try:
        return Bound(int(text), closed)
    except ValueError:
        pass
    try:
        return Bound(float(text), closed)
    except ValueError:
        raise SpecError(f"range {whole!r}: bound {text!r} is not a number or one of {', '.join(SYMBOLIC_BOUNDS)}") from None


def _guard_ranges(guard: str, entry: Mapping) -> GuardRanges:
    values = {}
    for name, value in entry["values"].items():
        values[name] = ValueRange(
            name=name, type=value["type"],
            range=parse_interval(value["range"]) if "range" in value else None,
            step=float(value["step"]) if "step" in value else None,
            nullable=bool(value.get("nullable", False)), null_means=str(value.get("null_means", "")),
            meaning=str(value.get("meaning", "")),
            length=parse_interval(value["length"]) if "length" in value else None,
            token_ids=parse_interval(value["token_ids"]) if "token_ids" in value else None,
        )
    return GuardRanges(guard, entry["arguments_of"], MappingProxyType(values))


# ─── the normal form: a checked table's Spec as plain data ──────────────────
#
# What table_cache.py stores for a sound table: the Spec's values with every cell already flattened and
# resolved, each distinct outcome written once. Building a Spec from it skips the YAML, the checker and the
# normalisation (`resolve_cell`): 5-7 ms of CPU in every fresh process's first load_spec(), against well
# under a millisecond from this form. JSON types only (lists, never tuples), so that the stored text reads
# back equal to what was written.


def normal_form(spec: Spec) -> dict:
    """The Spec as plain data that `spec_from_normal_form` turns back into an equal Spec."""
    effect_names = list(spec.effect_fields)
    outcome_index: dict[str, int] = {}  # an outcome row written as text -> its position
    outcomes: list[list] = []
    cells: list[list] = []
    for (state, operation), branches in spec.cells.items():
        written = []
        for branch in branches:
            outcome = branch.outcome
            row = [outcome.to, outcome.error, outcome.via, outcome.lazy_init, outcome.serialized, outcome.effect,
                   [outcome.effects[name] for name in effect_names]]
            index = outcome_index.setdefault(repr(row), len(outcomes))
            if index == len(outcomes):
                outcomes.append(row)
            written.append([[[name, value] for name, value in branch.conditions], index, branch.source])
        cells.append([state, operation, written])
    return {
        "version": spec.version, "source": spec.source, "initial_state": spec.initial_state,
        "resident_data": dict(spec.resident_data),
        "states": {name: [entry.description, entry.transient, sorted(entry.required), sorted(entry.optional),
                          entry.allowed_summary] for name, entry in spec.states.items()},
        "operations": {name: [entry.kind, entry.description] for name, entry in spec.operations.items()},
        "guards": {name: [entry.description, entry.known, list(entry.needs)] for name, entry in spec.guards.items()},
        "errors": {name: entry.meaning for name, entry in spec.errors.items()},
        "finish_reasons": dict(spec.finish_reasons),
        "effect_fields": {name: dict(values) for name, values in spec.effect_fields.items()},
        "ranges": {guard: [entry.arguments_of, {name: _value_range_form(value) for name, value in entry.values.items()}]
                   for guard, entry in spec.ranges.items()},
        "outcomes": outcomes,
        "cells": cells,
    }


def _value_range_form(value: ValueRange) -> list:
    def text(interval: Interval | None) -> str | None:
        return None if interval is None else interval.text
    return [value.type, text(value.range), value.step, value.nullable, value.null_means, value.meaning,
            text(value.length), text(value.token_ids)]


def spec_from_normal_form(form: Mapping) -> Spec:
    """The Spec `normal_form` wrote. A form this code cannot read raises (TypeError, KeyError, ValueError
    ...), and one that leaves a cell out raises SpecError: the caller takes either as a miss."""
    effect_fields = {name: MappingProxyType(dict(values)) for name, values in form["effect_fields"].items()}
    effect_names = tuple(effect_fields)
    outcomes = [
        Outcome(to=to, error=error, via=via, lazy_init=lazy_init, serialized=serialized, effect=effect,
                effects=MappingProxyType(dict(zip(effect_names, values, strict=True))))
        for to, error, via, lazy_init, serialized, effect, values in form["outcomes"]
    ]
    cells = {
        (state, operation): tuple(
            Branch(state, operation, tuple((name, value) for name, value in conditions), outcomes[index], source)
            for conditions, index, source in branches)
        for state, operation, branches in form["cells"]
    }
    states = {
        name: State(name, description, transient, frozenset(required), frozenset(optional), allowed_summary)
        for name, (description, transient, required, optional, allowed_summary) in form["states"].items()
    }
    operations = {name: Operation(name, kind, description) for name, (kind, description) in form["operations"].items()}
    if set(cells) != {(state, operation) for state in states for operation in operations}:
        raise SpecError("the normal form does not hold exactly one cell per state and operation")
    return Spec(
        version=form["version"],
        source=form["source"],
        initial_state=form["initial_state"],
        resident_data=MappingProxyType(dict(form["resident_data"])),
        states=MappingProxyType(states),
        operations=MappingProxyType(operations),
        guards=MappingProxyType({name: Guard(name, description, known, tuple(needs))
                                 for name, (description, known, needs) in form["guards"].items()}),
        errors=MappingProxyType({name: ErrorCode(name, meaning) for name, meaning in form["errors"].items()}),
        finish_reasons=MappingProxyType(dict(form["finish_reasons"])),
        cells=MappingProxyType(cells),
        effect_fields=MappingProxyType(effect_fields),
        ranges=MappingProxyType({guard: GuardRanges(guard, arguments_of, MappingProxyType(
            {name: _value_range(name, value) for name, value in values.items()}))
            for guard, (arguments_of, values) in form["ranges"].items()}),
    )


def _value_range(name: str, form: list) -> ValueRange:
    type_, range_, step, nullable, null_means, meaning, length, token_ids = form
    def interval(text: str | None) -> Interval | None:
        return None if text is None else parse_interval(text)
    return ValueRange(name=name, type=type_, range=interval(range_), step=step, nullable=nullable,
                      null_means=null_means, meaning=meaning, length=interval(length), token_ids=interval(token_ids))


def spec_from_table(raw: Mapping) -> Spec:
    """Check a parsed table and build its Spec; raises SpecDefects listing every defect."""
    from ggufsm.spec.check import check_table  # the checker reuses this module's flattening

    defects = check_table(raw)
    if defects:
        raise SpecDefects(defects)
    return build_spec(raw)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Spec:
    table_bytes = read_table_bytes(path)
    remembered = table_cache.recall(table_bytes)
    if remembered is not None:
        try:
            return spec_from_normal_form(remembered)
        except Exception:  # noqa: BLE001 - a stored form this code cannot build is a miss, not an error
            pass
    raw = parse_table(table_bytes, path)
    spec = spec_from_table(raw)
    table_cache.remember(table_bytes, normal_form(spec))
    return spec


def load_spec(path: Path | str | None = None) -> Spec:
    """The table at ``path`` (default: the packaged lifecycle.yaml), parsed, checked and cached: in the
    process, and across processes by the sound file's normal form, keyed by its bytes (table_cache.py)."""
    if not path:
        return _load_cached(_packaged_table_path())
    return _load_cached(str(Path(path).resolve()))


@functools.cache
def _packaged_table_path() -> str:
    # Resolved once: the runtime asks for the packaged table in every range check (config, sampling), and
    # resolving it stats each folder of the path (~50 µs a call).
    return str(TABLE_PATH.resolve())
