"""The table checker: every defect a lifecycle table can have, each named and located.

``check_table(raw)`` takes the parsed YAML (not a Spec: a defective table
cannot become one) and returns every :class:`Defect` it finds, so one run
shows all of them. ``load_spec()`` refuses a table with any defect.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ggufsm.spec.table import (
    GUARD_FIELDS,
    GUARD_KNOWN,
    KEPT,
    LAZY_INIT_EFFECTS,
    LAZY_INIT_STATE,
    OPERATION_KINDS,
    RANGE_FIELDS,
    SAME,
    VALUE_FIELDS,
    VALUE_TYPES,
    WHILE_RUNNING,
    SpecError,
    cell_source,
    combine,
    flatten_cell,
    guard_assignments,
    guard_entries,
    guard_names,
    is_lazy,
    parse_interval,
    raw_cell,
    resolve_cell,
)

# Every kind of defect, with the rule it breaks. Tests prove each is caught.
DEFECT_KINDS: dict[str, str] = {
    "missing_spec_version": "the table has no spec_version",
    "missing_section": "a required top-level section is absent or empty",
    "malformed_cell": "a cell or case is not a well-formed outcome (unknown field, no `to`, bad `when`)",
    "missing_cell": "a (state, operation) pair has no cell",
    "ambiguous_cell": "two branches of a cell match one guard assignment",
    "uncovered_guards": "a cell's branches leave a guard assignment without an outcome",
    "unknown_state": "a name used as a state is not in `states`",
    "unknown_operation": "a name used as an operation is not in `operations`",
    "unknown_error": "an outcome raises an error not in `errors`",
    "unknown_guard": "a `when` names a guard not in `guards`",
    "unknown_resident_datum": "a state lists resident data not in `resident_data`",
    "bad_operation_kind": f"an operation's kind is not one of {', '.join(OPERATION_KINDS)}",
    "via_not_transient": "a `via` names something other than a transient state",
    "transient_target": "an outcome ends in a transient state (transient states are only entered `via`)",
    "misplaced_serialized": "`serialized` appears outside a transient state",
    "lazy_init_cycle": f"a lazy_init cell is in {LAZY_INIT_STATE} itself, so there is nothing to borrow",
    "shadowed_query_cell": "a query operation has a hand-written cell although query_outcome answers it",
    "unreachable_state": "no path from the initial state reaches the state (via transient states included)",
    "no_way_out": "a stable state has no outcome that leaves it",
    "unused_error": "an error is never raised by any cell",
    "unused_guard": "a guard is never named by any cell",
    "unused_transient": "a transient state is never used as a `via`",
    "malformed_guard": f"a `guards` entry is not a mapping of {', '.join(GUARD_FIELDS)} with a known of "
                       f"{' or '.join(GUARD_KNOWN)}, or its name repeats",
    "misordered_needs": "a guard needs a guard that is not listed before it",
    "missing_needed_guard": "a branch names a guard without naming the guards it needs as true",
    "late_guard_outside_via": f"a {WHILE_RUNNING} guard is named by a branch that does not run `via` a transient state",
    "via_undecided": "the guards known before an operation do not decide which transient state it runs in",
    "exit_depends_on_origin": "leaving a transient state, an operation's outcome depends on where it started, "
                              f"not only on its {WHILE_RUNNING} guards",
    "conditional_lazy_init": "a lazy_init branch names guards (lazy init borrows the whole Initialized cell)",
    "malformed_effects": f"`effects` (the vocabulary or an outcome's) is not a mapping of known fields to known values, "
                         f"or a field has no `{KEPT}` value",
    "unrecorded_error": "an error outcome ends in a state that can hold last_error without recording it (last_error: set), "
                        "or a success says it sets one",
    "effect_contradicts_state": "an outcome's effects leave data its state after forbids or requires away "
                                "(a request opened where none may be, a model kept where none may be, ...)",
    "malformed_range": f"a `ranges` entry is not a guard's arguments ({', '.join(RANGE_FIELDS)}) with values of "
                       f"{', '.join(VALUE_FIELDS)}, a known type and well-written ranges",
}

REQUIRED_SECTIONS = ("initial_state", "states", "operations", "errors", "guards", "resident_data", "finish_reasons",
                     "effects", "ranges", "cells")
# The effect fields and values the checker reasons about; others are the table's to add (and only checked for form).
REQUEST_OPENING = ("new", "extended")


@dataclass(frozen=True)
class Defect:
    kind: str  # one of DEFECT_KINDS
    where: str  # the state, operation, cell or branch, e.g. "cells.Ready.generate.cases[1]"
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}"


def check_table(raw: Mapping) -> list[Defect]:
    """Every defect of a parsed lifecycle table; empty when it is sound."""
    defects: list[Defect] = []
    if not str(raw.get("spec_version") or "").strip():
        defects.append(Defect("missing_spec_version", "spec_version", "every derived artifact carries it; set it"))
    for section in REQUIRED_SECTIONS:
        if not raw.get(section):
            defects.append(Defect("missing_section", section, f"the table needs a non-empty `{section}`"))
    if not isinstance(raw.get("states"), Mapping) or not isinstance(raw.get("operations"), Mapping):
        return defects
    defects += _check_declarations(raw)
    defects += _check_guards(raw)
    defects += _check_effect_vocabulary(raw)
    defects += _check_ranges(raw)
    defects += _check_cell_keys(raw)
    resolved = {}
    for state in raw["states"]:
        for operation in raw["operations"]:
            cell_defects, branches = _check_cell(raw, state, operation)
            defects += cell_defects
            if branches is not None:
                resolved[(state, operation)] = branches
    defects += _check_graph(raw, resolved)
    defects += _check_usage(raw, resolved)
    defects += _check_transient_exits(raw, resolved)
    return defects


# ─── declarations ────────────────────────────────────────────────────────────


def _check_declarations(raw: Mapping) -> Iterable[Defect]:
    states, resident = raw["states"], raw.get("resident_data") or {}
    if raw.get("initial_state") and raw["initial_state"] not in states:
        yield Defect("unknown_state", "initial_state", f"{raw['initial_state']!r} is not a state")
    for name, entry in states.items():
        entry = entry or {}
        for listing in ("required", "optional"):
            for datum in entry.get(listing) or ():
                if datum not in resident:
                    yield Defect("unknown_resident_datum", f"states.{name}.{listing}", f"{datum!r} is not in resident_data")
    for name, entry in raw["operations"].items():
        kind = (entry or {}).get("kind")
        if kind not in OPERATION_KINDS:
            yield Defect("bad_operation_kind", f"operations.{name}", f"kind {kind!r} is not one of {OPERATION_KINDS}")


def _check_guards(raw: Mapping) -> Iterable[Defect]:
    section = raw.get("guards")
    if not isinstance(section, list):
        if section:
            yield Defect("malformed_guard", "guards", "`guards` must be a list of entries, in evaluation order")
        return
    listed: list[str] = []
    for index, entry in enumerate(section):
        where = f"guards[{index}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            yield Defect("malformed_guard", where, "each entry must be a mapping with a `name`")
            continue
        name, where = entry["name"], f"guards.{entry['name']}"
        unknown = [key for key in entry if key not in GUARD_FIELDS]
        if unknown:
            yield Defect("malformed_guard", where, f"unknown field(s) {', '.join(map(str, unknown))} "
                                                   f"(allowed: {', '.join(GUARD_FIELDS)})")
        if entry.get("known") not in GUARD_KNOWN:
            yield Defect("malformed_guard", where, f"known: {entry.get('known')!r} is not one of {', '.join(GUARD_KNOWN)}")
        if name in listed:
            yield Defect("malformed_guard", where, "the name is listed twice")
        needs = entry.get("needs") or []
        if not isinstance(needs, list) or not all(isinstance(need, str) for need in needs):
            yield Defect("malformed_guard", where, "`needs` must be a list of guard names")
            needs = []
        for need in needs:
            if need not in listed:
                yield Defect("misordered_needs", where, f"needs {need!r}, which is not a guard listed before it")
        listed.append(name)


def _guard_table(raw: Mapping) -> dict[str, Mapping]:
    return {entry["name"]: entry for entry in guard_entries(raw) if isinstance(entry.get("name"), str)}


def _check_cell_keys(raw: Mapping) -> Iterable[Defect]:
    cells = raw.get("cells") or {}
    for state, row in cells.items():
        if state not in raw["states"]:
            yield Defect("unknown_state", f"cells.{state}", f"{state!r} is not a state")
            continue
        for operation in row or {}:
            entry = raw["operations"].get(operation)
            if entry is None:
                yield Defect("unknown_operation", f"cells.{state}.{operation}", f"{operation!r} is not an operation")
            elif (entry or {}).get("kind") == "query" and raw.get("query_outcome") is not None:
                yield Defect("shadowed_query_cell", f"cells.{state}.{operation}", "query_outcome already answers it")


# ─── one cell ────────────────────────────────────────────────────────────────


def _check_cell(raw: Mapping, state: str, operation: str):
    """(defects, resolved branches or None when the cell cannot be resolved)."""
    where = cell_source(raw, state, operation)
    node = raw_cell(raw, state, operation)
    if node is None:
        return [Defect("missing_cell", where, f"no outcome for {operation} in {state}")], None
    branches, problems = flatten_cell(node, where)
    defects = [Defect("malformed_cell", place, problem) for place, problem in problems]
    defects += _check_coverage(where, branches)
    for branch in branches:
        defects += _check_names(raw, state, branch)
    if problems:
        return defects, None
    try:
        resolved = resolve_cell(raw, state, operation)
    except SpecError as error:
        kind = "lazy_init_cycle" if "lazy_init" in str(error) else "malformed_cell"
        return [*defects, Defect(kind, where, str(error))], None
    return [*defects, *_check_via_decided(raw, where, resolved)], resolved


def _check_via_decided(raw: Mapping, where: str, branches) -> Iterable[Defect]:
    """Two branches that run via different transient states must differ in a guard known before the operation."""
    late = {name for name, entry in _guard_table(raw).items() if entry.get("known") == WHILE_RUNNING}
    via_branches = [branch for branch in branches if branch.fields.get("via") is not None]
    for index, first in enumerate(via_branches):
        for second in via_branches[index + 1:]:
            if first.fields["via"] == second.fields["via"]:
                continue
            early = lambda branch: tuple((g, v) for g, v in branch.conditions if g not in late)  # noqa: E731
            if combine(early(first), early(second)) is not None:
                yield Defect("via_undecided", where, f"{first.source} runs via {first.fields['via']} and "
                             f"{second.source} via {second.fields['via']} on the same guards known before")
                return


def _check_coverage(where: str, branches) -> Iterable[Defect]:
    """Each guard assignment must match exactly one branch.

    Checked on the cell's own branches: a lazy_init branch borrows a cell
    that is checked on its own, and a partition of a partition is one.
    """
    guards = {name for branch in branches for name, _ in branch.conditions}
    uncovered, ambiguous = [], []
    for assignment in guard_assignments(guards):
        matching = [b for b in branches if all(assignment[name] == value for name, value in b.conditions)]
        if not matching:
            uncovered.append(assignment)
        elif len(matching) > 1:
            ambiguous.append((assignment, matching))
    if uncovered:
        yield Defect(
            "uncovered_guards",
            where,
            f"{len(uncovered)} guard assignment(s) match no branch, e.g. {_compact(uncovered[0])}",
        )
    if ambiguous:
        assignment, matching = ambiguous[0]
        yield Defect(
            "ambiguous_cell",
            where,
            f"{len(ambiguous)} guard assignment(s) match several branches, e.g. {_compact(assignment)} matches "
            + " and ".join(branch.source for branch in matching),
        )


def _check_names(raw: Mapping, state: str, branch) -> Iterable[Defect]:
    states, fields, guards = raw["states"], branch.fields, _guard_table(raw)
    for guard, _ in branch.conditions:
        if guard not in guards:
            yield Defect("unknown_guard", branch.source, f"{guard!r} is not a guard")
    if is_lazy(fields):
        if state == LAZY_INIT_STATE:
            yield Defect("lazy_init_cycle", branch.source, f"lazy_init in {LAZY_INIT_STATE} borrows from itself")
        if branch.conditions:
            yield Defect("conditional_lazy_init", branch.source, "a lazy_init branch must name no guards")
        return
    yield from _check_guard_use(guards, branch)
    to = fields.get("to")
    if to is None:
        yield Defect("malformed_cell", branch.source, "the outcome has no `to` (use `to: same` to stay)")
    elif to != SAME and to not in states:
        yield Defect("unknown_state", branch.source, f"to: {to!r} is not a state")
    elif to not in (SAME, state) and _transient(raw, to):
        yield Defect("transient_target", branch.source, f"to: {to} is transient; enter it with `via`")
    error = fields.get("error")
    if error is not None and error not in (raw.get("errors") or {}):
        yield Defect("unknown_error", branch.source, f"error {error!r} is not in errors")
    via = fields.get("via")
    if via is not None and not _transient(raw, via):
        what = "a stable state" if via in states else "not a state"
        yield Defect("via_not_transient", branch.source, f"via: {via!r} is {what}")
    if fields.get("serialized") and not _transient(raw, state):
        yield Defect("misplaced_serialized", branch.source, f"{state} is stable; only calls in transient states wait")
    yield from _check_effects(raw, state, branch)


def _check_guard_use(guards: Mapping[str, Mapping], branch) -> Iterable[Defect]:
    """A guard is named with the guards it needs, and a while_running guard only where the operation runs via."""
    when = dict(branch.conditions)
    for guard in when:
        entry = guards.get(guard)
        if entry is None:
            continue
        needs = entry.get("needs")
        needs = needs if isinstance(needs, list) else []
        missing = [need for need in needs if when.get(need) is not True]
        if missing:
            yield Defect("missing_needed_guard", branch.source,
                         f"{guard} is computed only once {', '.join(missing)} held; the branch must name "
                         + ", ".join(f"{need}: true" for need in missing))
        if entry.get("known") == WHILE_RUNNING and branch.fields.get("via") is None:
            yield Defect("late_guard_outside_via", branch.source,
                         f"{guard} is known only while the operation runs in its `via` state, and this branch has none")


def _transient(raw: Mapping, state: str) -> bool:
    entry = raw["states"].get(state)
    return isinstance(entry, Mapping) and bool(entry.get("transient"))


# ─── effects ─────────────────────────────────────────────────────────────────


def _effect_vocabulary(raw: Mapping) -> dict[str, Mapping]:
    section = raw.get("effects")
    if not isinstance(section, Mapping):
        return {}
    return {name: values for name, values in section.items() if isinstance(values, Mapping)}


def _check_effect_vocabulary(raw: Mapping) -> Iterable[Defect]:
    section = raw.get("effects")
    if section is None:
        return
    if not isinstance(section, Mapping):
        yield Defect("malformed_effects", "effects", "must map each effect field to its values and their meanings")
        return
    for name, values in section.items():
        if not isinstance(values, Mapping) or not all(isinstance(value, str) for value in values):
            yield Defect("malformed_effects", f"effects.{name}", "must map each value to what it means")
        elif KEPT not in values:
            yield Defect("malformed_effects", f"effects.{name}", f"has no `{KEPT}` value (an outcome that does not "
                                                                f"name the field means {KEPT})")
    for name, value in LAZY_INIT_EFFECTS.items():
        if value not in (section.get(name) or {}):
            yield Defect("malformed_effects", f"effects.{name}", f"a lazy init makes it {value!r}, which it lacks")


def _check_effects(raw: Mapping, state: str, branch) -> Iterable[Defect]:
    """The outcome's effects are known values, and agree with its error and the resident data of the states."""
    named = branch.fields.get("effects") or {}
    if not isinstance(named, Mapping):
        yield Defect("malformed_effects", branch.source, "`effects` must map effect fields to values")
        return
    vocabulary = _effect_vocabulary(raw)
    for name, value in named.items():
        if name not in vocabulary:
            yield Defect("malformed_effects", branch.source, f"{name!r} is not an effect field "
                                                             f"({', '.join(vocabulary)})")
        elif value not in vocabulary[name]:
            yield Defect("malformed_effects", branch.source, f"{name}: {value!r} is not one of "
                                                             f"{', '.join(vocabulary[name])}")
    effects = {name: named.get(name, KEPT) for name in vocabulary}
    to = state if branch.fields.get("to") == SAME else branch.fields.get("to")
    if to not in raw["states"]:
        return
    allowed = _allowed(raw, to)
    error = branch.fields.get("error")
    if "last_error" in effects:
        records = effects["last_error"] == "set"
        if error and "last_error" in allowed and not records:
            yield Defect("unrecorded_error", branch.source, f"{error} ends in {to}, which can hold last_error: "
                                                            "the outcome must say last_error: set")
        if records and not error:
            yield Defect("unrecorded_error", branch.source, "a success has no error to record (last_error: set)")
    if error:
        for name in ("sampling", "config"):
            if effects.get(name, KEPT) != KEPT:
                yield Defect("effect_contradicts_state", branch.source, f"{error} is raised, yet {name} is "
                                                                        f"{effects[name]} (a failed call keeps it)")
    yield from _check_resident_effects(raw, state, to, branch, effects)


def _check_resident_effects(raw: Mapping, state: str, to: str, branch, effects: Mapping[str, str]) -> Iterable[Defect]:
    allowed, required = _allowed(raw, to), _required(raw, to)
    where_from = _allowed(raw, state)
    when = dict(branch.conditions)
    request = effects.get("request", KEPT)
    if request in REQUEST_OPENING and "request" not in allowed:
        yield Defect("effect_contradicts_state", branch.source, f"request: {request} in {to}, which holds no request")
    if request == "cleared" and "request" in required:
        yield Defect("effect_contradicts_state", branch.source, f"request: cleared, yet {to} requires a request")
    if request == KEPT and "request" in where_from and "request" not in allowed:
        yield Defect("effect_contradicts_state", branch.source, f"the request is kept, yet {to} holds none "
                                                                "(request: cleared)")
    model = effects.get("model", KEPT)
    if model == "installed" and "model" not in allowed:
        yield Defect("effect_contradicts_state", branch.source, f"model: installed in {to}, which holds no model")
    if model == "released" and "model" in required:
        yield Defect("effect_contradicts_state", branch.source, f"model: released, yet {to} requires a model")
    if model == KEPT and "model" in where_from and "model" not in allowed and when.get("model_resident") is not False:
        yield Defect("effect_contradicts_state", branch.source, f"the model is kept, yet {to} holds none "
                                                                "(model: released)")


def _allowed(raw: Mapping, state: str) -> set[str]:
    entry = raw["states"].get(state) or {}
    return set(entry.get("required") or ()) | set(entry.get("optional") or ())


def _required(raw: Mapping, state: str) -> set[str]:
    return set((raw["states"].get(state) or {}).get("required") or ())


# ─── ranges ──────────────────────────────────────────────────────────────────


def _check_ranges(raw: Mapping) -> Iterable[Defect]:
    section = raw.get("ranges")
    if section is None:
        return
    if not isinstance(section, Mapping):
        yield Defect("malformed_range", "ranges", "must map guards to the arguments they check")
        return
    guards = set(guard_names(raw))
    for guard, entry in section.items():
        where = f"ranges.{guard}"
        if guard not in guards:
            yield Defect("malformed_range", where, f"{guard!r} is not a guard")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("values"), Mapping):
            yield Defect("malformed_range", where, "needs `arguments_of` and `values`")
            continue
        unknown = [key for key in entry if key not in RANGE_FIELDS]
        if unknown:
            yield Defect("malformed_range", where, f"unknown field(s) {', '.join(map(str, unknown))}")
        if entry.get("arguments_of") not in raw["operations"]:
            yield Defect("malformed_range", where, f"arguments_of: {entry.get('arguments_of')!r} is not an operation")
        for name, value in entry["values"].items():
            yield from _check_value_range(f"{where}.values.{name}", value)


def _check_value_range(where: str, value) -> Iterable[Defect]:
    if not isinstance(value, Mapping):
        yield Defect("malformed_range", where, "must be a mapping")
        return
    unknown = [key for key in value if key not in VALUE_FIELDS]
    if unknown:
        yield Defect("malformed_range", where, f"unknown field(s) {', '.join(map(str, unknown))}")
    kind = value.get("type")
    if kind not in VALUE_TYPES:
        yield Defect("malformed_range", where, f"type {kind!r} is not one of {', '.join(VALUE_TYPES)}")
    needed = ("length",) if kind == "prompt" else ("range",)
    for key in needed:
        if key not in value:
            yield Defect("malformed_range", where, f"a {kind} needs `{key}`")
    for key in ("range", "length", "token_ids"):
        if key in value:
            try:
                parse_interval(value[key])
            except SpecError as error:
                yield Defect("malformed_range", where, str(error))
    if kind == "number" and "step" not in value:
        yield Defect("malformed_range", where, "a number needs a `step` (how far past an edge the invalid value is)")


# ─── the whole graph ─────────────────────────────────────────────────────────


def _edges(raw: Mapping, resolved) -> dict[str, set[str]]:
    """state -> states one step away; a `via` step goes through the transient state."""
    edges: dict[str, set[str]] = {state: set() for state in raw["states"]}
    for (state, _), branches in resolved.items():
        for branch in branches:
            to, via = branch.fields.get("to"), branch.fields.get("via")
            if to not in raw["states"]:
                continue
            if via in raw["states"]:
                edges[state].add(via)
                edges[via].add(to)
            else:
                edges[state].add(to)
    return edges


def _check_graph(raw: Mapping, resolved) -> Iterable[Defect]:
    edges = _edges(raw, resolved)
    initial = raw.get("initial_state")
    if initial in edges:
        reached, frontier = {initial}, deque([initial])
        while frontier:
            for successor in edges[frontier.popleft()]:
                if successor not in reached:
                    reached.add(successor)
                    frontier.append(successor)
        for state in raw["states"]:
            if state not in reached:
                yield Defect("unreachable_state", f"states.{state}", f"no path from {initial} reaches it")
    for state in raw["states"]:
        if not _transient(raw, state) and not edges[state] - {state}:
            yield Defect("no_way_out", f"states.{state}", "every outcome from it stays in it")


def _check_usage(raw: Mapping, resolved) -> Iterable[Defect]:
    used_errors, used_guards, used_vias = set[str](), set[str](), set[str]()
    for branches in resolved.values():
        for branch in branches:
            used_errors.add(branch.fields.get("error"))
            used_vias.add(branch.fields.get("via"))
            used_guards.update(name for name, _ in branch.conditions)
    for error in raw.get("errors") or {}:
        if error not in used_errors:
            yield Defect("unused_error", f"errors.{error}", "no cell raises it")
    for guard in guard_names(raw):
        if guard not in used_guards:
            yield Defect("unused_guard", f"guards.{guard}", "no cell names it")
    for state in raw["states"]:
        if _transient(raw, state) and state not in used_vias:
            yield Defect("unused_transient", f"states.{state}", "no outcome passes `via` it")


def _check_transient_exits(raw: Mapping, resolved) -> Iterable[Defect]:
    """For each transient state and operation, the while_running guards alone decide where it ends.

    The machine leaves a transient state by the operation's exit transitions,
    which know nothing of where the operation started: a transient state is
    one state, so what follows it can depend only on what was learned in it.
    """
    late = {name for name, entry in _guard_table(raw).items() if entry.get("known") == WHILE_RUNNING}
    exits: dict[tuple[str, str], list] = {}
    for (_, operation), branches in resolved.items():
        for branch in branches:
            via = branch.fields.get("via")
            if via is not None:
                exits.setdefault((via, operation), []).append(branch)
    for (via, operation), branches in exits.items():
        names = {name for branch in branches for name, _ in branch.conditions if name in late}
        for assignment in guard_assignments(names):
            outcomes: dict[tuple, str] = {}
            for branch in branches:
                if all(assignment[name] == value for name, value in branch.conditions if name in late):
                    outcomes.setdefault((branch.fields.get("to"), branch.fields.get("error")), branch.source)
            if len(outcomes) > 1:
                (first, one), (second, other) = list(outcomes.items())[:2]
                yield Defect("exit_depends_on_origin", f"states.{via}.{operation}",
                             f"on {_compact(assignment)} {one} ends {_ending(first)} but {other} ends {_ending(second)}")
                break


def _ending(outcome) -> str:
    to, error = outcome
    return f"in {to} with {error}" if error else f"in {to}"


def _compact(assignment: Mapping[str, bool]) -> str:
    return " ∧ ".join(name if value else f"¬{name}" for name, value in assignment.items()) or "(no guards)"
