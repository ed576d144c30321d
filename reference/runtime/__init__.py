"""The runtime handle: every operation guarded by the lifecycle table."""

from ggufsm.reference.runtime.handle import Generation, Runtime, RuntimeConfig, TokenEvent

__all__ = ["Generation", "Runtime", "RuntimeConfig", "TokenEvent"]
