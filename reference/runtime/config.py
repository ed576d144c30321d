"""The runtime's configuration: context size and threads (the config_valid guard checks it)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeConfig:
    n_ctx: int | None = None       # None: the model's training context, capped at DEFAULT_MAX_CTX
    n_threads: int = 0             # 0: all cores
    DEFAULT_MAX_CTX = 4096

    def problems(self) -> list[str]:
        """Each value against the range the table states for it (`ranges.config_valid`)."""
        from ggufsm.spec import load_spec
        from ggufsm.spec.names import Guard
        from ggufsm.spec.ranges import in_range, range_text

        return [f"{name}={getattr(self, name)!r} is out of range: expected {range_text(value_range)}"
                for name, value_range in load_spec().ranges[Guard.config_valid].values.items()
                if not in_range(value_range, getattr(self, name))]

    def thread_count(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def context_for(self, n_ctx_train: int) -> int:
        return self.n_ctx if self.n_ctx is not None else min(n_ctx_train, self.DEFAULT_MAX_CTX)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
