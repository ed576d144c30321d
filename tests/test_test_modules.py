"""The suite's own layout: pytest imports test modules by their base name (rootdir mode, no packages)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_two_test_modules_share_a_base_name():
    # Two tests/*/test_x.py stop the whole run at collection ("import file mismatch").
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]
