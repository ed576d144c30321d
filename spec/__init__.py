"""ggufsm.spec: the lifecycle table and everything derived from it.

``load_spec()`` gives the checked, normalised table; ``spec.outcome(state,
operation, guards)`` is the one question the runtime and the conformance kit
ask of it.
"""

from ggufsm.spec.table import Branch, Outcome, Spec, SpecDefects, SpecError, UnknownName, load_spec

__all__ = ["load_spec", "Spec", "Outcome", "Branch", "SpecError", "SpecDefects", "UnknownName"]
