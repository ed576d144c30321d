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
SEEDED_TOKENS = 16         # tokens a seeded comparison draws (enough that a wrong runtime cannot match by luck:
                           # tests/fixtures/test_successor_models.py computes the odds on the kit's models)
OTHER_SEED = 4321
MEMORY_WARMUP_CYCLES = 4   # load/generate/free cycles before memory is judged (allocators settle)
MEMORY_CYCLES = 8          # the cycles it is judged over
# The growth per cycle, as a fraction of one load's footprint, that counts as a leak: half the 5% the
# rule must catch, so a 5% leak is caught with room to spare and allocator noise (0 here) is not.
LEAK_FRACTION = 0.025
# Below this growth per cycle nothing counts as a leak: the kit's own bookkeeping between cycles (its call
# records, in-process) grows memory by up to ~4 KiB a cycle here, and a model of a few KiB has no 5% to catch.
LEAK_FLOOR_BYTES = 16 << 10
CONTINUED_TOKENS = 3       # generate_next_token calls after a generate, in the continuation rule
CONCURRENT_GENERATES = 4   # threads calling generate on one handle at once
HANDLE_CONTEXT_FACTOR = 2  # the second handle's context is this many times the first's


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
    BehaviourRule("seeded_determinism", _LOADED, f"the same seed and settings give the same {SEEDED_TOKENS} tokens, "
                  "another seed other ones"),
    BehaviourRule("request_sampling_is_its_own", (*_LOADED, Operation.set_sampling),
                  "a generate's own sampling applies to that request only: the next generate samples with the "
                  "handle's settings"),
    BehaviourRule("continuation", (*_LOADED, Operation.generate_next_token),
                  f"generate(n) then {CONTINUED_TOKENS} generate_next_token equals generate(n+{CONTINUED_TOKENS}) "
                  "(greedy)"),
    BehaviourRule("concurrent_calls_serialized", (*_LOADED, Operation.free),
                  f"{CONCURRENT_GENERATES} generates from as many threads on one handle do not crash and each "
                  "equals its run alone"),
    BehaviourRule("free_returns_memory", (*_LOADED, Operation.free),
                  f"over {MEMORY_CYCLES} load/generate/free cycles the process's memory grows by less than "
                  f"{LEAK_FRACTION:.1%} of one load's footprint a cycle (a 5% leak is caught)"),
    BehaviourRule("handles_are_isolated", (*_LOADED, Operation.set_sampling, Operation.generate_next_token,
                                           Operation.free),
                  "two handles in one process share nothing: configuration, sampling settings, random draws, "
                  "last_error, model and KV state of one never reach the other"),
    BehaviourRule("handles_run_in_parallel", _LOADED,
                  "while one handle's generate is held mid-request, another handle's generate runs to its end"),
)
