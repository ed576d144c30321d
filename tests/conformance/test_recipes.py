"""The recipes make every guard of the table hold either way, and nothing else."""

from __future__ import annotations

from ggufsm.conformance.plan.recipes import NATURAL_VALUES, RECIPES
from ggufsm.spec import load_spec
from ggufsm.spec.names import Guard


def test_the_recipes_cover_exactly_the_tables_guards():
    assert set(RECIPES) == set(load_spec().guards) == set(Guard)
    assert all(isinstance(guard, Guard) for guard in RECIPES)


def test_every_guard_has_a_natural_value_and_a_recipe_for_each_value():
    for guard, recipe in RECIPES.items():
        assert NATURAL_VALUES[guard] == recipe.natural
        assert recipe.when_true and recipe.when_false and recipe.when_true != recipe.when_false, guard


# ─── model_intact false: the kit changes its private copy of the loaded file ──

def test_every_model_intact_false_branch_is_planned_as_each_kind_of_file_change_and_none_is_unreachable():
    from ggufsm.conformance.inputs import placeholder_inputs
    from ggufsm.conformance.plan.cases import Probe, plan_suite
    from ggufsm.conformance.plan.recipes import FILE_CHANGES

    spec = load_spec()
    plans, unreachable = plan_suite(spec, placeholder_inputs())
    assert unreachable == []
    changed = [branch.source for branch in spec.all_branches() if dict(branch.conditions).get(Guard.model_intact) is False]
    assert len(changed) == 4
    for source in changed:
        cases = [plan for plan in plans if plan.rule == source]
        assert sorted(plan.file_change.how for plan in cases if plan.file_change) == sorted(FILE_CHANGES), source
        for plan in cases:
            assert plan.file_change.file == "model"
            assert plan.probes == (Probe.other_handle_carries_on, Probe.free_after_file_change)
            assert plan.call.expected.finish_reason is None   # the generate fails: it does not end
    # Every other case leaves the files alone.
    assert all(plan.file_change is None for plan in plans if plan.rule not in changed)


def test_a_file_change_is_never_a_step_of_a_path_to_another_case():
    from ggufsm.conformance.inputs import placeholder_inputs
    from ggufsm.conformance.plan.recipes import realize

    arrangement = realize("generate", {Guard.model_intact: False}, placeholder_inputs())
    assert arrangement.change_file is not None and not arrangement.plain


def test_the_private_copy_is_named_for_the_call_and_each_change_keeps_its_inode(tmp_path):
    import os
    from pathlib import Path

    from ggufsm.conformance.plan.cases import ModelFileChange
    from ggufsm.conformance.plan.recipes import FileChange, SuiteInputs
    from ggufsm.conformance.run.file_changes import private_copy

    model, other = tmp_path / "model.gguf", tmp_path / "other.gguf"
    model.write_bytes(b"m" * 4096)
    other.write_bytes(b"o" * 3000)
    inputs = SuiteInputs(model=str(model), alt_model=str(other), corrupt_model="c", unsupported_model="u",
                         missing_model="x")
    for how, size, byte in [(FileChange.truncate, 2048, b"m"), (FileChange.overwrite, 3000, b"o")]:
        with private_copy(ModelFileChange("model", how), inputs) as copy:
            assert copy is not None and copy.path.name == model.name and copy.path != model
            assert copy.args({"path": str(model), "n_ctx": 8}) == {"path": str(copy.path), "n_ctx": 8}
            before = os.stat(copy.path)
            copy.apply()
            after = os.stat(copy.path)
            assert after.st_ino == before.st_ino and after.st_size == size
            assert after.st_mtime_ns != before.st_mtime_ns   # dated back when made: any clock sees the change
            assert Path(copy.path).read_bytes() == byte * size
        assert not copy.path.exists()
        assert model.read_bytes() == b"m" * 4096   # the suite's own file is never touched


def test_every_logits_finite_false_branch_runs_on_the_overflow_model_and_without_one_is_not_supported():
    from dataclasses import replace

    from ggufsm.conformance.inputs import placeholder_inputs
    from ggufsm.conformance.plan.cases import plan_suite

    spec = load_spec()
    overflowing = {branch.source for branch in spec.all_branches()
                   if dict(branch.conditions).get(Guard.logits_finite) is False}
    assert len(overflowing) == 4
    plans, _ = plan_suite(spec, placeholder_inputs())
    cases = [plan for plan in plans if plan.rule in overflowing]
    assert {plan.rule for plan in cases} == overflowing
    assert all(plan.runs_on == "overflow_model" and plan.call.expected.error == "InvalidModel" for plan in cases)
    assert all(plan.runs_on is None for plan in plans if plan.rule not in overflowing)
    _, unreachable = plan_suite(spec, replace(placeholder_inputs(), overflow_model=""))
    assert {missing.rule for missing in unreachable} == overflowing
    assert all("no overflow_model" in missing.why for missing in unreachable)
