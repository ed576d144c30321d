"""The runnable unit: one check with a name, the rule it proves, and a function that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ggufsm.conformance.adapter import (
    Adapter,
    CallRecord,
    Gate,
    Implementation,
    ImplementationDied,
    ImplementationHung,
    RecordingAdapter,
    Reply,
    TokenCallback,
)

CELL, BEHAVIOUR, WALK = "cell", "behaviour", "walk"


@dataclass
class Case:
    """One runnable check. `run` gets a fresh adapter (or, with fresh_adapter=False, an opener of
    fresh runtimes) and returns notes; it raises to fail."""

    id: str
    kind: str                   # CELL, BEHAVIOUR or WALK
    rule: str                   # the table branch or behavioural rule it proves
    description: list[str]
    run: Callable[[Adapter], list[str]]
    cell: str | None = None
    conditions: dict[str, bool] = field(default_factory=dict)
    transitions: tuple[Any, ...] = ()
    fresh_adapter: bool = True  # False: the case opens its own runtimes (behaviour cases comparing two)
    measures: dict[str, Any] = field(default_factory=dict)   # what the run measured (the walk's triple coverage)
    # What the kit does beside the calls, which a reproduction made of protocol requests must say too
    # (a model file changed between two calls, another input's file used for the model).
    kit_actions: list[str] = field(default_factory=list)


class Opener(Adapter):
    """What a case that opens its own runtimes gets (fresh_adapter=False): `open()` gives a fresh
    recorded adapter; the calls of all of them are kept in one log, in order."""

    def __init__(self, implementation: Implementation):
        self.implementation = implementation
        self.info = implementation.info
        self.calls: list[CallRecord] = []
        self._opened: list[RecordingAdapter] = []

    def open(self) -> RecordingAdapter:
        adapter = RecordingAdapter(self.implementation.open())
        adapter.calls = self.calls
        self._opened.append(adapter)
        return adapter

    def open_handle(self) -> RecordingAdapter:
        """Another runtime beside the one opened last (the implementation's handles)."""
        from ggufsm.conformance.run.checks import Unsupported

        try:
            inner = self.implementation.open_handle()
        except NotImplementedError as error:
            raise Unsupported("open_handle", str(error)) from None
        adapter = RecordingAdapter(inner, handle_label=f"handle-{len(self._opened)}")
        adapter.calls = self.calls
        self._opened.append(adapter)
        return adapter

    def call(self, op: str, args: dict[str, Any] | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        raise TypeError("open() a runtime first")

    def close(self) -> None:
        for adapter in self._opened:
            close_quietly(adapter)


def close_quietly(adapter: Adapter) -> None:
    """Close an adapter whose implementation may already have died or hung (the case says so)."""
    try:
        adapter.close()
    except (ImplementationDied, ImplementationHung):
        pass
