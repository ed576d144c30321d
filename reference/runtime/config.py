"""The runtime's configuration: context size, threads, batched decode (the config_valid guard checks it)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeConfig:
    n_ctx: int | None = None       # None: the model's training context, capped at DEFAULT_MAX_CTX
    n_threads: int = 0             # 0: all cores
    # Decode steps of handles generating at once on the same model run as one pass (reference/runtime/batching.py);
    # False: this handle's steps always run alone (to compare, or to rule batching out).
    batch_decode: bool = True
    DEFAULT_MAX_CTX = 4096

    def problems(self) -> list[str]:
        """Each value against the range the table states for it (`ranges.config_valid`)."""
        from ggufsm.spec import load_spec
        from ggufsm.spec.names import Guard
        from ggufsm.spec.ranges import in_range, range_text

        problems = [f"{name}={getattr(self, name)!r} is out of range: expected {range_text(value_range)}"
                    for name, value_range in load_spec().ranges[Guard.config_valid].values.items()
                    if not in_range(value_range, getattr(self, name))]
        if not isinstance(self.batch_decode, bool):  # a runtime switch, not a range of the table
            problems.append(f"batch_decode={self.batch_decode!r}: expected True or False")
        return problems

    def thread_count(self) -> int:
        """The forward's threads: n_threads (0: every core), capped at the cores this process may use
        (the table's rule: more threads than cores only take turns; 1024 on 2 cores once made 8 tokens
        take 235 s instead of 0.07 s)."""
        cores = usable_cores()
        return min(self.n_threads, cores) if self.n_threads else cores

    def thread_note(self) -> str | None:
        """Diagnostics' note when n_threads was capped, else None."""
        cores = usable_cores()
        if self.n_threads > cores:
            return f"n_threads={self.n_threads} capped at the {cores} core(s) this process may use"
        return None


    def context_for(self, n_ctx_train: int) -> int:
        return self.n_ctx if self.n_ctx is not None else min(n_ctx_train, self.DEFAULT_MAX_CTX)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
