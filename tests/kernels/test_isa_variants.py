"""Every SIMD variant the CPU runs agrees with the scalar reference kernel on every type."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from ggufsm import _core
from ggufsm.reference.quant_blocks import KERNEL_TYPES, random_weights
from ggufsm.spec.errors import InvalidInput

from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized

VARIANTS = [isa for isa in _core.supported_isas() if isa != "scalar"]


@pytest.fixture
def restore_isa():
    before = _core.active_isa()
    yield
    _core.force_isa(before)


def test_scalar_is_always_supported_and_listed_first():
    assert _core.supported_isas()[0] == "scalar"
    assert _core.active_isa() in _core.supported_isas()


@pytest.mark.skipif(not VARIANTS, reason="this CPU runs only the scalar kernels")
@pytest.mark.parametrize("isa", VARIANTS)
@pytest.mark.parametrize("qtype", KERNEL_TYPES, ids=lambda t: t.name)
# Odd column counts for the float types reach the SIMD tails; 2304 = 9 k-quant blocks; 2400 = 75
# 32-blocks reaches every tail of the kernels that take blocks four, two and one at a time.
@pytest.mark.parametrize("n", [1, 6])
def test_variant_agrees_with_scalar(isa, qtype, n, restore_isa):
    rows = 37
    cols = 2304 if qtype.name.endswith("_K") else 2304 + 3 if qtype.name in ("F32", "F16", "BF16") else 2400
    rng = np.random.default_rng(zlib.crc32(f"{isa} {qtype.name} {n}".encode()))
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    _core.force_isa("scalar")
    scalar = _core.matmul(int(qtype), weights, rows, cols, x, 2)
    _core.force_isa(isa)
    assert _core.active_isa() == isa
    simd = _core.matmul(int(qtype), weights, rows, cols, x, 2)
    # Same quantized codes, same integer dot products: only float summation order differs.
    magnitude = np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, rows, cols)).T
    assert (np.abs(simd - scalar) <= 2 * FLOAT_RELATIVE * magnitude + 1e-30).all(), (
        f"{isa} {qtype.name}: max difference {np.abs(simd - scalar).max():.3g}")


def test_forcing_an_unknown_isa_names_the_choices():
    with pytest.raises(InvalidInput, match="scalar, avx2 or avx512"):
        _core.force_isa("neon")


def run_with_env(isa: str) -> subprocess.CompletedProcess:
    code = "from ggufsm import _core\nprint(_core.active_isa())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "GGUFSM_ISA": isa})


def test_the_environment_chooses_the_variant():
    for isa in _core.supported_isas():
        result = run_with_env(isa)
        assert result.stdout.strip() == isa, result.stderr


def test_a_bad_environment_value_is_an_invalid_input_on_use():
    code = ("from ggufsm import _core\nfrom ggufsm.spec.errors import InvalidInput\n"
            "try:\n    _core.active_isa()\nexcept InvalidInput as e:\n    print('InvalidInput', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "GGUFSM_ISA": "sse9"})
    assert result.stdout.startswith("InvalidInput") and "sse9" in result.stdout, result.stdout + result.stderr
