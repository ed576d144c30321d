"""Sampling: from a logits vector to one token id.

The chain follows llama.cpp's default order so that the same settings mean
the same thing in both runtimes: repetition penalty, top-k, top-p, min-p,
temperature, then a draw from the seeded generator. Temperature 0 is greedy
(argmax of the penalised logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from ggufsm import _core
from ggufsm.spec.errors import InvalidModel, InvalidSampling


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repetition_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None

    def validated(self) -> SamplingConfig:
        """Self, when every value is in range; otherwise InvalidSampling naming the first bad one."""
        for name, value, valid, expected in self._checks():
            if not valid:
                raise InvalidSampling(f"{name}={value!r} is out of range: expected {expected}")
        return self

    def with_overrides(self, **overrides) -> SamplingConfig:
        known = {field.name for field in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidSampling(f"unknown sampling parameter(s) {unknown}; known: {sorted(known)}")
        return replace(self, **{name: value for name, value in overrides.items() if value is not None})

    def _checks(self):
        """Each field against the range the table states for it (spec/lifecycle.yaml `ranges.sampling_valid`)."""
        from ggufsm.spec import load_spec
        from ggufsm.spec.names import Guard
        from ggufsm.spec.ranges import in_range, range_text

        for name, value_range in load_spec().ranges[Guard.sampling_valid].values.items():
            value = getattr(self, name)
            yield name, value, in_range(value_range, value), range_text(value_range)

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0


GREEDY = SamplingConfig(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0)


class Sampler:
    """Draws tokens for one request; owns the request's random generator."""

    def __init__(self, config: SamplingConfig):
        self.config = config.validated()
        self._greedy = self.config.is_greedy  # asked each token: a property call fewer
        self._penalised = penalises(self.config)  # and the penalty's call only when it changes a logit
        self._generator: np.random.Generator | None = None

    @property
    def _rng(self) -> np.random.Generator:
        # Made at the first draw from the configured seed (the same stream as one made here at once): a
        # greedy request never draws, and numpy.random's first import was 10-40 ms of a fresh process's
        # first generate.
        if self._generator is None:
            self._generator = np.random.default_rng(self.config.seed)
        return self._generator

    def reconfigure(self, config: SamplingConfig) -> None:
        """New settings from the next token on; the draws go on from where they were unless the seed changed."""
        if config.seed != self.config.seed:
            self._generator = None
        self.config = config.validated()
        self._greedy = self.config.is_greedy
        self._penalised = penalises(self.config)

    def sample(self, logits: np.ndarray, recent_tokens: Sequence[int]) -> int:
        """logits: (n_vocab,) float32 of the last position; recent_tokens: the request's tokens so far.
        Non-finite logits are refused (InvalidModel), never drawn from: a NaN compares false with
        everything, so argmax and the draw would pick an arbitrary token."""
        if self._greedy:
            return greedy_token(logits, apply_repetition_penalty(logits, recent_tokens, self.config) if self._penalised else logits)
        check_finite(logits)
        scores = apply_repetition_penalty(logits, recent_tokens, self.config)
        candidates, candidate_scores = _truncate(scores, self.config)
        # Shift before dividing: the best score becomes 0 and the rest non-positive, so a tiny temperature
        # sends them to -inf (probability 0) instead of overflowing to inf - inf = NaN.
        probabilities = _softmax((candidate_scores - candidate_scores[0]) / self.config.temperature)
        return int(candidates[self._rng.choice(len(candidates), p=probabilities)])


# Against a dtype, not the scalar type np.float32: comparing with a type converts it to a dtype first, each token.
_FLOAT32 = np.dtype(np.float32)


def greedy_token(logits: np.ndarray, scores: np.ndarray) -> int:
    """argmax(scores) (the penalised logits), after check_finite(logits). A float32 row (the fused forward's)
    is read once for both in C++ with the GIL released: handles generating at once on one model otherwise
    take turns for the GIL over two numpy passes per token (0.7-1.1 ms a token at load 7-9)."""
    if scores.dtype == _FLOAT32 and scores.ndim == 1 and scores.size and scores.flags.c_contiguous:
        token = _core.greedy_token(scores)
        if token >= 0:  # every score finite, so every logit is (a penalty keeps a non-finite logit non-finite)
            return int(token)
    check_finite(logits)
    return int(np.argmax(scores))


def check_finite(logits: np.ndarray) -> None:
    finite = np.isfinite(logits)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InvalidModel(f"the forward produced {bad.size} non-finite logit(s) of {logits.shape[0]} "
                              f"(first: token id {int(bad[0])} = {float(logits[bad[0]])}): the model's weights "
                              "overflow float32 on this input")


def penalises(config: SamplingConfig) -> bool:
    """Whether the repetition penalty of `config` can change a logit."""
    return config.repetition_penalty != 1.0 and config.repeat_last_n != 0


def apply_repetition_penalty(logits: np.ndarray, recent_tokens: Sequence[int], config: SamplingConfig) -> np.ndarray:
    if not penalises(config) or not recent_tokens:
        return logits
    window = np.unique(np.asarray(recent_tokens[-config.repeat_last_n:], dtype=np.int64))
    penalised = logits.copy()
    values = penalised[window]
    # llama.cpp's rule: divide positive logits, multiply negative ones.
    penalised[window] = np.where(values > 0, values / config.repetition_penalty, values * config.repetition_penalty)
    return penalised


def _truncate(scores: np.ndarray, config: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The surviving candidate ids (sorted by score, best first) and their scores."""
    n_vocab = scores.shape[0]
    k = config.top_k if 0 < config.top_k < n_vocab else n_vocab
    # argpartition keeps this O(n_vocab) rather than a full sort of the vocabulary.
    candidates = np.argpartition(-scores, k - 1)[:k] if k < n_vocab else np.arange(n_vocab)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
    candidate_scores = scores[candidates].astype(np.float64)
    probabilities = _softmax(candidate_scores)
    keep = len(candidates)
    if config.top_p < 1.0:
        cumulative = np.cumsum(probabilities)
        keep = min(keep, int(np.searchsorted(cumulative, config.top_p)) + 1)
    if config.min_p > 0.0:
        keep = min(keep, max(1, int(np.count_nonzero(probabilities >= config.min_p * probabilities[0]))))
    return candidates[:keep], candidate_scores[:keep]


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()
