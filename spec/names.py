# GENERATED from spec/lifecycle.yaml by `ggufsm spec generate`; do not edit.
# tests/spec/test_codegen.py fails when this file is stale.

"""The table's vocabulary as enums (spec 1.2.0). Members compare equal to their names."""

from __future__ import annotations

from enum import Enum

SPEC_VERSION = "1.2.0"


class State(str, Enum):
    """A state of the lifecycle table."""

    Uninitialized = "Uninitialized"
    """No Runtime value exists yet."""
    Initialized = "Initialized"
    """The runtime exists with its configuration; no model is installed."""
    Loading = "Loading"
    """A load or replace is parsing and validating new model bytes off to the side."""
    Ready = "Ready"
    """A model is installed and no request is open."""
    Generating = "Generating"
    """A generate or generate_next_token is evaluating tokens."""
    ContinuationReady = "ContinuationReady"
    """A request is open; its prompt and generated tokens are in the KV cache."""
    RecoverableError = "RecoverableError"
    """The last operation failed on its input or configuration; a model may remain resident."""
    Freed = "Freed"
    """The model, cache, scratch and logits were released."""

    def __str__(self) -> str:
        return self.value


class Operation(str, Enum):
    """An operation of the lifecycle table."""

    init_runtime = "init_runtime"
    """Create the runtime with a configuration (context size, threads, seed)."""
    load_model = "load_model"
    """Parse and validate model bytes, then install the model."""
    set_sampling = "set_sampling"
    """Set the sampling configuration (temperature, top-k, top-p, min-p, repetition penalty, seed)."""
    generate = "generate"
    """Start a new request from a prompt and generate up to max_tokens tokens."""
    generate_next_token = "generate_next_token"
    """Generate one more token of the open request."""
    reset = "reset"
    """Drop the request state and the last error; keep the model."""
    free = "free"
    """Release the model, KV cache, scratch and logits."""
    replace_model = "replace_model"
    """Load new model bytes and install them in place of the resident model, only if they validate."""
    cancel = "cancel"
    """Ask a running generate, from another thread, to stop after the current token."""
    state = "state"
    """The current state's name."""
    last_error = "last_error"
    """The last error recorded (code and message), or none."""
    diagnostics = "diagnostics"
    """Model summary, context size and use, request counters, timings, memory held."""

    def __str__(self) -> str:
        return self.value


class Guard(str, Enum):
    """A guard of the lifecycle table, in the order the runtime evaluates them."""

    config_valid = "config_valid"
    """every runtime configuration value is in range"""
    model_resident = "model_resident"
    """a model is installed on the handle"""
    model_readable = "model_readable"
    """the model path names a readable regular file (or bytes were given)"""
    model_well_formed = "model_well_formed"
    """the bytes parse as GGUF and pass every structural check"""
    model_supported = "model_supported"
    """the architecture, tensor types and tokenizer are ones this runtime runs"""
    input_valid = "input_valid"
    """the request's arguments are well-formed (prompt text or token ids, max_tokens >= 0)"""
    sampling_valid = "sampling_valid"
    """every sampling value is in range"""
    prompt_fits = "prompt_fits"
    """the prompt's tokens leave room in the context for at least one generated token"""
    context_left = "context_left"
    """the KV cache has room for one more token"""
    model_intact = "model_intact"
    """the loaded model's file is as it was when loaded (same size and modification time, no page of its mapping faulted); checked around every forward"""
    logits_finite = "logits_finite"
    """every logit a forward produced for the next token to sample is finite (no NaN or infinity, which finite weights can still reach when the arithmetic overflows float32); checked before each token is sampled"""
    cancelled = "cancelled"
    """cancel was called while the request ran"""

    def __str__(self) -> str:
        return self.value


class ErrorCode(str, Enum):
    """A named error of the lifecycle table."""

    ModelNotLoaded = "ModelNotLoaded"
    """A generation or replace operation was called with no model installed."""
    ModelUnavailable = "ModelUnavailable"
    """The model path is missing, is a directory, or cannot be read; or the loaded model's file changed after it was loaded (truncated or rewritten in place)."""
    InvalidModel = "InvalidModel"
    """The model bytes are not a well-formed GGUF file (the message names the field or tensor and the byte offset); or, during a generate, the model's forward produced non-finite logits from finite weights (the message says how many and the first one's token id)."""
    UnsupportedModel = "UnsupportedModel"
    """The file is well-formed GGUF, but its architecture, tensor type or tokenizer is not one this runtime runs."""
    ContextOverflow = "ContextOverflow"
    """The prompt, or the continuation, does not fit in the context window."""
    InvalidSampling = "InvalidSampling"
    """A sampling value is out of range (the message names the parameter, the value and the range)."""
    InvalidInput = "InvalidInput"
    """An argument is malformed (wrong type, negative count, empty prompt, configuration out of range)."""
    InvalidState = "InvalidState"
    """The operation is not allowed in the current state; nothing changed."""
    Cancelled = "Cancelled"
    """A running generate was cancelled; the tokens produced so far are kept."""

    def __str__(self) -> str:
        return self.value


class FinishReason(str, Enum):
    """How a request's generation ended."""

    stop = "stop"
    """the model produced an end-of-generation token (and the request stops at one)"""
    length = "length"
    """the request's max_tokens tokens were generated"""
    context = "context"
    """the context window filled before max_tokens"""
    cancelled = "cancelled"
    """cancel was called while the request ran; the tokens produced so far are kept"""

    def __str__(self) -> str:
        return self.value


class ResidentDatum(str, Enum):
    """Data a handle may hold."""

    config = "config"
    """runtime configuration (context size, threads, sampling)"""
    diagnostics = "diagnostics"
    """counters, timings and the last error, readable in every state"""
    model = "model"
    """the installed model's weights and hyperparameters"""
    tokenizer = "tokenizer"
    """the installed model's tokenizer"""
    kv_cache = "kv_cache"
    """the key/value cache sized for the context"""
    scratch = "scratch"
    """activation buffers for the forward pass"""
    logits = "logits"
    """the output distribution of the last evaluated position"""
    request = "request"
    """the current request's prompt tokens, generated tokens and KV position"""
    last_error = "last_error"
    """the error of the last failed operation"""

    def __str__(self) -> str:
        return self.value


class EffectField(str, Enum):
    """A field of an outcome's effects."""

    last_error = "last_error"
    """set, cleared, kept"""
    request = "request"
    """new, extended, kept, cleared"""
    model = "model"
    """installed, kept, released"""
    sampling = "sampling"
    """applied, kept"""
    config = "config"
    """applied, kept"""

    def __str__(self) -> str:
        return self.value


class LastErrorEffect(str, Enum):
    """The values of the last_error effect."""

    set = "set"
    """the error this operation raised is recorded (where the state after can hold one; elsewhere nothing is)"""
    cleared = "cleared"
    """no error is recorded afterwards"""
    kept = "kept"
    """the error recorded before, if any, stays"""

    def __str__(self) -> str:
        return self.value


class RequestEffect(str, Enum):
    """The values of the request effect."""

    new = "new"
    """the previous request is dropped and a new one opened (its own tokens, output and request counters)"""
    extended = "extended"
    """one generated token is appended to the open request"""
    kept = "kept"
    """the open request, if any, stays as it was"""
    cleared = "cleared"
    """no request afterwards (its tokens, output and request counters dropped)"""

    def __str__(self) -> str:
        return self.value


class ModelEffect(str, Enum):
    """The values of the model effect."""

    installed = "installed"
    """the operation's model is installed (the previous one, if any, released after it)"""
    kept = "kept"
    """the installed model, if any, stays (the same file)"""
    released = "released"
    """no model afterwards (model, tokenizer, KV cache, scratch and logits released)"""

    def __str__(self) -> str:
        return self.value


class SamplingEffect(str, Enum):
    """The values of the sampling effect."""

    applied = "applied"
    """the new settings apply from the next sampled token on, the open request's included"""
    kept = "kept"
    """the sampling settings stay as they were (a generate's own settings apply to that request only)"""

    def __str__(self) -> str:
        return self.value


class ConfigEffect(str, Enum):
    """The values of the config effect."""

    applied = "applied"
    """the runtime configuration is the one given (by a lazy init, the default one)"""
    kept = "kept"
    """the configuration stays as it was"""

    def __str__(self) -> str:
        return self.value
