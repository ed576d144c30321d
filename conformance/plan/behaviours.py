"""The behavioural rules, as data: what each proves and the operations it needs.

They compare outputs (greedy tokens are deterministic) between runtimes that
took different roads to the same point, so they also judge implementations
that report no state and no diagnostics. Their checks run in
``run.behaviours``; where a rule expects an error, the error comes from the
table, not from a list here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ggufsm.spec.names import Operation

SEEDED: Mapping[str, float | int] = MappingProxyType(
    {"temperature": 0.9, "top_k": 40, "top_p": 0.95, "min_p": 0.0, "seed": 1234})
MEMORY_CYCLES = 8
CONTINUED_TOKENS = 3       # generate_next_token calls after a generate, in the continuation rule
CONCURRENT_GENERATES = 4   # threads calling generate on one handle at once


@dataclass(frozen=True)
class BehaviourRule:
    name: str
    needs: tuple[Operation, ...]
    statement: str

    @property
    def id(self) -> str:
        return f"behaviour.{self.name}"


_LOADED = (Operation.init_runtime, Operation.load_model, Operation.generate)

BEHAVIOUR_RULES: tuple[BehaviourRule, ...] = (
    BehaviourRule("failed_replace_keeps_output", (*_LOADED, Operation.replace_model),
                  "a failed replace_model leaves the previous model installed: greedy output is identical; "
                  "a successful one gives the new model's output"),
    BehaviourRule("reset_equals_fresh", (*_LOADED, Operation.reset),
                  "after reset, nothing can be continued and output equals a fresh runtime's"),
    BehaviourRule("request_cleanup", _LOADED,
                  "each generate clears the previous request: tokens, text and counters equal a fresh runtime's"),
    BehaviourRule("context_rejection_leaves_no_partial_state", _LOADED,
                  "a prompt that does not fit is rejected with the table's error and leaves nothing behind"),
    BehaviourRule("generate_after_free", (*_LOADED, Operation.free),
                  "after free, generation fails with the error the table gives it in the state free leaves"),
    BehaviourRule("seeded_determinism", _LOADED, "the same seed and settings give the same tokens"),
    BehaviourRule("continuation", (*_LOADED, Operation.generate_next_token),
                  f"generate(n) then {CONTINUED_TOKENS} generate_next_token equals generate(n+{CONTINUED_TOKENS}) "
                  "(greedy)"),
    BehaviourRule("concurrent_calls_serialized", (*_LOADED, Operation.free),
                  f"{CONCURRENT_GENERATES} generates from as many threads on one handle do not crash and each "
                  "equals its run alone"),
    BehaviourRule("free_returns_memory", (*_LOADED, Operation.free),
                  f"the process's memory stays flat over {MEMORY_CYCLES} load/generate/free cycles"),
)
