"""README's "Use it from Python" runs as written, on the default model."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


@pytest.mark.real_model
def test_the_readmes_python_section_runs_as_written(smollm2_path):
    blocks = python_blocks("Use it from Python")
    assert blocks, "README has no python block under 'Use it from Python'"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, f"{README.name} (Use it from Python)", "exec"), {"__name__": "readme"})
    lines = printed.getvalue().splitlines()
    assert "Paris" in lines[0]                                  # greedy, so always this answer
    assert lines[-1] == "ContextOverflow -> RecoverableError"   # the named error, caught
