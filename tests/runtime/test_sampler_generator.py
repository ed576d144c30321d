"""A sampler's random generator is made at its first draw, from the configured seed: the draws are the
stream that seed gives, a greedy request never makes one, and a new seed starts its own stream."""

from __future__ import annotations

import numpy as np

from ggufsm.reference.sampling import Sampler, SamplingConfig

LOGITS = np.linspace(0.0, 2.0, 64, dtype=np.float32)
FREE = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repetition_penalty": 1.0}


def draws(sampler: Sampler, n: int) -> list[int]:
    return [sampler.sample(LOGITS, []) for _ in range(n)]


def test_a_seeded_sampler_draws_the_same_stream_whenever_its_generator_is_made():
    config = SamplingConfig(temperature=1.0, seed=1234, **FREE)
    first, second = Sampler(config), Sampler(config)
    assert draws(first, 20) == draws(second, 20)
    assert len(set(draws(Sampler(config), 20))) > 1  # it does draw


def test_a_greedy_sampler_never_makes_a_generator():
    sampler = Sampler(SamplingConfig(temperature=0.0, seed=5))
    assert draws(sampler, 3) == [63, 63, 63]
    assert sampler._generator is None


def test_a_new_seed_starts_its_own_stream_and_the_same_seed_goes_on():
    seeded = SamplingConfig(temperature=1.0, seed=1, **FREE)
    reseeded = SamplingConfig(temperature=1.0, seed=2, **FREE)
    straight = draws(Sampler(seeded), 10)
    going_on, restarted = Sampler(seeded), Sampler(seeded)
    draws(going_on, 5)
    going_on.reconfigure(SamplingConfig(temperature=1.0, seed=1, repeat_last_n=8, **FREE))
    assert draws(going_on, 5) == straight[5:]
    draws(restarted, 5)
    restarted.reconfigure(reseeded)
    assert draws(restarted, 10) == draws(Sampler(reseeded), 10)
