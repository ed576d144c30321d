"""Greedy sampling reads a float32 logits row once in C++ with the GIL released (_core.greedy_token, through
reference/sampling.py). The rules: it picks the token numpy's argmax of the penalised logits picks (ties: the
first), and non-finite logits are still refused with InvalidModel and the same message, never sampled."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.reference.sampling import GREEDY, Sampler, check_finite
from ggufsm.spec.errors import InvalidModel


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def rows():
    rng = rng_for("rows")
    yield "random", rng.standard_normal(49152).astype(np.float32)
    tied = rng.standard_normal(1000).astype(np.float32)
    tied[[17, 400, 999]] = tied.max() + 1
    yield "ties", tied
    yield "signed zeros", np.array([-1.0, -0.0, 0.0, -0.0], np.float32)
    yield "all equal", np.full(33, 2.5, np.float32)
    yield "one", np.array([-3.0], np.float32)
    yield "largest last", np.append(rng.standard_normal(4095).astype(np.float32), np.float32(1e30))
    yield "huge and tiny", np.array([3e38, -3e38, 1e-45, 3.4e38], np.float32)


def block_edges():
    """The kernel reads blocks of 16 lanes, then a tail value by value: the maximum, a tie and a non-finite value
    at each edge of a block and of the tail, over lengths around the block size."""
    rng = rng_for("edges")
    for n in (1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 49, 1000, 1007):
        for where in sorted({0, n // 2, n - 1, min(15, n - 1), min(16, n - 1), max(0, n - 17)}):
            row = rng.standard_normal(n).astype(np.float32)
            row[where] = 7.0
            yield f"n{n} max at {where}", row
            tied = row.copy()
            tied[n - 1 - where // 3] = 7.0  # a tie after it (or the same index): the first wins
            yield f"n{n} tie at {where}", tied


@pytest.mark.parametrize("name,logits", list(block_edges()), ids=[name for name, _ in block_edges()])
def test_the_greedy_token_is_numpys_argmax_at_every_block_edge(name, logits):
    assert _core.greedy_token(logits) == int(np.argmax(logits))


@pytest.mark.parametrize("n", [1, 16, 17, 33, 49])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_logit_in_a_block_or_the_tail_is_found_first(n, bad):
    for where in sorted({0, n // 2, n - 1, min(16, n - 1)}):
        row = rng_for("edge-bad", n, where).standard_normal(n).astype(np.float32)
        row[where] = bad
        assert _core.greedy_token(row) == -1 - where


@pytest.mark.parametrize("name,logits", list(rows()), ids=[name for name, _ in rows()])
def test_the_greedy_token_is_numpys_argmax(name, logits):
    assert _core.greedy_token(logits) == int(np.argmax(logits))
    assert Sampler(GREEDY).sample(logits, []) == int(np.argmax(logits))


def test_a_repetition_penalty_is_applied_before_the_greedy_choice():
    logits = np.array([1.0, 5.0, 4.9, -2.0], np.float32)
    penalised = Sampler(GREEDY.with_overrides(repetition_penalty=1.5, repeat_last_n=8))
    assert penalised.sample(logits, [1]) == 2  # 5.0 / 1.5 falls below 4.9
    assert Sampler(GREEDY).sample(logits, [1]) == 1


BAD = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("where", [0, 7, 49151])
@pytest.mark.parametrize("bad", BAD, ids=list(BAD))
def test_non_finite_logits_are_refused_with_the_named_error(bad, where):
    logits = rng_for("bad", bad, where).standard_normal(49152).astype(np.float32)
    logits[where] = BAD[bad]
    logits[where // 2 + 1] = np.nan if bad != "nan" else logits[where // 2 + 1]  # a second one after the first
    first = min(where, where // 2 + 1) if bad != "nan" else where
    assert _core.greedy_token(logits) == -1 - first
    with pytest.raises(InvalidModel) as expected:
        check_finite(logits)
    for sampler in (Sampler(GREEDY), Sampler(GREEDY.with_overrides(repetition_penalty=1.3, repeat_last_n=4))):
        with pytest.raises(InvalidModel) as refused:
            sampler.sample(logits, [where])
        assert str(refused.value) == str(expected.value)


def test_a_read_only_logits_view_is_read_in_place():
    logits = rng_for("view").standard_normal(512).astype(np.float32)
    logits.flags.writeable = False  # as a session's logits buffer comes back
    assert Sampler(GREEDY).sample(logits, []) == int(np.argmax(logits))


def test_rows_the_fast_path_does_not_take_still_sample_greedily():
    logits = rng_for("float64").standard_normal(300)  # float64 (the numpy oracles'), and a strided view
    assert Sampler(GREEDY).sample(logits, []) == int(np.argmax(logits))
    strided = logits.astype(np.float32)[::2]
    assert Sampler(GREEDY).sample(strided, []) == int(np.argmax(strided))
    with pytest.raises(InvalidModel):
        Sampler(GREEDY).sample(np.array([1.0, np.nan]), [])
