"""Loading the table: the API other rooms code against, and how the YAML shorthand is normalised."""

from __future__ import annotations

import pytest

from ggufsm.spec import Outcome, Spec, UnknownName, load_spec
from ggufsm.spec.errors import ERROR_CLASSES
from ggufsm.spec.table import LAZY_INIT_STATE, read_table

LOAD_OK = {"model_readable": True, "model_well_formed": True, "model_supported": True}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec()


def test_load_spec_is_cached(spec):
    assert load_spec() is spec


def test_the_spec_version_is_the_tables(spec):
    assert spec.version == str(read_table()["spec_version"])


def test_names_come_in_table_order(spec):
    raw = read_table()
    assert list(spec.states) == list(raw["states"])
    assert list(spec.operations) == list(raw["operations"])
    assert list(spec.errors) == list(raw["errors"])
    assert list(spec.guards) == [entry["name"] for entry in raw["guards"]]


def test_the_error_classes_are_the_tables_errors(spec):
    assert set(ERROR_CLASSES) == set(spec.errors)


def test_every_state_operation_pair_has_a_cell(spec):
    assert set(spec.cells) == {(state, op) for state in spec.states for op in spec.operations}


def test_an_outcome_is_a_resolved_outcome(spec):
    outcome = spec.outcome("Initialized", "load_model", LOAD_OK)
    assert outcome == Outcome(to="Ready", via="Loading", effect=outcome.effect, effects=outcome.effects)
    assert isinstance(outcome, Outcome)


def test_every_outcome_states_every_effect_field_and_kept_is_the_default(spec):
    fields = list(spec.effect_fields)
    assert all(list(branch.outcome.effects) == fields for branch in spec.all_branches())
    assert spec.outcome("Initialized", "load_model", LOAD_OK).changes() == {"model": "installed"}
    assert spec.outcome("ContinuationReady", "reset").changes() == {"last_error": "cleared", "request": "cleared"}
    assert spec.outcome("Ready", "init_runtime").changes() == {"last_error": "set"}


def test_a_lazy_init_applies_the_default_configuration_then_the_borrowed_effects(spec):
    outcome = spec.outcome("Uninitialized", "reset")
    assert outcome.lazy_init and outcome.changes() == {"last_error": "cleared", "config": "applied"}


def test_ranges_are_parsed_intervals_with_named_bounds_resolved_per_model(spec):
    sampling = spec.ranges["sampling_valid"]
    assert sampling.arguments_of == "set_sampling"
    top_p = sampling.values["top_p"].range
    assert (top_p.contains(1.0), top_p.contains(0.0), top_p.contains(0.5), top_p.contains(1.01)) == (True, False, True, False)
    assert sampling.values["top_k"].range.upper is None and sampling.values["seed"].nullable
    token_ids = spec.ranges["input_valid"].values["prompt"].token_ids.resolve({"n_vocab": 320})
    assert token_ids.contains(319) and not token_ids.contains(320) and not token_ids.contains(-1)


def test_same_is_resolved_to_the_starting_state(spec):
    assert spec.outcome("Ready", "init_runtime").to == "Ready"
    assert spec.outcome("Freed", "init_runtime", {"config_valid": False}).to == "Freed"
    assert all(branch.outcome.to != "same" for branch in spec.all_branches())


def test_nested_cases_accumulate_their_conditions(spec):
    # RecoverableError.load_model: `model_resident: false` merged (<<) with the
    # load_into_empty anchor, whose own cases add the model_* guards.
    branches = spec.branches("RecoverableError", "load_model")
    assert [b.when for b in branches] == [
        {"model_resident": True},
        {"model_resident": False, "model_readable": False},
        {"model_resident": False, "model_readable": True, "model_well_formed": False},
        {"model_resident": False, "model_readable": True, "model_well_formed": True, "model_supported": False},
        {"model_resident": False, **LOAD_OK},
    ]


def test_a_merged_anchor_keeps_its_fields_for_every_case(spec):
    # `via: Loading` is written once on the anchor and applies to each nested case.
    assert {b.outcome.via for b in spec.branches("RecoverableError", "load_model")[1:]} == {"Loading"}
    assert spec.outcome("RecoverableError", "load_model", {"model_resident": True}).error == "InvalidState"


def test_lazy_init_borrows_the_initialized_cell(spec):
    for operation in ("load_model", "set_sampling", "generate", "reset", "replace_model"):
        lazy = spec.branches("Uninitialized", operation)
        initialized = spec.branches(LAZY_INIT_STATE, operation)
        assert [b.conditions for b in lazy] == [b.conditions for b in initialized]
        for borrowed, original in zip(lazy, initialized, strict=True):
            assert borrowed.outcome.lazy_init and not original.outcome.lazy_init
            assert (borrowed.outcome.to, borrowed.outcome.error, borrowed.outcome.via) == (
                original.outcome.to, original.outcome.error, original.outcome.via)


def test_same_in_a_borrowed_cell_means_initialized(spec):
    assert spec.outcome("Uninitialized", "reset").to == "Initialized"
    assert spec.outcome("Uninitialized", "generate").to == "Initialized"


def test_queries_answer_from_query_outcome_in_every_state(spec):
    for state in spec.states:
        for query in spec.queries:
            outcome = spec.outcome(state, query)
            assert outcome == Outcome(to=state, effect=read_table()["query_outcome"]["effect"], effects=outcome.effects)
            assert outcome.changes() == {}


def test_guards_for_names_exactly_the_deciding_guards(spec):
    assert spec.guards_for("Ready", "generate") == {"input_valid", "sampling_valid", "prompt_fits", "model_intact",
                                                    "logits_finite", "cancelled"}
    assert spec.guards_for("Ready", "free") == frozenset()


def test_missing_guard_values_raise_key_error_naming_them(spec):
    with pytest.raises(KeyError, match="cancelled, input_valid, logits_finite, model_intact, prompt_fits, sampling_valid"):
        spec.outcome("Ready", "generate", {})
    with pytest.raises(KeyError, match="prompt_fits") as caught:
        spec.outcome("Ready", "generate", {"input_valid": True, "sampling_valid": True, "cancelled": False})
    assert "input_valid" not in str(caught.value)


def test_extra_guard_values_are_ignored(spec):
    everything_true = dict.fromkeys(spec.guards, True)
    assert spec.outcome("Ready", "free", everything_true).to == "Freed"


@pytest.mark.parametrize("state, operation, unknown", [("Limbo", "free", "Limbo"), ("Ready", "explode", "explode")])
def test_unknown_names_raise_a_clear_error(spec, state, operation, unknown):
    with pytest.raises(UnknownName, match=rf"'{unknown}' is not an? \w+ of the lifecycle table"):
        spec.outcome(state, operation, {})


def test_resident_gives_required_and_optional_data(spec):
    required, optional = spec.resident("Ready")
    assert {"model", "tokenizer", "kv_cache", "scratch", "logits"} <= required
    assert "request" not in required | optional
    assert spec.resident("Uninitialized") == (frozenset(), frozenset())


def test_the_values_are_frozen(spec):
    branch = spec.branches("Ready", "free")[0]
    with pytest.raises(AttributeError):
        branch.outcome.to = "Ready"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.states["Limbo"] = spec.states["Ready"]  # type: ignore[index]


def test_only_the_guards_on_the_way_to_the_decision_need_values(spec):
    # A refused load needs no facts about the file.
    assert spec.outcome("RecoverableError", "load_model", {"model_resident": True}).error == "InvalidState"
    # An unreadable path decides the load before the bytes are parsed.
    assert spec.outcome("Freed", "load_model", {"model_readable": False}).error == "ModelUnavailable"
    with pytest.raises(KeyError, match="model_well_formed") as caught:
        spec.outcome("Freed", "load_model", {"model_readable": True})
    assert "model_readable" not in str(caught.value)


def test_guards_come_in_evaluation_order_with_when_they_are_known_and_what_they_need(spec):
    assert list(spec.guards).index("input_valid") < list(spec.guards).index("prompt_fits")
    assert spec.guards["prompt_fits"].needs == ("input_valid",)
    assert spec.guards["model_supported"].needs == ("model_readable", "model_well_formed")
    late = {name for name, guard in spec.guards.items() if guard.while_running}
    assert late == {"model_readable", "model_well_formed", "model_supported", "model_intact", "logits_finite",
                    "cancelled"}
