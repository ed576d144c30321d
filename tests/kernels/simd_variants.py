"""The SIMD kernel variants this CPU runs, beside the scalar reference every test compares them with."""

from __future__ import annotations

import pytest

from ggufsm import _core

SIMD_VARIANTS = [isa for isa in _core.supported_isas() if isa != "scalar"]
only_with_simd = pytest.mark.skipif(not SIMD_VARIANTS, reason="this CPU runs only the scalar kernels")
