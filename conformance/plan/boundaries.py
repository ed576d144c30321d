"""Boundary values: each argument a guard checks, at every edge of its range and just past it.

The ranges are the table's (``ranges`` in spec/lifecycle.yaml): an integer's
closed edge b gives b (in range) and b - 1 or b + 1 (out); an open edge gives
b (out) and one step inside; a number steps by its ``step``; a nullable value
adds null (in range). A prompt's ranges are a length (text or token ids; 0 is
out) and, with the model's vocabulary size known, the token ids 0, n_vocab - 1
(in) and -1, n_vocab (out); the prompt_fits guard's length in tokens is
n_ctx - 1 (fits) and n_ctx (does not), as a list of token id 0.

Each value becomes one variant of the case of a branch that decides on the
guard, in one representative cell per operation (the first state in table
order where the operation decides on the guard): a value in range varies the
branch where the guard holds, a value out of range the branch where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ggufsm.spec import Spec
from ggufsm.spec.names import FinishReason, Guard, Operation
from ggufsm.spec.table import Bound, Interval, ValueRange

# Where a guard's arguments go: the operation's own arguments, or (for sampling) also generate's
# `sampling` argument, which takes set_sampling's values for one request.
SAMPLING_ARGUMENT = "sampling"


@dataclass(frozen=True)
class EdgeValue:
    """One argument at one edge: the guard it tests, the operation it is sent to, and whether it is in range."""

    guard: Guard
    operation: Operation
    argument: str            # "n_ctx", "sampling.top_p", "prompt", ...
    value: Any
    in_range: bool
    ends: FinishReason | None = None   # how a generate with it ends (a valid generate edge)

    @property
    def label(self) -> str:
        shown = _label_value(self.value)
        return f"{self.argument}={shown}"

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments with this value in place."""
        if self.argument.startswith(SAMPLING_ARGUMENT + "."):
            field = self.argument.split(".", 1)[1]
            return {**args, SAMPLING_ARGUMENT: {**dict(args.get(SAMPLING_ARGUMENT) or {}), field: self.value}}
        return {**args, self.argument: self.value}


def _label_value(value: Any) -> str:
    if isinstance(value, list):
        return f"[{value[0]}]x{len(value)}" if len(value) > 3 and len(set(value)) == 1 else str(value).replace(" ", "")
    if isinstance(value, str):
        return repr(value)
    return "null" if value is None else str(value)


def edge_values(spec: Spec, *, n_ctx: int, n_vocab: int | None) -> Iterator[EdgeValue]:
    """Every guard's arguments at every edge, for the operations that take them."""
    for guard_name, ranges in spec.ranges.items():
        guard, operation = Guard(guard_name), Operation(ranges.arguments_of)
        for name, value_range in ranges.values.items():
            for value, in_range, ends in _edges(guard, value_range, n_ctx=n_ctx, n_vocab=n_vocab):
                yield EdgeValue(guard, operation, name, value, in_range, ends)
                if operation == Operation.set_sampling:
                    yield EdgeValue(guard, Operation.generate, f"{SAMPLING_ARGUMENT}.{name}", value, in_range,
                                    FinishReason.length if in_range else None)


def _edges(guard: Guard, value: ValueRange, *, n_ctx: int, n_vocab: int | None) -> Iterator[tuple[Any, bool, Any]]:
    if value.type == "prompt":
        yield from _prompt_edges(guard, value, n_ctx=n_ctx, n_vocab=n_vocab)
        return
    assert value.range is not None
    ends = FinishReason.length if guard == Guard.input_valid else None
    for number, in_range in _interval_edges(value.range, value.type == "integer", value.step):
        # A generate asked for 0 tokens ends at once, by its length.
        yield number, in_range, ends if in_range else None
    if value.nullable:
        yield None, True, ends


def _interval_edges(interval: Interval, integer: bool, step: float | None) -> Iterator[tuple[float, bool]]:
    delta = 1 if integer else (step or 0.01)
    for bound, outward in ((interval.lower, -1), (interval.upper, +1)):
        if bound is None or bound.symbolic:
            continue
        edge = bound.value
        assert not isinstance(edge, str)
        inward = _round(edge - outward * delta, integer)
        past = _round(edge + outward * delta, integer)
        if bound.closed:
            yield edge, True
            yield past, False
        else:
            yield edge, False
            yield inward, True


def _round(value: float, integer: bool) -> float:
    return int(value) if integer else round(value, 10)


def _prompt_edges(guard: Guard, value: ValueRange, *, n_ctx: int, n_vocab: int | None) -> Iterator[tuple[Any, bool, Any]]:
    names = {"n_ctx": n_ctx} | ({"n_vocab": n_vocab} if n_vocab is not None else {})
    if guard == Guard.prompt_fits:
        assert value.length is not None
        # In tokens, at the context's end (the lower edge is input_valid's): the longest prompt that
        # fits leaves one position, so its generate fills the context with one token.
        upper_only = Interval(None, value.length.upper, value.length.text)
        for length, in_range in _resolved_edges(upper_only, names):
            yield [0] * int(length), in_range, FinishReason.context if in_range else None
        return
    if value.length is not None and value.length.lower is not None:
        shortest = value.length.lower
        for length, in_range in _interval_edges(Interval(shortest, None, value.length.text), True, None):
            if length == 0:
                yield "", in_range, None
                yield [], in_range, None
    if value.token_ids is not None:
        for token, in_range in _resolved_edges(value.token_ids, names):
            yield [int(token)], in_range, FinishReason.length if in_range else None


def _resolved_edges(interval: Interval, names: dict[str, int]) -> Iterator[tuple[float, bool]]:
    """The edges of a range whose named bounds are known; the unknown ones are left out."""
    def known(bound: Bound | None) -> Bound | None:
        if bound is None or not bound.symbolic:
            return bound
        return Bound(names[str(bound.value)], bound.closed) if str(bound.value) in names else None
    yield from _interval_edges(Interval(known(interval.lower), known(interval.upper), interval.text), True, None)
