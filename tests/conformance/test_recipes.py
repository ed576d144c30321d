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
