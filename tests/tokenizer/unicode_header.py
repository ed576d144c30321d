"""The core's Unicode tables (cpp/tokenizer/unicode_classes.h) read back as sets of code points, and
compared with the installed `regex` package where the two can be compared: on the code points both
assign. The header leads (it holds one Unicode version, as llama.cpp's unicode-data tables do); `regex`
may be older or newer, and a code point only one of them assigns is no disagreement."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import regex

HEADER = Path(__file__).resolve().parents[2] / "cpp" / "tokenizer" / "unicode_classes.h"
# The header's class tables and the expressions the reference pre-tokenizer runs them as.
CLASSES = {"kLetters": r"\p{L}", "kNumbers": r"\p{N}", "kSpaces": r"\s"}
ALL = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


@dataclass(frozen=True)
class UnicodeTables:
    version: str
    classes: dict[str, frozenset[int]]
    assigned: frozenset[int]


def read_tables(text: str) -> UnicodeTables:
    version = re.search(r'kUnicodeVersion\[\] = "([0-9.]+)"', text)
    assert version is not None, "the header names no kUnicodeVersion"
    tables = {}
    for name, body in re.findall(r"CodeRange (\w+)\[\] = \{(.*?)\};", text, re.S):
        tables[name] = frozenset(code for first, last in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", body)
                                 for code in range(int(first, 16), int(last, 16) + 1))
    return UnicodeTables(version.group(1), {name: tables[name] for name in CLASSES}, tables["kAssigned"])


@functools.cache
def committed() -> UnicodeTables:
    return read_tables(HEADER.read_text())


@functools.cache
def regex_set(expression: str) -> frozenset[int]:
    return frozenset(ord(char) for char in regex.findall(expression, ALL))


def regex_assigned() -> frozenset[int]:
    return regex_set(r"\P{Cn}")


def disagreements(tables: UnicodeTables) -> list[str]:
    """Every way the tables disagree with the installed `regex`, in words; empty when they agree."""
    problems = []
    ours, theirs = tables.assigned, regex_assigned()
    # An assigned code point stays assigned in every later version (Unicode's stability policy), so one
    # version's assigned set holds the other's; anything else is a wrong table, not a version gap.
    if not (ours <= theirs or theirs <= ours):
        problems.append(f"kAssigned (Unicode {tables.version}) and `regex` {regex.__version__} assign sets neither of "
                        f"which holds the other: {len(ours - theirs)} only in the header, {len(theirs - ours)} only in regex")
    both = ours & theirs
    for name, expression in CLASSES.items():
        if stray := tables.classes[name] - ours:
            problems.append(f"{name} holds {len(stray)} code points kAssigned does not, first U+{min(stray):04X}")
        if differ := (tables.classes[name] ^ regex_set(expression)) & both:
            problems.append(f"{name} and {expression} on `regex` {regex.__version__} differ on {len(differ)} code points "
                            f"both assign, first U+{min(differ):04X}")
    return problems


def assigned_by_one_only() -> frozenset[int]:
    """Code points the header and the installed `regex` do not both treat alike as assigned or not:
    the core and the reference may classify these differently, by design."""
    return committed().assigned ^ regex_assigned()
