"""The reference Runtime: one handle, every operation guarded by the lifecycle table.

Each public command follows the same four steps:
  1. take the handle's lock (commands on one handle are serialized; queries
     and cancel never wait),
  2. compute the guard values its cell names, without changing anything
     (a load parses and validates off to the side here),
  3. ask the table for the outcome,
  4. act, then commit: enter the outcome's state, drop every resident datum
     that state does not allow, and raise the named error if there is one.

Nothing in this file decides a transition by itself: states, errors and the
resident data each state allows all come from spec/lifecycle.yaml.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

from ggufsm.reference.model.loaded_model import LoadedModel, build_loaded_model
from ggufsm.reference.sampling import Sampler, SamplingConfig
from ggufsm.spec import load_spec
from ggufsm.spec.errors import GgufsmError, error_class

INITIAL_STATE = "Uninitialized"


@dataclass(frozen=True)
class RuntimeConfig:
    n_ctx: int | None = None       # None: the model's training context, capped at DEFAULT_MAX_CTX
    n_threads: int = 0             # 0: all cores
    DEFAULT_MAX_CTX = 4096

    def problems(self) -> list[str]:
        found = []
        if self.n_ctx is not None and (not _is_int(self.n_ctx) or not 8 <= self.n_ctx <= 1 << 20):
            found.append(f"n_ctx={self.n_ctx!r} is out of range: expected None or an integer in [8, {1 << 20}]")
        if not _is_int(self.n_threads) or not 0 <= self.n_threads <= 1024:
            found.append(f"n_threads={self.n_threads!r} is out of range: expected an integer in [0, 1024] (0 = all cores)")
        return found

    def thread_count(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def context_for(self, n_ctx_train: int) -> int:
        return self.n_ctx if self.n_ctx is not None else min(n_ctx_train, self.DEFAULT_MAX_CTX)


@dataclass
class TokenEvent:
    token_id: int
    text: str          # the text this token completes (may be "" while a UTF-8 sequence is incomplete)
    index: int         # position among the request's generated tokens


@dataclass
class Generation:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str             # "stop", "length", "context" or "cancelled"
    timings: dict = field(default_factory=dict)


@dataclass
class _Request:
    """The open request: its tokens, its KV position and its sampler."""

    prompt_token_ids: list[int]
    sampler: Sampler
    stream_decoder: object
    generated_token_ids: list[int] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    n_past: int = 0
    finish_reason: str | None = None
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.generated_token_ids


class _GuardValues:
    """Guard values for one call, computed on demand, with the reason each one failed."""

    def __init__(self, computations: dict[str, Callable[[], tuple[bool, str]]]):
        self._computations = computations
        self.values: dict[str, bool] = {}
        self.reasons: list[str] = []

    def value(self, name: str) -> bool:
        if name not in self.values:
            value, reason = self._computations[name]()
            self.values[name] = value
            if reason:
                self.reasons.append(reason)
        return self.values[name]


def _decide(spec, state: str, operation: str, guards: _GuardValues, fixed: dict[str, bool] | None = None):
    """The cell's outcome, computing guards in _GUARD_ORDER only until the outcome no longer depends
    on the rest: a refused load never parses the file, a malformed prompt is never measured."""
    names = sorted(spec.guards_for(state, operation), key=_GUARD_ORDER.index)
    known = dict(fixed or {})
    for name in [None, *names]:
        if name is not None and name not in known:
            known[name] = guards.value(name)
        unknown = [other for other in names if other not in known]
        outcomes = {_outcome_key(spec.outcome(state, operation, {**known, **dict(zip(unknown, values))}))
                    for values in itertools.product((False, True), repeat=len(unknown))}
        if len(outcomes) == 1:
            return spec.outcome(state, operation, {**known, **{other: False for other in unknown}})
    raise AssertionError(f"the table left {state} x {operation} undecided for {known}")


def _outcome_key(outcome) -> tuple:
    return outcome.to, outcome.error, outcome.via, outcome.lazy_init, outcome.serialized


# Guards are computed in this order so that a guard may rely on the ones before
# it having held (a prompt is measured only once it is known to be well-formed).
_GUARD_ORDER = ["config_valid", "model_resident", "model_readable", "model_well_formed", "model_supported",
                "input_valid", "sampling_valid", "prompt_fits", "context_left", "cancelled"]


_LOAD_ERROR_CODES = ("ModelUnavailable", "InvalidModel", "UnsupportedModel")


class Runtime:
    """A handle: its own state, model, KV cache, sampler and lock. Several can live in one process."""

    def __init__(self) -> None:
        self._spec = load_spec()
        self._lock = threading.Lock()
        self._state = INITIAL_STATE
        self._config: RuntimeConfig | None = None
        self._sampling = SamplingConfig()
        self._model: LoadedModel | None = None
        self._session = None
        self._request: _Request | None = None
        self._logits = None            # (n_vocab,) float32 of the last evaluated position
        self._last_error: GgufsmError | None = None
        self._cancel_requested = threading.Event()
        self._counters = {"operations": 0, "errors": 0, "requests": 0}
        self._timings: dict[str, float] = {}

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> str:
        return self._state

    @property
    def last_error(self) -> GgufsmError | None:
        return self._last_error

    def diagnostics(self) -> dict:
        """A snapshot: state, resident data, model summary, context use, counters, timings, memory held."""
        model, session, request, config = self._model, self._session, self._request, self._config
        memory = dict(session.nbytes) if session is not None else {}
        if model is not None:
            memory["model_mapped"] = model.gguf.file_size
        return {
            "spec_version": self._spec.version,
            "state": self._state,
            "resident": sorted(self._resident_data()),
            "config": asdict(config) if config else None,
            "sampling": asdict(self._sampling),
            "model": dict(model.summary) if model else None,
            "context": {"n_ctx": session.n_ctx if session else None, "used": request.n_past if request else 0},
            "request": _request_counters(request),
            "counters": dict(self._counters),
            "timings": dict(self._timings),
            "memory": {**memory, "total": sum(memory.values())},
            "last_error": self._last_error.to_dict() if self._last_error else None,
        }

    def cancel(self) -> bool:
        """Ask a running generate to stop after its current token. True when one was running."""
        outcome = self._spec.outcome(self._state, "cancel", {})
        running = self._state == "Generating"
        if running:
            self._cancel_requested.set()
        assert outcome.to == self._state
        return running

    # ----------------------------------------------------------------- commands

    def init_runtime(self, config: RuntimeConfig | None = None, **settings) -> None:
        config = config or RuntimeConfig(**settings)
        with self._command("init_runtime") as call:
            call.decide({"config_valid": lambda: _check(not config.problems(), "; ".join(config.problems()))})
            call.commit(lambda: self._configure(config))

    def load_model(self, source) -> dict:
        return self._install("load_model", source)

    def replace_model(self, source) -> dict:
        return self._install("replace_model", source)

    def set_sampling(self, config: SamplingConfig | None = None, **parameters) -> None:
        with self._command("set_sampling") as call:
            candidate = {}

            def sampling_valid():
                try:
                    candidate["config"] = (config or self._sampling.with_overrides(**parameters)).validated()
                    return True, ""
                except GgufsmError as error:
                    return False, error.message

            call.decide({"sampling_valid": sampling_valid, "model_resident": self._model_resident})
            call.commit(lambda: setattr(self, "_sampling", candidate["config"]))

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, *, on_token: Callable[[TokenEvent], None] | None = None,
                 stop_at_eos: bool = True, **sampling_overrides) -> Generation:
        """Start a new request (clearing the previous one) and generate up to max_tokens tokens."""
        with self._command("generate") as call:
            checked: dict = {}
            call.decide({
                "model_resident": self._model_resident,
                "input_valid": lambda: self._check_request_input(prompt, max_tokens, checked),
                "sampling_valid": lambda: self._check_request_sampling(sampling_overrides, checked),
                "prompt_fits": lambda: self._check_prompt_fits(checked),
                "cancelled": lambda: (False, ""),
            })
            self._cancel_requested.clear()
            self._state = call.outcome.via
            request = self._open_request(checked["prompt_ids"], checked["sampling"])
            try:
                self._prefill(request)
                self._generate_tokens(request, max_tokens, on_token, stop_at_eos)
            except _CallbackFailed as failure:
                request.finish_reason = "cancelled"
                call.finish({"cancelled": True}, reason=f"the on_token callback raised {failure.cause!r}",
                            cause=failure.cause)
            cancelled = request.finish_reason == "cancelled"
            call.finish({"cancelled": cancelled}, reason="cancelled after "
                        f"{len(request.generated_token_ids)} generated token(s)" if cancelled else "")
            return _generation_of(request)

    def generate_stream(self, prompt: str | Sequence[int], max_tokens: int = 128, **options) -> Iterator[TokenEvent]:
        """Yield tokens as they come. The generate runs on a worker thread, so every other call on this
        handle, even from inside the loop, is serialized behind it as the table says. Leaving the loop
        early cancels the request (its tokens so far are kept)."""
        events: queue.Queue = queue.Queue()
        done = object()

        def run():
            try:
                events.put(self.generate(prompt, max_tokens, on_token=events.put, **options))
            except BaseException as error:  # handed to the consumer, raised there
                events.put(error)
            finally:
                events.put(done)

        worker = threading.Thread(target=run, name="ggufsm-generate", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                if isinstance(item, TokenEvent):
                    yield item
                elif isinstance(item, BaseException) and not isinstance(item, error_class("Cancelled")):
                    raise item
        finally:
            self.cancel()
            worker.join()

    def generate_next_token(self) -> TokenEvent:
        """Generate one more token of the open request."""
        with self._command("generate_next_token") as call:
            def context_left():
                request, n_ctx = self._request, self._session.n_ctx
                return _check(request is not None and request.n_past < n_ctx,
                              f"the context is full: {request.n_past if request else 0} of {n_ctx} positions used")

            call.decide({"model_resident": self._model_resident, "context_left": context_left})
            self._state = call.outcome.via
            request = self._request
            event = self._next_token(request)
            call.finish({})
            return event

    def reset(self) -> None:
        with self._command("reset") as call:
            call.decide({"model_resident": self._model_resident})
            call.commit(self._clear_request_and_error)

    def free(self) -> None:
        with self._command("free") as call:
            call.decide({})
            call.commit(lambda: None)  # entering Freed releases everything the state does not allow

    # ------------------------------------------------------------ chat helper

    def chat(self, messages: list[dict], max_tokens: int = 256, **options) -> Generation:
        """Apply the model's chat template (tokenizer.chat_template) to messages, then generate."""
        from ggufsm.reference.tokenizers.chat import render_chat_for

        model = self._model
        prompt = render_chat_for(model, messages) if model is not None else ""
        return self.generate(prompt, max_tokens, **options)

    # --------------------------------------------------------------- internals

    def _command(self, operation: str) -> "_Call":
        return _Call(self, operation)

    def _install(self, operation: str, source) -> dict:
        with self._command(operation) as call:
            built: dict = {}

            def attempt_load() -> None:
                if "result" in built:
                    return
                self._state = "Loading"
                started = time.perf_counter()
                try:
                    built["model"] = build_loaded_model(source, n_threads=self._config.thread_count())
                    built["session"] = built["model"].weights.new_session(
                        self._config.context_for(built["model"].weights.n_ctx_train))
                    built["result"] = None
                except GgufsmError as error:
                    if "model" in built:
                        built.pop("model").close()
                    built["result"] = error
                except BaseException:
                    if "model" in built:
                        built.pop("model").close()
                    raise
                built["seconds"] = time.perf_counter() - started

            def guard_for(code: str):
                def compute():
                    attempt_load()
                    error = built["result"]
                    # A source that is neither a path nor bytes cannot be read: it counts as unreadable.
                    error_code = error and (error.code if error.code in _LOAD_ERROR_CODES else "ModelUnavailable")
                    failed = error is not None and error_code == code
                    return not failed, (error.message if failed else "")
                return compute

            call.decide({
                "model_resident": self._model_resident,
                "model_readable": guard_for("ModelUnavailable"),
                "model_well_formed": guard_for("InvalidModel"),
                "model_supported": guard_for("UnsupportedModel"),
            })

            def install():
                previous = self._model, self._session
                self._model, self._session = built["model"], built["session"]
                self._request = None
                self._timings["load_s"] = built["seconds"]
                _release(*previous)

            call.commit(install)
            return dict(self._model.summary)

    def _configure(self, config: RuntimeConfig) -> None:
        self._config = config

    def _clear_request_and_error(self) -> None:
        self._request = None
        self._last_error = None

    def _model_resident(self) -> tuple[bool, str]:
        return _check(self._model is not None, "no model is loaded")

    def _check_request_input(self, prompt, max_tokens, checked: dict) -> tuple[bool, str]:
        if not _is_int(max_tokens) or max_tokens < 0:
            return False, f"max_tokens={max_tokens!r}: expected an integer >= 0"
        tokenizer = self._model.tokenizer
        if isinstance(prompt, str):
            if not prompt:
                return False, "the prompt is empty"
            checked["prompt_ids"] = tokenizer.encode(prompt)
        elif isinstance(prompt, Sequence) and all(_is_int(token) for token in prompt):
            if not prompt:
                return False, "the prompt has no tokens"
            try:
                self._model.check_token_ids(prompt)  # the C++ core's one rule for token ids
            except GgufsmError as error:
                return False, error.message
            checked["prompt_ids"] = [int(token) for token in prompt]
        else:
            return False, f"prompt must be text or a sequence of token ids, not {type(prompt).__name__}"
        if not checked["prompt_ids"]:
            return False, "the prompt encodes to no tokens"
        return True, ""

    def _check_request_sampling(self, overrides: dict, checked: dict) -> tuple[bool, str]:
        try:
            checked["sampling"] = self._sampling.with_overrides(**overrides).validated()
            return True, ""
        except GgufsmError as error:
            return False, error.message

    def _check_prompt_fits(self, checked: dict) -> tuple[bool, str]:
        n_prompt, n_ctx = len(checked["prompt_ids"]), self._session.n_ctx
        return _check(n_prompt + 1 <= n_ctx,
                      f"the prompt has {n_prompt} tokens; the context holds {n_ctx}, leaving no room to generate")

    def _open_request(self, prompt_ids: list[int], sampling: SamplingConfig) -> _Request:
        self._request = None
        self._counters["requests"] += 1
        request = _Request(prompt_ids, Sampler(sampling), self._model.tokenizer.stream_decoder())
        self._request = request
        return request

    def _prefill(self, request: _Request) -> None:
        started = time.perf_counter()
        self._logits = self._session.prefill(request.prompt_token_ids, 0)
        request.n_past = len(request.prompt_token_ids)
        request.prefill_seconds = time.perf_counter() - started
        self._timings["prefill_s"] = request.prefill_seconds
        self._timings["prefill_tok_s"] = request.n_past / max(request.prefill_seconds, 1e-9)

    def _generate_tokens(self, request: _Request, max_tokens: int, on_token, stop_at_eos: bool) -> None:
        end_ids = set(self._model.tokenizer.eot_ids) if stop_at_eos else set()
        while request.finish_reason is None:
            if len(request.generated_token_ids) >= max_tokens:
                request.finish_reason = "length"
            elif request.n_past >= self._session.n_ctx:
                request.finish_reason = "context"
            elif self._cancel_requested.is_set():
                request.finish_reason = "cancelled"
            else:
                event = self._next_token(request)
                if on_token is not None:
                    try:
                        on_token(event)
                    except Exception as error:
                        raise _CallbackFailed(error) from error
                if event.token_id in end_ids:
                    request.finish_reason = "stop"

    def _next_token(self, request: _Request) -> TokenEvent:
        """Sample from the current logits, then evaluate the new token so the logits are ready for the next."""
        token_id = request.sampler.sample(self._logits, request.all_token_ids)
        started = time.perf_counter()
        self._logits = self._session.decode(token_id, request.n_past)
        request.decode_seconds += time.perf_counter() - started
        request.n_past += 1
        request.generated_token_ids.append(token_id)
        text = request.stream_decoder.push(token_id)
        request.text_parts.append(text)
        n_generated = len(request.generated_token_ids)
        self._timings["decode_tok_s"] = n_generated / max(request.decode_seconds, 1e-9)
        return TokenEvent(token_id, text, n_generated - 1)

    def _resident_data(self) -> set[str]:
        present = set()
        if self._config is not None:
            present |= {"config", "diagnostics"}
        if self._model is not None:
            present |= {"model", "tokenizer"}
        if self._session is not None:
            present |= {"kv_cache", "scratch", "logits"}
        if self._request is not None:
            present.add("request")
        if self._last_error is not None:
            present.add("last_error")
        return present

    def _enter(self, state: str | None) -> None:
        """Enter a state and drop every resident datum it does not allow (the table says which)."""
        if state is None:
            return
        required, optional = self._spec.resident(state)
        allowed = set(required) | set(optional)
        if "request" not in allowed:
            self._request = None
        if "model" not in allowed and self._model is not None:
            model, session = self._model, self._session
            self._model = self._session = None
            self._logits = None
            _release(model, session)
        if "last_error" not in allowed:
            self._last_error = None
        self._state = state


class _CallbackFailed(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(repr(cause))
        self.cause = cause


class _Call:
    """One command on a handle: holds the lock, asks the table, commits the outcome."""

    def __init__(self, runtime: Runtime, operation: str):
        self.runtime = runtime
        self.operation = operation
        self.outcome = None
        self.start_state = None
        self._guards: _GuardValues | None = None

    def __enter__(self) -> "_Call":
        self.runtime._lock.acquire()
        self.runtime._counters["operations"] += 1
        self.start_state = self.runtime._state
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is not None and self.runtime._state in ("Loading", "Generating"):
                # An unexpected failure inside an action (not a table outcome) must not leave a
                # transient state behind: the handle goes back to where the call started.
                self.runtime._enter(self.start_state)
        finally:
            self.runtime._lock.release()

    def decide(self, computations: dict[str, Callable[[], tuple[bool, str]]]) -> None:
        """Compute the guards the cell needs and ask the table; raise at once if the outcome is an error
        that happens before the operation runs (everything but Cancelled)."""
        runtime, spec = self.runtime, self.runtime._spec
        self._guards = _GuardValues(computations)
        if self.start_state == INITIAL_STATE and _decide(spec, INITIAL_STATE, self.operation, _GuardValues({
                name: (lambda: (True, "")) for name in _GUARD_ORDER})).lazy_init:
            runtime._configure(RuntimeConfig())
            runtime._enter("Initialized")
            self.start_state = "Initialized"
        self.outcome = _decide(spec, self.start_state, self.operation, self._guards)
        if self.outcome.error and self.outcome.error != "Cancelled":
            self._fail(self.outcome)

    def finish(self, late_guards: dict[str, bool], *, reason: str = "", cause: BaseException | None = None) -> None:
        """Decide again with the guards known only once the operation ran (e.g. cancelled), and commit."""
        self.outcome = _decide(self.runtime._spec, self.start_state, self.operation, self._guards, late_guards)
        if self.outcome.error:
            self._guards.reasons.append(reason)
            self._fail(self.outcome, cause)
        self.runtime._enter(self.outcome.to)

    def commit(self, action: Callable[[], None]) -> None:
        action()
        self.runtime._enter(self.outcome.to)

    def _fail(self, outcome, cause: BaseException | None = None) -> None:
        runtime = self.runtime
        message = "; ".join(reason for reason in self._guards.reasons if reason) or self._refusal_message()
        error = error_class(outcome.error)(message, state_after=outcome.to)
        runtime._last_error = error
        runtime._enter(outcome.to)  # after recording: a state that allows no last_error (Uninitialized) drops it
        runtime._counters["errors"] += 1
        raise error from cause

    def _refusal_message(self) -> str:
        state = self.start_state
        allowed = self.runtime._spec.states[state].allowed_summary
        return f"{self.operation} is not allowed in state {state} (allowed there: {allowed})"


def _check(condition: bool, reason: str) -> tuple[bool, str]:
    return (True, "") if condition else (False, reason)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _release(model: LoadedModel | None, session) -> None:
    if session is not None:
        session.close()
    if model is not None:
        model.close()


def _request_counters(request: _Request | None) -> dict | None:
    if request is None:
        return None
    return {
        "prompt_tokens": len(request.prompt_token_ids),
        "generated_tokens": len(request.generated_token_ids),
        "finish_reason": request.finish_reason,
        "prefill_s": request.prefill_seconds,
        "decode_s": request.decode_seconds,
    }


def _generation_of(request: _Request) -> Generation:
    text = "".join(request.text_parts) + request.stream_decoder.flush()
    n_generated = len(request.generated_token_ids)
    return Generation(
        prompt_token_ids=list(request.prompt_token_ids),
        token_ids=list(request.generated_token_ids),
        text=text,
        finish_reason=request.finish_reason,
        timings={"prefill_s": request.prefill_seconds, "decode_s": request.decode_seconds,
                 "decode_tok_s": n_generated / request.decode_seconds if request.decode_seconds else 0.0},
    )
