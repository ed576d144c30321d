"""Whether a value is in the range the table states for it, and the range in words.

The table's `ranges` say what each guard-checked argument may be; a runtime
asks here instead of writing the numbers again. A value must also be of the
range's type: an integer (a bool is not one) or a finite number that is not
subnormal (a subnormal divisor such as temperature 1e-310 overflows every
quotient; 0 itself is normal here); a prompt's ranges are checked by the
runtime that encodes it.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

from ggufsm.spec.table import ValueRange


def in_range(value_range: ValueRange, value: Any) -> bool:
    if value is None:
        return value_range.nullable
    if isinstance(value, bool) or value_range.range is None:
        return False
    if value_range.type == "integer":
        return isinstance(value, numbers.Integral) and value_range.range.contains(int(value))
    return (isinstance(value, numbers.Real) and math.isfinite(value) and not _subnormal(float(value))
            and value_range.range.contains(float(value)))


def _subnormal(value: float) -> bool:
    return value != 0 and abs(value) < sys.float_info.min


def range_text(value_range: ValueRange) -> str:
    """'a finite number in [0, 100] (0: greedy)', 'null or an integer in [0, 18446744073709551616) (null: ...)'."""
    kind = "an integer" if value_range.type == "integer" else "a finite number (not subnormal)"
    words = f"{kind} in {value_range.range.text if value_range.range else '?'}"
    notes = [value_range.meaning] if value_range.meaning else []
    if value_range.nullable:
        words = f"null or {words}"
        notes.append(f"null: {value_range.null_means}" if value_range.null_means else "")
    notes = [note for note in notes if note]
    return words + (f" ({'; '.join(notes)})" if notes else "")
