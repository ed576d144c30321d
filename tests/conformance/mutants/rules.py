"""The rules the mutants break, named where they are written.

A table rule is looked up in the table (``spec/lifecycle.yaml``) when the
mutant module is imported, so a mutant can never name a branch, guard, state
or finish reason that is not there, and the words it shows are the table's
own. A seed rule quotes the seed (``shared/seed/runtime-state-machine.txt``)
or DESIGN.md's lifecycle rules, which elaborate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ggufsm.spec import load_spec
from ggufsm.spec.names import ResidentDatum


@dataclass(frozen=True)
class Rule:
    ref: str    # where it is written: "cells.Ready.reset", "guards.prompt_fits", "seed: ..."
    says: str   # what it says, in the words of the place it is written

    def __str__(self) -> str:
        return f"{self.ref}: {self.says}"


def cell(state: str, operation: str, **when: bool) -> Rule:
    """The one branch of a cell that the given guard values select (all of them, if it has one)."""
    branches = load_spec().branches(state, operation)
    chosen = [branch for branch in branches if not branch.excluded_by(when)]
    if len(chosen) != 1:
        raise LookupError(f"{state}.{operation} with {when}: {len(chosen)} branches of the table match, expected one")
    branch = chosen[0]
    outcome = branch.outcome
    to = f"-> {outcome.error + ', ' if outcome.error else ''}{outcome.to}"
    return Rule(branch.source, f"{to}; {outcome.effect}" if outcome.effect else to)


def guard(name: str) -> Rule:
    return Rule(f"guards.{name}", load_spec().guards[name].description)


def finish_reason(name: str) -> Rule:
    return Rule(f"finish_reasons.{name}", load_spec().finish_reasons[name])


def resident(state: str, datum: ResidentDatum) -> Rule:
    entry = load_spec().states[state]
    how = "required" if datum in entry.required else "optional" if datum in entry.optional else "not allowed"
    return Rule(f"states.{state}.resident", f"{datum} is {how} in {state}")


def resident_datum(datum: ResidentDatum) -> Rule:
    return Rule(f"resident_data.{datum}", load_spec().resident_data[datum])


def seed(section: str, quote: str) -> Rule:
    """A rule of the seed document (or DESIGN.md's lifecycle rules, which elaborate it), quoted."""
    return Rule(f"seed: {section}", quote)


def both(first: Rule, second: Rule) -> Rule:
    """A deviation that breaks a table branch and the seed rule behind it."""
    return Rule(f"{first.ref} + {second.ref}", f"{first.says} ({second.says})")


TRANSACTIONAL = seed("transactional load", "a failed replace leaves the previous model resident and producing "
                                           "identical output")
REQUEST_CLEANUP = seed("request-state cleanup", "each new generate clears prior tokens, output and request counters; "
                                                "a context-rejected request leaves no partial state")
FREE_RELEASES = seed("free", "free releases model, cache, scratch and logits (memory is returned)")
SERIALIZED = seed("concurrency boundary", "calls on one handle are serialized")
SEPARATE_HANDLES = seed("concurrency boundary", "several sessions or models are separate handles, never extra globals")
LAZY_INIT = seed("lazy init", "most operations in Uninitialized initialize first, then report their operation error")
DETERMINISM = Rule("design: determinism", "a handle's sampling is its own: the same seed and settings on the same tokens "
                                  "give the same draws; a continued request samples as the longer generate would")


def state(name: str) -> Rule:
    entry = load_spec().states[name]
    return Rule(f"states.{name}", f"{entry.description} {entry.allowed_summary}")

