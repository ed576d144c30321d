"""The checker catches every kind of defect, naming where it is; the real table has none.

Each test mutates a fresh copy of the real table in one way and expects that
exact defect (kind and place) among those reported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from ggufsm.spec import SpecDefects
from ggufsm.spec.check import DEFECT_KINDS, check_table
from ggufsm.spec.table import load_spec, read_table, spec_from_table


def fresh_table() -> dict:
    # A JSON round trip undoes the YAML anchors' sharing, so a mutation
    # touches exactly one cell.
    return json.loads(json.dumps(read_table()))


def commands(raw) -> list[str]:
    return [name for name, entry in raw["operations"].items() if entry["kind"] != "query"]


def add_state(raw, name, *, transient=False, cell=None):
    raw["states"][name] = {"description": name, "transient": transient, "required": ["config"], "optional": []}
    raw["cells"][name] = {op: dict(cell or {"to": "same"}) for op in commands(raw)}


def _without_spec_version(raw):
    del raw["spec_version"]


def _without_guards_section(raw):
    raw["guards"] = {}


def _with_misspelt_field(raw):
    raw["cells"]["Ready"]["free"] = {"to": "Freed", "eror": "InvalidState"}


def _with_contradictory_nested_case(raw):
    raw["cells"]["Ready"]["reset"] = {
        "when": {"model_resident": True},
        "cases": [{"when": {"model_resident": False}, "to": "Ready"}],
    }


def _without_cell(raw):
    del raw["cells"]["Ready"]["reset"]


def _with_overlapping_branches(raw):
    raw["cells"]["Ready"]["set_sampling"]["cases"][1]["when"] = {}


def _with_a_guard_case_missing(raw):
    del raw["cells"]["Ready"]["set_sampling"]["cases"][1]


def _with_unknown_target(raw):
    raw["cells"]["Ready"]["free"] = {"to": "Liberated"}


def _with_unknown_operation(raw):
    raw["cells"]["Ready"]["explode"] = {"to": "same"}


def _with_unknown_error(raw):
    raw["cells"]["Ready"]["init_runtime"] = {"error": "Oops", "to": "same"}


def _with_unknown_guard(raw):
    raw["cells"]["Ready"]["reset"] = {"cases": [{"when": {"moon_full": True}, "to": "Ready"},
                                                {"when": {"moon_full": False}, "to": "Ready"}]}


def _with_unknown_resident_datum(raw):
    raw["states"]["Ready"]["required"].append("gpu_buffers")


def _with_bad_operation_kind(raw):
    raw["operations"]["cancel"]["kind"] = "signal"


def _with_via_a_stable_state(raw):
    raw["cells"]["Ready"]["replace_model"]["via"] = "Ready"


def _with_transient_target(raw):
    raw["cells"]["Ready"]["reset"] = {"to": "Loading"}


def _with_serialized_in_stable_state(raw):
    raw["cells"]["Ready"]["reset"] = {"to": "same", "serialized": True}


def _with_lazy_init_in_initialized(raw):
    raw["cells"]["Initialized"]["reset"] = {"lazy_init": True}


def _with_hand_written_query_cell(raw):
    raw["cells"]["Ready"]["diagnostics"] = {"to": "same"}


def _with_unreachable_state(raw):
    add_state(raw, "Limbo", cell={"to": "Initialized"})


def _with_trap_state(raw):
    add_state(raw, "Trap")
    raw["cells"]["Ready"]["cancel"] = {"to": "Trap"}


def _with_unused_error(raw):
    raw["errors"]["OutOfCheese"] = {"meaning": "never raised"}


def _with_unused_guard(raw):
    raw["guards"].append({"name": "moon_full", "known": "before", "description": "never consulted"})


def guard_entry(raw, name) -> dict:
    return next(entry for entry in raw["guards"] if entry["name"] == name)


def _with_unknown_guard_timing(raw):
    guard_entry(raw, "config_valid")["known"] = "sometimes"


def _with_a_guard_needing_a_later_one(raw):
    guard_entry(raw, "input_valid")["needs"] = ["prompt_fits"]


def _with_a_need_the_cells_do_not_name(raw):
    guard_entry(raw, "sampling_valid")["needs"] = ["input_valid"]


def _with_a_late_guard_decided_before_running(raw):
    guard_entry(raw, "config_valid")["known"] = "while_running"


def _with_two_transient_states_on_the_same_guards(raw):
    raw["cells"]["Ready"]["replace_model"]["cases"][3]["via"] = "Generating"


def _with_a_load_whose_end_depends_on_where_it_started(raw):
    raw["cells"]["Freed"]["load_model"]["cases"][3]["to"] = "Initialized"


def _with_a_guarded_lazy_init(raw):
    raw["cells"]["Uninitialized"]["reset"] = {"lazy_init": True, "when": {"model_resident": False}}


def _with_unused_transient(raw):
    add_state(raw, "Warming", transient=True, cell={"to": "same", "serialized": True})


def _with_an_unknown_effect_value(raw):
    raw["cells"]["Ready"]["reset"]["effects"] = {"last_error": "forgotten"}


def _with_an_unrecorded_error(raw):
    raw["cells"]["Ready"]["init_runtime"] = {"error": "InvalidState", "to": "same"}


def _with_a_request_opened_where_none_may_be(raw):
    raw["cells"]["Ready"]["reset"]["effects"] = {"last_error": "cleared", "request": "new"}


def _with_a_range_that_is_empty(raw):
    raw["ranges"]["sampling_valid"]["values"]["top_p"]["range"] = "(1, 0]"


# kind -> (mutation, where the defect must be reported)
MUTATIONS = {
    "missing_spec_version": (_without_spec_version, "spec_version"),
    "missing_section": (_without_guards_section, "guards"),
    "malformed_cell": (_with_misspelt_field, "cells.Ready.free"),
    "missing_cell": (_without_cell, "cells.Ready.reset"),
    "ambiguous_cell": (_with_overlapping_branches, "cells.Ready.set_sampling"),
    "uncovered_guards": (_with_a_guard_case_missing, "cells.Ready.set_sampling"),
    "unknown_state": (_with_unknown_target, "cells.Ready.free"),
    "unknown_operation": (_with_unknown_operation, "cells.Ready.explode"),
    "unknown_error": (_with_unknown_error, "cells.Ready.init_runtime"),
    "unknown_guard": (_with_unknown_guard, "cells.Ready.reset.cases[0]"),
    "unknown_resident_datum": (_with_unknown_resident_datum, "states.Ready.required"),
    "bad_operation_kind": (_with_bad_operation_kind, "operations.cancel"),
    "via_not_transient": (_with_via_a_stable_state, "cells.Ready.replace_model.cases[0]"),
    "transient_target": (_with_transient_target, "cells.Ready.reset"),
    "misplaced_serialized": (_with_serialized_in_stable_state, "cells.Ready.reset"),
    "lazy_init_cycle": (_with_lazy_init_in_initialized, "cells.Initialized.reset"),
    "shadowed_query_cell": (_with_hand_written_query_cell, "cells.Ready.diagnostics"),
    "unreachable_state": (_with_unreachable_state, "states.Limbo"),
    "no_way_out": (_with_trap_state, "states.Trap"),
    "unused_error": (_with_unused_error, "errors.OutOfCheese"),
    "unused_guard": (_with_unused_guard, "guards.moon_full"),
    "unused_transient": (_with_unused_transient, "states.Warming"),
    "malformed_guard": (_with_unknown_guard_timing, "guards.config_valid"),
    "misordered_needs": (_with_a_guard_needing_a_later_one, "guards.input_valid"),
    "missing_needed_guard": (_with_a_need_the_cells_do_not_name, "cells.Ready.set_sampling.cases[0]"),
    "late_guard_outside_via": (_with_a_late_guard_decided_before_running, "cells.Uninitialized.init_runtime.cases[0]"),
    "via_undecided": (_with_two_transient_states_on_the_same_guards, "cells.Ready.replace_model"),
    "exit_depends_on_origin": (_with_a_load_whose_end_depends_on_where_it_started, "states.Loading.load_model"),
    "conditional_lazy_init": (_with_a_guarded_lazy_init, "cells.Uninitialized.reset"),
    "malformed_effects": (_with_an_unknown_effect_value, "cells.Ready.reset"),
    "unrecorded_error": (_with_an_unrecorded_error, "cells.Ready.init_runtime"),
    "effect_contradicts_state": (_with_a_request_opened_where_none_may_be, "cells.Ready.reset"),
    "malformed_range": (_with_a_range_that_is_empty, "ranges.sampling_valid.values.top_p"),
}


def reported(raw) -> set[tuple[str, str]]:
    return {(defect.kind, defect.where) for defect in check_table(raw)}


def test_the_real_table_has_no_defects():
    assert check_table(read_table()) == []


def test_every_defect_kind_has_a_test():
    assert set(MUTATIONS) == set(DEFECT_KINDS)


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_each_defect_is_reported_by_kind_and_place(kind):
    mutate, where = MUTATIONS[kind]
    raw = fresh_table()
    mutate(raw)
    assert (kind, where) in reported(raw)


@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_a_table_with_a_defect_cannot_become_a_spec(kind):
    raw = fresh_table()
    MUTATIONS[kind][0](raw)
    with pytest.raises(SpecDefects) as caught:
        spec_from_table(raw)
    assert kind in {defect.kind for defect in caught.value.defects}


def test_a_state_added_but_never_entered_is_only_unreachable():
    raw = fresh_table()
    _with_unreachable_state(raw)
    assert reported(raw) == {("unreachable_state", "states.Limbo")}


def test_a_contradiction_inside_nested_cases_is_malformed():
    raw = fresh_table()
    _with_contradictory_nested_case(raw)
    defects = [d for d in check_table(raw) if d.where == "cells.Ready.reset.cases[0]"]
    assert [d.kind for d in defects] == ["malformed_cell"]
    assert "model_resident" in defects[0].message


def test_an_ambiguity_names_the_guard_assignment_and_both_branches():
    raw = fresh_table()
    _with_overlapping_branches(raw)
    (defect,) = [d for d in check_table(raw) if d.kind == "ambiguous_cell"]
    assert "¬sampling_valid" in defect.message
    assert "cases[0]" in defect.message and "cases[1]" in defect.message


def test_the_old_guards_mapping_is_reported_as_malformed():
    raw = fresh_table()
    raw["guards"] = {entry["name"]: entry["description"] for entry in raw["guards"]}
    assert ("malformed_guard", "guards") in reported(raw)


def test_a_transient_exit_that_depends_on_the_origin_names_both_branches():
    raw = fresh_table()
    _with_a_load_whose_end_depends_on_where_it_started(raw)
    (defect,) = [d for d in check_table(raw) if d.kind == "exit_depends_on_origin"]
    assert "cells.Freed.load_model.cases[3]" in defect.message and "in Initialized" in defect.message


def test_every_defect_is_reported_in_one_run():
    raw = fresh_table()
    _without_cell(raw)
    _with_unused_error(raw)
    _with_unknown_error(raw)
    assert {("missing_cell", "cells.Ready.reset"), ("unused_error", "errors.OutOfCheese"),
            ("unknown_error", "cells.Ready.init_runtime")} <= reported(raw)


def test_spec_check_command_passes_on_the_real_table():
    result = subprocess.run([sys.executable, "-m", "ggufsm", "spec", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sound" in result.stdout


def test_spec_check_command_fails_naming_the_defect(tmp_path):
    raw = fresh_table()
    _without_cell(raw)
    table = tmp_path / "broken.yaml"
    table.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ggufsm", "spec", "check", "--table", str(table)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "missing_cell: cells.Ready.reset" in result.stdout


def test_load_spec_refuses_a_defective_file(tmp_path):
    raw = fresh_table()
    _with_unused_guard(raw)
    table = tmp_path / "broken.yaml"
    table.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SpecDefects, match="unused_guard: guards.moon_full"):
        load_spec(table)
