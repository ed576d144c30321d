"""A toy runtime written by hand (not from the table), for testing the kit without real models.

It follows the lifecycle with plain ifs, runs "models" that are one text line
(``TOYGGUF arch=llama seed=3``), and generates tokens from a hash. Being an
independent implementation, it is what the suite must pass when it is
right, and its broken variants (bottom of the file) are what the suite must
catch. Served over stdio with ``ggufsm conformance serve --impl python:toy_runtime:make_adapter``
(with this directory on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

from ggufsm.conformance.adapter import PythonAdapter
from ggufsm.spec.errors import error_class

TOKEN_SECONDS = 0.0005       # so that a generate lasts long enough to be interrupted
LOAD_SECONDS = 0.005
SUPPORTED_ARCHITECTURES = {"llama"}
VOCAB = 97
EOS = 0


class LoadFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def write_toy_model(path: Path, *, arch: str = "llama", seed: int = 1) -> Path:
    path.write_text(f"TOYGGUF arch={arch} seed={seed}\n")
    return path


class ToyRuntime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = "Uninitialized"
        self.config = None
        self.sampling = {"temperature": 0.8, "seed": None}
        self.model = None          # the seed of the installed model
        self.request = None        # {"tokens": [...], "n_past": int, "rng": Random}
        self.last_error = None
        self.cancel_flag = threading.Event()
        self.requests_started = 0

    # ── helpers ──

    def fail(self, code: str, message: str, to: str):
        self.state = to
        if to == "RecoverableError":
            self.last_error = (code, message)
        raise error_class(code)(message, state_after=to)

    def lazy_init(self) -> None:
        if self.state == "Uninitialized":
            self.config = {"n_ctx": 64}
            self.state = "Initialized"

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

    def read_model(self, path: str) -> int:
        time.sleep(LOAD_SECONDS)
        file = Path(path)
        if not file.is_file():
            raise LoadFailure("ModelUnavailable", f"{path}: no such file")
        words = file.read_text(errors="replace").split()
        if len(words) != 3 or words[0] != "TOYGGUF":
            raise LoadFailure("InvalidModel", f"{path}: bad magic at offset 0")
        arch = words[1].removeprefix("arch=")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise LoadFailure("UnsupportedModel", f"{path}: architecture {arch!r}")
        return int(words[2].removeprefix("seed="))

    def tokens_of(self, prompt) -> list[int]:
        return [1 + int(hashlib.sha1(word.encode()).hexdigest(), 16) % (VOCAB - 1) for word in prompt.split()]

    def next_token(self) -> int:
        request = self.request
        if self.sampling_for_request.get("temperature", 0.8) == 0:
            key = f"{self.model}:{request['tokens'][-3:]}:{request['n_past']}"
            token = int(hashlib.sha1(key.encode()).hexdigest(), 16) % VOCAB
        else:
            token = request["rng"].randrange(VOCAB)
        request["tokens"].append(token)
        request["generated"].append(token)
        request["n_past"] += 1
        time.sleep(TOKEN_SECONDS)
        return token


class ToyAdapter(PythonAdapter):
    name = "toy-runtime"
    version = "1"

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
            if n_ctx is not None and (not isinstance(n_ctx, int) or not 8 <= n_ctx <= 1 << 20):
                rt.fail("InvalidInput", f"n_ctx={n_ctx}", rt.state)
            rt.config = {"n_ctx": n_ctx or 64}
            rt.state = "Initialized"
            rt.last_error = None

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
            seed = rt.read_model(path)
        except LoadFailure as failure:
            rt.state = before
            self._fail_load(failure.code, failure.message)
        rt.model = seed
        rt.request = None
        rt.state = "Ready"
        rt.last_error = None
        return {"seed": seed}

    def _fail_load(self, code, message):
        self.rt.request = None
        self.rt.fail(code, message, "RecoverableError")

    def op_set_sampling(self, temperature=0.8, seed=None, **others) -> None:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if not isinstance(temperature, (int, float)) or temperature < 0 or others:
                rt.request = None
                rt.fail("InvalidSampling", f"temperature={temperature}", "RecoverableError")
            rt.sampling = {"temperature": temperature, "seed": seed}
            if rt.state == "RecoverableError":
                rt.state = "Ready" if rt.model is not None else "Initialized"
                rt.last_error = None

    def op_generate(self, prompt, max_tokens=16, stop_at_eos=True, sampling=None, on_token=None) -> dict:
        rt = self.rt
        with rt.lock:
            rt.lazy_init()
            if rt.model is None:
                rt.fail("ModelNotLoaded", "no model", rt.state)
            if not isinstance(max_tokens, int) or max_tokens < 0 or not isinstance(prompt, str) or not prompt:
                rt.request = None
                rt.fail("InvalidInput", f"max_tokens={max_tokens}", "RecoverableError")
            chosen = {**rt.sampling, **(sampling or {})}
            if not isinstance(chosen["temperature"], (int, float)) or chosen["temperature"] < 0:
                rt.request = None
                rt.fail("InvalidSampling", f"temperature={chosen['temperature']}", "RecoverableError")
            tokens = rt.tokens_of(prompt)
            if len(tokens) + 1 > rt.config["n_ctx"]:
                rt.request = None
                rt.fail("ContextOverflow", f"{len(tokens)} prompt tokens, n_ctx {rt.config['n_ctx']}", "RecoverableError")
            rt.state = "Generating"
            rt.cancel_flag.clear()
            rt.sampling_for_request = chosen
            rt.request = {"tokens": list(tokens), "generated": [], "n_past": len(tokens),
                          "rng": random.Random(chosen.get("seed"))}
            rt.requests_started += 1
            reason = self._generate_loop(max_tokens, stop_at_eos, on_token)
            rt.state = "ContinuationReady"
            rt.last_error = None
            generated = list(rt.request["generated"])
            if reason == "cancelled":
                error = error_class("Cancelled")(f"cancelled after {len(generated)} tokens", state_after=rt.state)
                error.partial_value = {"token_ids": generated, "text": "", "finish_reason": "cancelled"}
                raise error
            return {"token_ids": generated, "text": " ".join(map(str, generated)), "finish_reason": reason,
                    "prompt_tokens": len(tokens)}

    def _generate_loop(self, max_tokens, stop_at_eos, on_token) -> str:
        rt = self.rt
        while True:
            if len(rt.request["generated"]) >= max_tokens:
                return "length"
            if rt.request["n_past"] >= rt.config["n_ctx"]:
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
            if rt.request["n_past"] >= rt.config["n_ctx"]:
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
            rt.last_error = None
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
        return {"resident": self.rt.resident(), "requests_started": self.rt.requests_started}


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
