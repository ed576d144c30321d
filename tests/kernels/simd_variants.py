"""The SIMD kernel variants this CPU runs, beside the scalar reference every test compares them with."""

from __future__ import annotations

import pytest

from ggufsm._core import kernels

SIMD_VARIANTS = [isa for isa in kernels.supported_isas() if isa != "scalar"]
only_with_simd = pytest.mark.skipif(not SIMD_VARIANTS, reason="this CPU runs only the scalar kernels")
