"""A toy runtime written by hand (not from the table), for testing the kit without real models.

It follows the lifecycle with plain ifs, runs "models" that are one text line
(``TOYGGUF arch=llama seed=3``), and generates tokens from a hash. Being an
independent implementation, it is what the suite must pass when it is
right, and its broken variants (bottom of the file) are what the suite must
catch. Served over stdio with ``ggufsm conformance serve --impl python:toy_runtime:make_adapter``
(with this directory on PYTHONPATH).

Its ranges, effects and errors are typed here by hand on purpose: it is a
second reading of docs/spec/lifecycle.md, not a derivation of the table.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import threading
from pathlib import Path

from ggufsm.conformance.adapter import PythonAdapter
from ggufsm.spec.errors import error_class

SUPPORTED_ARCHITECTURES = {"llama"}
VOCAB = 97
EOS = 0
DEFAULT_SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repetition_penalty": 1.0,
                    "repeat_last_n": 64, "seed": None}


class LoadFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def write_toy_model(path: Path, *, arch: str = "llama", seed: int = 1, overflow_after: int | None = None) -> Path:
    """`overflow_after`: the token after which the model's "logits" are not finite (the overflow model)."""
    extra = f" overflow={overflow_after}" if overflow_after is not None else ""
    path.write_text(f"TOYGGUF arch={arch} seed={seed}{extra}\n")
    return path


def greedy_token(model: int, tokens: list[int], n_past: int) -> int:
    key = f"{model}:{tokens[-3:]}:{n_past}"
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % VOCAB


def sampling_problem(sampling: dict) -> str | None:
    """Why a sampling configuration is out of range (the table's Ranges, read by hand), or None."""
    def real(value, low, high, low_open=False):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok and (low < value if low_open else low <= value) and value <= high

    def count(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    checks = {
        "temperature": real(sampling["temperature"], 0, 100),
        "top_k": count(sampling["top_k"]),
        "top_p": real(sampling["top_p"], 0, 1, low_open=True),
        "min_p": real(sampling["min_p"], 0, 1),
        "repetition_penalty": real(sampling["repetition_penalty"], 0, 10, low_open=True),
        "repeat_last_n": count(sampling["repeat_last_n"]),
        "seed": sampling["seed"] is None or (count(sampling["seed"]) and sampling["seed"] < 2 ** 64),
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"{bad[0]}={sampling[bad[0]]!r}" if bad else None


class ToyRuntime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = "Uninitialized"
        self.config = None         # {"n_ctx": as given, "n_threads": ...}
        self.sampling = dict(DEFAULT_SAMPLING)
        self.model = None          # (seed, file name, sha256) of the installed model
        self.model_file = None     # (path, (inode, size, mtime_ns)) of the installed model, as loaded
        self.overflow_after = None # the token after which the installed model's logits are not finite
        self.loaded_overflow_after = None   # what read_model found in the file it read last
        self.request = None        # {"tokens", "generated", "n_past", "prompt_tokens", "finish_reason", "rng", "sampling"}
        self.last_error = None
        self.cancel_flag = threading.Event()
        self.requests_started = 0

    # ── helpers ──

    def fail(self, code: str, message: str, to: str):
        self.state = to
        if to != "Uninitialized":        # every state but Uninitialized holds a last_error
            self.last_error = (code, message)
        raise error_class(code)(message, state_after=to)

    def lazy_init(self) -> None:
        if self.state == "Uninitialized":
            self.config = {"n_ctx": None, "n_threads": 0}
            self.state = "Initialized"

    @property
    def n_ctx(self) -> int:
        return (self.config or {}).get("n_ctx") or 64

    def resident(self) -> list[str]:
        present = []
        if self.config is not None:
            present += ["config", "diagnostics"]
        if self.model is not None:
            present += ["model", "tokenizer", "kv_cache", "scratch", "logits"]
        if self.request is not None:
            present.append("request")
        if self.last_error is not None:
            present.append("last_error")
        return present

    def read_model(self, path) -> tuple[int, str, str]:
        file = Path(os.fspath(path))
        if not file.is_file():
            raise LoadFailure("ModelUnavailable", f"{file}: no such file")
        data = file.read_bytes()
        words = data.decode(errors="replace").split()
        overflow = [word for word in words[3:] if word.startswith("overflow=")]
        self.loaded_overflow_after = int(overflow[0].removeprefix("overflow=")) if overflow else None
        words = words[:3] if overflow else words
        if len(words) != 3 or words[0] != "TOYGGUF":
            raise LoadFailure("InvalidModel", f"{file}: bad magic at offset 0")
        arch = words[1].removeprefix("arch=")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise LoadFailure("UnsupportedModel", f"{file}: architecture {arch!r}")
        return int(words[2].removeprefix("seed=")), file.name, hashlib.sha256(data).hexdigest()

    def tokens_of(self, prompt) -> list[int]:
        if isinstance(prompt, list):
            return list(prompt)
        return [1 + int(hashlib.sha1(word.encode()).hexdigest(), 16) % (VOCAB - 1) for word in prompt.split()]

    def file_changed(self) -> bool:
        """The installed model's file is not as it was loaded (its inode, size or modification time differ)."""
        path, identity = self.model_file
        try:
            status = os.stat(path)
        except OSError:
            return True
        return (status.st_ino, status.st_size, status.st_mtime_ns) != identity

    def next_token(self) -> int:
        """One token; a file changed since the load, or an overflow, fails the request (RecoverableError)."""
        request = self.request
        if self.file_changed():
            self.request = None
            self.fail("ModelUnavailable", "the model file changed after it was loaded", "RecoverableError")
        if self.overflow_after is not None and request["tokens"] and request["tokens"][-1] == self.overflow_after:
            self.request = None
            self.fail("InvalidModel", f"non-finite logits after token {self.overflow_after}", "RecoverableError")
        if request["sampling"]["temperature"] == 0:
            token = greedy_token(self.model[0], request["tokens"], request["n_past"])
        else:
            token = request["rng"].randrange(VOCAB)
        request["tokens"].append(token)
        request["generated"].append(token)
        request["n_past"] += 1
        return token


def valid_prompt(prompt) -> bool:
    if isinstance(prompt, str):
        return bool(prompt.split())
    return (isinstance(prompt, list) and bool(prompt)
            and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < VOCAB for t in prompt))


class ToyAdapter(PythonAdapter):
    name = "toy-runtime"
    version = "1"
    structured_diagnostics = True

    def __init__(self) -> None:
        self.rt = ToyRuntime()
        super().__init__()

    def current_state(self) -> str:
        return self.rt.state

    # ── commands ──

    def op_init_runtime(self, n_ctx=None, n_threads=0) -> None:
        rt = self.rt
        with rt.lock:
            if rt.state in ("Ready", "ContinuationReady", "RecoverableError"):
                rt.fail("InvalidState", f"init_runtime in {rt.state}", rt.state)
            n_ctx_ok = n_ctx is None or (isinstance(n_ctx, int) and not isinstance(n_ctx, bool)
                                         and 8 <= n_ctx <= 1 << 20)
            threads_ok = isinstance(n_threads, int) and not isinstance(n_threads, bool) and 0 <= n_threads <= 1024
            if not (n_ctx_ok and threads_ok):
                rt.fail("InvalidInput", f"n_ctx={n_ctx}, n_threads={n_threads}", rt.state)
            rt.config = {"n_ctx": n_ctx, "n_threads": n_threads}
            rt.state = "Initialized"

    def op_load_model(self, path) -> dict:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.state in ("Ready", "ContinuationReady") or (rt.state == "RecoverableError" and rt.model is not None):
                rt.fail("InvalidState", f"load_model in {rt.state}", rt.state)
            return self._install(path)

    def op_replace_model(self, path) -> dict:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.model is None:
                rt.fail("ModelNotLoaded", "no model to replace", rt.state)
            return self._install(path)

    def _install(self, path) -> dict:
        rt = self.rt
        before = rt.state
        rt.state = "Loading"
        try:
            model = rt.read_model(path)
        except LoadFailure as failure:
            rt.state = before
            self._fail_load(failure.code, failure.message)
        rt.model = model
        status = os.stat(path)
        rt.model_file = (os.fspath(path), (status.st_ino, status.st_size, status.st_mtime_ns))
        rt.overflow_after = rt.loaded_overflow_after
        rt.request = None
        rt.state = "Ready"
        return {"seed": model[0]}

    def _fail_load(self, code, message):
        self.rt.request = None
        self.rt.fail(code, message, "RecoverableError")

    def op_set_sampling(self, **settings) -> None:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            unknown = set(settings) - set(DEFAULT_SAMPLING)
            candidate = {**rt.sampling, **{k: v for k, v in settings.items() if k in DEFAULT_SAMPLING}}
            problem = f"unknown {sorted(unknown)}" if unknown else sampling_problem(candidate)
            if problem:
                if rt.state != "RecoverableError":
                    rt.request = None
                rt.fail("InvalidSampling", problem, "RecoverableError")
            rt.sampling = candidate
            if rt.request is not None:
                self._reconfigure(candidate)
            if rt.state == "RecoverableError":
                rt.state = "Ready" if rt.model is not None else "Initialized"
                rt.last_error = None

    def _reconfigure(self, candidate: dict) -> None:
        """The open request samples with the new settings from its next token on."""
        request = self.rt.request
        if candidate["seed"] != request["sampling"]["seed"]:
            request["rng"] = random.Random(candidate["seed"])
        request["sampling"] = candidate

    def op_generate(self, prompt, max_tokens=16, stop_at_eos=True, sampling=None, on_token=None) -> dict:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.model is None:
                rt.fail("ModelNotLoaded", "no model", rt.state)
            if rt.state not in ("Ready", "ContinuationReady", "RecoverableError"):
                rt.fail("InvalidState", f"generate in {rt.state}", rt.state)
            max_ok = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0
            if not max_ok or not valid_prompt(prompt):
                rt.request = None
                rt.fail("InvalidInput", f"prompt={prompt!r}, max_tokens={max_tokens}", "RecoverableError")
            unknown = set(sampling or {}) - set(DEFAULT_SAMPLING)
            chosen = {**rt.sampling, **{k: v for k, v in (sampling or {}).items() if k in DEFAULT_SAMPLING}}
            problem = f"unknown {sorted(unknown)}" if unknown else sampling_problem(chosen)
            if problem:
                rt.request = None
                rt.fail("InvalidSampling", problem, "RecoverableError")
            tokens = rt.tokens_of(prompt)
            if len(tokens) + 1 > rt.n_ctx:
                rt.request = None
                rt.fail("ContextOverflow", f"{len(tokens)} prompt tokens, n_ctx {rt.n_ctx}", "RecoverableError")
            rt.state = "Generating"
            rt.cancel_flag.clear()
            rt.request = {"tokens": list(tokens), "generated": [], "n_past": len(tokens), "prompt_tokens": len(tokens),
                          "finish_reason": None, "rng": random.Random(chosen["seed"]), "sampling": chosen}
            rt.requests_started += 1
            reason = self._generate_loop(max_tokens, stop_at_eos, on_token)
            rt.request["finish_reason"] = reason
            rt.state = "ContinuationReady"
            generated = list(rt.request["generated"])
            if reason == "cancelled":
                rt.last_error = ("Cancelled", f"cancelled after {len(generated)} tokens")
                error = error_class("Cancelled")(rt.last_error[1], state_after=rt.state)
                error.partial_value = {"token_ids": generated, "text": "", "finish_reason": "cancelled"}
                raise error
            return {"token_ids": generated, "text": " ".join(map(str, generated)), "finish_reason": reason,
                    "prompt_tokens": len(tokens)}

    def _generate_loop(self, max_tokens, stop_at_eos, on_token) -> str:
        rt = self.rt
        while True:
            if len(rt.request["generated"]) >= max_tokens:
                return "length"
            if rt.request["n_past"] >= rt.n_ctx:
                return "context"
            if rt.cancel_flag.is_set():
                return "cancelled"
            token = rt.next_token()
            if on_token is not None:
                on_token({"token_id": token, "text": str(token), "index": len(rt.request["generated"]) - 1})
            if stop_at_eos and token == EOS:
                return "stop"

    def op_generate_next_token(self) -> dict:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.model is None:
                rt.fail("ModelNotLoaded", "no model", rt.state)
            if rt.state != "ContinuationReady":
                rt.fail("InvalidState", f"generate_next_token in {rt.state}", rt.state)
            if rt.request["n_past"] >= rt.n_ctx:
                rt.request = None
                rt.fail("ContextOverflow", "context full", "RecoverableError")
            rt.state = "Generating"
            token = rt.next_token()
            rt.state = "ContinuationReady"
            return {"token_id": token, "text": str(token)}

    def op_reset(self) -> None:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.state in ("Ready", "ContinuationReady") or (rt.state == "RecoverableError" and rt.model is not None):
                self._drop_request()
                rt.state = "Ready"
            elif rt.state == "RecoverableError":
                rt.state = "Initialized"
            rt.last_error = None

    def _drop_request(self) -> None:
        self.rt.request = None

    def op_free(self) -> None:
        rt = self.rt
        with rt.lock:
            if rt.state == "Uninitialized":
                return
            rt.model = rt.request = None
            rt.state = "Freed"

    # ── control and queries ──

    def op_cancel(self) -> dict:
        running = self.rt.state == "Generating"
        if running:
            self.rt.cancel_flag.set()
        return {"was_running": running}

    def op_state(self) -> str:
        return self.rt.state

    def op_last_error(self):
        error = self.rt.last_error
        return {"code": error[0], "message": error[1]} if error else None

    def op_diagnostics(self) -> dict:
        rt = self.rt
        request = rt.request
        return {
            "resident": rt.resident(), "requests_started": rt.requests_started,
            "model": {"file": rt.model[1], "sha256": rt.model[2]} if rt.model else None,
            "request": {"prompt_tokens": request["prompt_tokens"], "generated_tokens": len(request["generated"]),
                        "finish_reason": request["finish_reason"]} if request else None,
            "last_error": self.op_last_error(),
            "sampling": dict(rt.sampling),
            "config": dict(rt.config) if rt.config is not None else None,
        }


def make_adapter() -> ToyAdapter:
    return ToyAdapter()


# ─── deliberately broken variants ───────────────────────────────────────────


class ResetKeepsRequest(ToyAdapter):
    """reset() goes to Ready but keeps the open request (its KV state), so a continuation still works."""

    name = "toy-reset-keeps-request"

    def _drop_request(self) -> None:
        pass

    def op_generate_next_token(self) -> dict:
        rt = self.rt
        if rt.state == "Ready" and rt.request is not None:
            with rt.lock:
                token = rt.next_token()
                return {"token_id": token, "text": str(token)}
        return super().op_generate_next_token()


class ReadyAfterFailedLoad(ToyAdapter):
    """A failed load reports Ready, as if a model had been installed."""

    name = "toy-ready-after-failed-load"

    def _fail_load(self, code, message):
        self.rt.state = "Ready"
        raise error_class(code)(message, state_after="Ready")


def make_reset_keeps_request() -> ToyAdapter:
    return ResetKeepsRequest()


def make_ready_after_failed_load() -> ToyAdapter:
    return ReadyAfterFailedLoad()


class AbortsOnFree(ToyAdapter):
    """free() aborts the whole process, as native runtimes have been seen to do."""

    name = "toy-aborts-on-free"

    def op_free(self) -> None:
        import os

        os.abort()


def make_aborts_on_free() -> ToyAdapter:
    return AbortsOnFree()


class WithoutReplace(ToyAdapter):
    """Has no replace_model operation."""

    name = "toy-without-replace"
    op_replace_model = None


class SilentResetKeepsRequest(ResetKeepsRequest):
    """The reset bug, in a runtime that reports no state and no diagnostics: only behaviour can catch it."""

    name = "toy-silent-reset-keeps-request"
    op_state = op_diagnostics = op_last_error = None

    def reports_state(self) -> bool:
        return False


def make_without_replace() -> ToyAdapter:
    return WithoutReplace()


def make_silent_reset_keeps_request() -> ToyAdapter:
    return SilentResetKeepsRequest()


class LengthWhenTheContextFills(ToyAdapter):
    """A generate stopped by a full context reports finish_reason "length", as if max_tokens were reached."""

    name = "toy-length-when-the-context-fills"

    def _generate_loop(self, max_tokens, stop_at_eos, on_token) -> str:
        reason = super()._generate_loop(max_tokens, stop_at_eos, on_token)
        return "length" if reason == "context" else reason


class FailedReplaceDropsTheModel(ToyAdapter):
    """A failed replace_model reports the right error and state, but the previous model is gone."""

    name = "toy-failed-replace-drops-the-model"

    def _fail_load(self, code, message):
        self.rt.model = None
        super()._fail_load(code, message)


def make_length_when_the_context_fills() -> ToyAdapter:
    return LengthWhenTheContextFills()


def make_failed_replace_drops_the_model() -> ToyAdapter:
    return FailedReplaceDropsTheModel()


# ─── what the suite could not see before spec 1.1 (tests/conformance/test_power.py) ─


class ResetKeepsLastError(ToyAdapter):
    """reset() goes to Ready but forgets to clear last_error."""

    name = "toy-reset-keeps-last-error"

    def op_reset(self) -> None:
        kept = self.rt.last_error
        super().op_reset()
        self.rt.last_error = kept


class IgnoresStopAtEos(ToyAdapter):
    """A generate never stops at the end-of-generation token."""

    name = "toy-ignores-stop-at-eos"

    def op_generate(self, prompt, max_tokens=16, stop_at_eos=True, sampling=None, on_token=None) -> dict:
        return super().op_generate(prompt, max_tokens, False, sampling, on_token)


class NeverChecksTopP(ToyAdapter):
    """top_p is never range-checked."""

    name = "toy-never-checks-top-p"

    def op_set_sampling(self, **settings) -> None:
        if "top_p" in settings:
            settings = {**settings, "top_p": min(max(settings["top_p"], 0.5), 1.0)}
        super().op_set_sampling(**settings)


class RefusesZeroMaxTokens(ToyAdapter):
    """max_tokens=0 is refused as InvalidInput."""

    name = "toy-refuses-zero-max-tokens"

    def op_generate(self, prompt, max_tokens=16, stop_at_eos=True, sampling=None, on_token=None) -> dict:
        return super().op_generate(prompt, -1 if max_tokens == 0 else max_tokens, stop_at_eos, sampling, on_token)


class AcceptsEmptyPrompt(ToyAdapter):
    """An empty prompt is generated from (as one space)."""

    name = "toy-accepts-empty-prompt"

    def op_generate(self, prompt, max_tokens=16, stop_at_eos=True, sampling=None, on_token=None) -> dict:
        return super().op_generate(prompt or "empty", max_tokens, stop_at_eos, sampling, on_token)


class SamplingMissesTheOpenRequest(ToyAdapter):
    """set_sampling with a request open changes the handle's settings, not the request's."""

    name = "toy-sampling-misses-the-open-request"

    def _reconfigure(self, candidate: dict) -> None:
        pass


class RetryKeepsLastError(ToyAdapter):
    """A valid set_sampling in RecoverableError leaves last_error set."""

    name = "toy-retry-keeps-last-error"

    def op_set_sampling(self, **settings) -> None:
        kept = self.rt.last_error
        super().op_set_sampling(**settings)
        self.rt.last_error = kept


_SHARED_SAMPLING: dict = dict(DEFAULT_SAMPLING)


class GlobalSampling(ToyAdapter):
    """Sampling settings live in a process-wide global, shared by every handle."""

    name = "toy-global-sampling"

    def __init__(self) -> None:
        super().__init__()
        self.rt.sampling = _SHARED_SAMPLING

    def op_set_sampling(self, **settings) -> None:
        super().op_set_sampling(**settings)
        _SHARED_SAMPLING.update(self.rt.sampling)
        self.rt.sampling = _SHARED_SAMPLING


class CancelWaits(ToyAdapter):
    """cancel() waits for the handle's lock, so it lands only after the generate ended."""

    name = "toy-cancel-waits"

    def op_cancel(self) -> dict:
        with self.rt.lock:
            return super().op_cancel()


class CommandsDoNotWait(ToyAdapter):
    """reset() does not wait for a running generate: it applies at once."""

    name = "toy-commands-do-not-wait"

    def op_reset(self) -> None:
        rt = self.rt
        if rt.state == "Generating":
            rt.last_error = None
            return
        super().op_reset()


class FailedLoadKeepsScratch(ToyAdapter):
    """free() after a failed load into an empty handle reports scratch still resident."""

    name = "toy-failed-load-keeps-scratch"

    def __init__(self) -> None:
        super().__init__()
        self.scratch = False

    def _fail_load(self, code, message):
        self.scratch = True
        super()._fail_load(code, message)

    def op_diagnostics(self) -> dict:
        value = super().op_diagnostics()
        if self.scratch and "scratch" not in value["resident"]:
            value["resident"] = [*value["resident"], "scratch"]
        return value


def make_variant(name: str):
    return {cls.name: cls for cls in (ResetKeepsLastError, IgnoresStopAtEos, NeverChecksTopP, RefusesZeroMaxTokens,
                                      AcceptsEmptyPrompt, SamplingMissesTheOpenRequest, RetryKeepsLastError,
                                      GlobalSampling, CancelWaits, CommandsDoNotWait, FailedLoadKeepsScratch)}[name]()
