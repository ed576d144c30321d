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
        found = []
        if self.n_ctx is not None and (not is_int(self.n_ctx) or not 8 <= self.n_ctx <= 1 << 20):
            found.append(f"n_ctx={self.n_ctx!r} is out of range: expected None or an integer in [8, {1 << 20}]")
        if not is_int(self.n_threads) or not 0 <= self.n_threads <= 1024:
            found.append(f"n_threads={self.n_threads!r} is out of range: expected an integer in [0, 1024] (0 = all cores)")
        return found

    def thread_count(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def context_for(self, n_ctx_train: int) -> int:
        return self.n_ctx if self.n_ctx is not None else min(n_ctx_train, self.DEFAULT_MAX_CTX)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
