"""The checker's verdict on a table file, remembered between processes.

Every process's first ``load_spec()`` read the YAML (libyaml), imported and
ran the checker and built the Spec: 0.095 s of a fresh process's `Runtime()`
on a quiet machine, a third of SmolLM2's whole first token. The verdict
depends only on the table's bytes and on the code that reads and checks
them, so a sound table's parsed form is stored under a key made of both: the
sha256 of the table file's bytes and of this folder's reading and checking
code (`table.py`, `check.py`, this file). A hit skips the YAML and the
checker; the Spec is still built from the stored form (`build_spec`). Any
change to the table (one byte) or to the checker is a miss and runs the full
check, so a defective table is refused by name every time: only a table the
checker passed is ever stored.

The stored form is JSON (read in well under a millisecond; the table is
plain YAML data, and a table whose parsed form JSON would not give back
exactly is never stored). It lives in the user's cache
(``$GGUFSM_CACHE/spec/``, default ``~/.cache/ggufsm/spec/``, the folder the
model cache uses), and is advice only: missing, unreadable, corrupt or
unwritable, the load takes the full path. ``GGUFSM_SPEC_CACHE=0`` turns it
off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMAT = 1  # of the stored file; part of the key
# The code whose behaviour decides a verdict: the table's reader, its checker, and this cache.
CHECKING_CODE = ("table.py", "check.py", "table_cache.py")
SWITCH = "GGUFSM_SPEC_CACHE"


def cache_folder() -> Path:
    """Where verdicts are stored: the spec/ folder of the user's ggufsm cache (as the model cache's root)."""
    return Path(os.environ.get("GGUFSM_CACHE") or Path.home() / ".cache" / "ggufsm") / "spec"


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def key(table_bytes: bytes) -> str:
    """The table's bytes and the checking code's bytes, hashed together."""
    digest = hashlib.sha256(f"ggufsm-spec-cache {FORMAT}\n".encode())
    digest.update(hashlib.sha256(table_bytes).digest())
    here = Path(__file__).parent
    for name in CHECKING_CODE:
        digest.update(hashlib.sha256((here / name).read_bytes()).digest())
    return digest.hexdigest()


def recall(table_bytes: bytes) -> dict[str, Any] | None:
    """The parsed table the checker passed for exactly these bytes (and this checker), or None."""
    if not enabled():
        return None
    try:
        stored = json.loads((cache_folder() / f"{key(table_bytes)}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def remember(table_bytes: bytes, raw: Mapping[str, Any]) -> None:
    """Store a parsed table the checker passed. Written to a temporary file and renamed, so a reader in
    another process sees the whole file or none; failures are ignored (the cache is advice)."""
    if not enabled():
        return
    try:
        text = json.dumps(raw, ensure_ascii=False, allow_nan=False)
        if json.loads(text) != raw:
            return  # not plain JSON data (a non-string key, a tuple ...): never stored
        folder = cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{key(table_bytes)}.json"
        fd, temporary = tempfile.mkstemp(prefix=".spec-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except (OSError, ValueError, TypeError):
        pass
