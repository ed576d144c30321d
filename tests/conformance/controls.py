"""Controls: correct implementations that take the freedoms the spec leaves open. The suite must pass
every one of them with no false failure (tests/conformance/test_controls.py).

Each is the toy runtime (toy_runtime.py) with one freedom taken:

- n_ctx=0 means the model's default context (the table states [8, 1048576] and null; 0 is unstated);
- a cancelled generate sends no partial value (the protocol makes it optional);
- a generate stopped by the end-of-generation token leaves that token out of its token_ids;
- the implementation's default sampling is greedy (the table states ranges, not defaults);
- diagnostics list resident data only, without the structured 1.1 fields;
- the implementation cannot pause (the 1.0 arrangements: a first-token trigger, a long generate);
- replies carry no state (the state query still answers).
"""

from __future__ import annotations

from dataclasses import replace

from toy_runtime import DEFAULT_SAMPLING, EOS, ToyAdapter

from ggufsm.conformance.adapter import Gate, Reply, TokenCallback
from ggufsm.spec.errors import GgufsmError


class ZeroContextMeansDefault(ToyAdapter):
    name = "control-n-ctx-0-is-the-default"

    def op_init_runtime(self, n_ctx=None, n_threads=0) -> None:
        super().op_init_runtime(None if n_ctx == 0 else n_ctx, n_threads)


class CancelSendsNoPartialValue(ToyAdapter):
    name = "control-cancel-sends-no-partial-value"

    def op_generate(self, *args, **kwargs) -> dict:
        try:
            return super().op_generate(*args, **kwargs)
        except GgufsmError as error:
            if hasattr(error, "partial_value"):
                del error.partial_value
            raise


class EosLeftOutOfTheTokens(ToyAdapter):
    name = "control-eos-left-out"

    def op_generate(self, *args, **kwargs) -> dict:
        value = super().op_generate(*args, **kwargs)
        if value["finish_reason"] == "stop" and value["token_ids"][-1:] == [EOS]:
            value = {**value, "token_ids": value["token_ids"][:-1]}
        return value


class GreedyByDefault(ToyAdapter):
    name = "control-greedy-by-default"

    def __init__(self) -> None:
        super().__init__()
        self.rt.sampling = {**DEFAULT_SAMPLING, "temperature": 0.0}


class ResidentOnlyDiagnostics(ToyAdapter):
    name = "control-resident-only-diagnostics"
    structured_diagnostics = False

    def op_diagnostics(self) -> dict:
        return {"resident": self.rt.resident()}


class CannotPause(ToyAdapter):
    name = "control-cannot-pause"

    def __init__(self) -> None:
        super().__init__()
        self.info = replace(self.info, capabilities=replace(self.info.capabilities, pause=False))

    def call(self, op: str, args: dict | None = None, on_token: TokenCallback | None = None,
             timeout: float | None = None, gate: Gate | None = None) -> Reply:
        return super().call(op, args, on_token=on_token, timeout=timeout, gate=None)


class RepliesCarryNoState(ToyAdapter):
    """Replies carry no state (capability state: false); the state query still answers."""

    name = "control-replies-carry-no-state"

    def reports_state(self) -> bool:
        return False


CONTROLS = (ZeroContextMeansDefault, CancelSendsNoPartialValue, EosLeftOutOfTheTokens, GreedyByDefault,
            ResidentOnlyDiagnostics, CannotPause, RepliesCarryNoState)
