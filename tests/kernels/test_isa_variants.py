"""Every SIMD variant the CPU runs agrees with the scalar reference kernel on every type."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from matmul_contract import FLOAT_RELATIVE, as_quantized, dequantized
from simd_variants import SIMD_VARIANTS, only_with_simd

from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import KERNEL_TYPES, random_weights
from ggufsm.spec.errors import InvalidInput


def test_scalar_is_always_supported_and_listed_first():
    assert kernels.supported_isas()[0] == "scalar"
    assert kernels.active_isa() in kernels.supported_isas()


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
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
    kernels.force_isa("scalar")
    scalar = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
    kernels.force_isa(isa)
    assert kernels.active_isa() == isa
    simd = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
    # Same quantized codes, same integer dot products: only float summation order differs.
    magnitude = np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, rows, cols)).T
    assert (np.abs(simd - scalar) <= 2 * FLOAT_RELATIVE * magnitude + 1e-30).all(), (
        f"{isa} {qtype.name}: max difference {np.abs(simd - scalar).max():.3g}")


THIRTY_TWO_BLOCK_TYPES = [t for t in KERNEL_TYPES if t.name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")]


@only_with_simd
@pytest.mark.parametrize("isa", SIMD_VARIANTS)
@pytest.mark.parametrize("qtype", THIRTY_TWO_BLOCK_TYPES, ids=lambda t: t.name)
# The SIMD kernels take 32-blocks in groups of four (AVX-512) or pairs (AVX2) against activations
# grouped by four: 1..7 blocks and 17, 18, 19 (SmolLM2's 576 columns are 18) reach every partial
# group; 5 and 9 activation rows reach the four-at-once path and its remainder; 19 rows are not a
# multiple of any row grouping.
@pytest.mark.parametrize("blocks", [1, 2, 3, 4, 5, 6, 7, 17, 18, 19])
@pytest.mark.parametrize("n", [1, 5, 9])
def test_every_partial_group_of_32_blocks_agrees_with_scalar(isa, qtype, blocks, n, restore_isa):
    rows, cols = 19, 32 * blocks
    rng = np.random.default_rng(zlib.crc32(f"{isa} {qtype.name} {blocks} {n}".encode()))
    weights = random_weights(qtype, rows, cols, rng)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    kernels.force_isa("scalar")
    scalar = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
    kernels.force_isa(isa)
    simd = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
    magnitude = np.abs(as_quantized(qtype, x)) @ np.abs(dequantized(qtype, weights, rows, cols)).T
    assert (np.abs(simd - scalar) <= 2 * FLOAT_RELATIVE * magnitude + 1e-30).all(), (
        f"{isa} {qtype.name} {blocks} blocks n={n}: max difference {np.abs(simd - scalar).max():.3g}")


GUARD_PAGE_SCRIPT = """
import ctypes, mmap, sys
import numpy as np
from ggufsm._core import kernels
from ggufsm.reference.bench.quant_blocks import KERNEL_TYPES, random_weights
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
kernels.force_isa(sys.argv[1])
rng = np.random.default_rng(0)
for qtype in KERNEL_TYPES:
    shapes = ((3, 768), (2, 2304), (1, 256)) if qtype.name.endswith("_K") else ((3, 576), (2, 2400), (1, 96), (1, 32))
    for rows, cols in shapes:
        weights = random_weights(qtype, rows, cols, rng)
        size = -(-weights.nbytes // page) * page
        area = mmap.mmap(-1, size + page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(area))
        assert libc.mprotect(base + size, page, 0) == 0, ctypes.get_errno()
        # The weights end exactly where the inaccessible page begins.
        view = np.frombuffer(area, dtype=np.uint8, count=weights.nbytes, offset=size - weights.nbytes)
        view[:] = weights.reshape(-1).view(np.uint8)
        x = rng.standard_normal((5, cols)).astype(np.float32)
        y = kernels.matmul(int(qtype), view, rows, cols, x, 2)
        expected = kernels.matmul(int(qtype), weights, rows, cols, x, 2)
        assert np.array_equal(y, expected), qtype.name
        del view
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs mprotect through ctypes")
@pytest.mark.parametrize("isa", kernels.supported_isas())
def test_no_kernel_reads_past_the_last_weight_byte(isa):
    # Weights that end at an inaccessible page: a read past the end is a crash, seen here as a
    # failed child rather than a dead test run. (Software prefetches past the end are allowed:
    # they never fault.)
    result = subprocess.run([sys.executable, "-c", GUARD_PAGE_SCRIPT, isa], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (result.returncode, result.stderr[-2000:])


def test_forcing_an_unknown_isa_names_the_choices():
    with pytest.raises(InvalidInput, match="scalar, avx2 or avx512"):
        kernels.force_isa("neon")


def run_with_env(isa: str) -> subprocess.CompletedProcess:
    code = "from ggufsm._core import kernels\nprint(kernels.active_isa())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "GGUFSM_ISA": isa})


def test_the_environment_chooses_the_variant():
    for isa in kernels.supported_isas():
        result = run_with_env(isa)
        assert result.stdout.strip() == isa, result.stderr


def test_a_bad_environment_value_is_an_invalid_input_on_use():
    code = ("from ggufsm._core import kernels\nfrom ggufsm.spec.errors import InvalidInput\n"
            "try:\n    kernels.active_isa()\nexcept InvalidInput as e:\n    print('InvalidInput', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "GGUFSM_ISA": "sse9"})
    assert result.stdout.startswith("InvalidInput") and "sse9" in result.stdout, result.stdout + result.stderr


# ---------------------------------------------------------------- one kernel set, chosen once

@pytest.mark.parametrize("isa", kernels.supported_isas())
def test_forcing_a_variant_swaps_the_whole_kernel_set(isa, restore_isa):
    kernels.force_isa(isa)
    owners = kernels.active_set()
    assert set(owners.values()) <= {isa, "scalar"}
    # Every dispatched concern (matmul, attention, activations) is in the one set.
    assert {"matmul Q4_1", "matmul Q6_K", "attend f16", "round_to_half", "silu", "gelu"} <= set(owners)
    if isa != "scalar":
        assert all(owners[entry] == isa for entry in ("matmul Q4_1", "attend f16", "round_to_half", "silu", "gelu"))
        assert owners["matmul Q2_K"] == "scalar"  # no SIMD kernel: the set keeps the scalar one


def test_the_variant_is_chosen_once_at_first_use():
    """A change of GGUFSM_ISA after the first use does not move the choice; only force_isa does."""
    code = ("import os\nfrom ggufsm._core import kernels\n"
            "first = kernels.active_isa()\nos.environ['GGUFSM_ISA'] = 'scalar'\n"
            "print(first, kernels.active_isa())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "GGUFSM_ISA"})
    best = kernels.supported_isas()[-1]
    assert result.stdout.split() == [best, best], result.stdout + result.stderr
