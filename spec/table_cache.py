"""The checker's verdict on a table file, and the table's normal form, remembered between processes.

Every process's first ``load_spec()`` read the YAML (libyaml), imported and
ran the checker and normalised the table into a Spec (flattening every cell's
cases, resolving ``same`` and ``lazy_init``): 0.095 s of a fresh process's
`Runtime()` on a quiet machine once, still 7 ms of CPU with the parsed YAML
stored here. The verdict and the Spec depend only on the table's bytes and on
the code that reads, checks and normalises them, so a sound table's normal
form (``table.normal_form``: the Spec's values, every cell already resolved)
is stored under a key made of both: the sha256 of the table file's bytes and
of this folder's reading and checking code (`table.py`, `check.py`, this
file). A hit skips the YAML, the checker and the normalisation; the Spec is
built from the stored form (``table.spec_from_normal_form``). Any change to
the table (one byte) or to that code is a miss and runs the full path, so a
defective table is refused by name every time: only a table the checker
passed is ever stored.

The stored file is the sha256 of its payload on the first line, then the
payload as JSON (read in well under a millisecond; a form whose JSON would
not read back equal is never stored). A file whose payload does not match its
digest (truncated, edited, a bit flipped) is a miss, and is rewritten by the
load that follows. It lives in the user's cache (``$GGUFSM_CACHE/spec/``,
default ``~/.cache/ggufsm/spec/``, the folder the model cache uses), and is
advice only: missing, unreadable, corrupt or unwritable, the load takes the
full path. ``GGUFSM_SPEC_CACHE=0`` turns it off.
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

FORMAT = 2  # of the stored file (2: a digest line, then the normal form); part of the key
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
    """The normal form stored for exactly these table bytes (and this code), or None: absent, unreadable,
    or not what its digest says it is."""
    if not enabled():
        return None
    try:
        stored = (cache_folder() / f"{key(table_bytes)}.json").read_bytes()
        digest, _, payload = stored.partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            return None
        form = json.loads(payload)
    except (OSError, ValueError):
        return None
    return form if isinstance(form, dict) else None


def remember(table_bytes: bytes, form: Mapping[str, Any]) -> None:
    """Store the normal form of a table the checker passed. Written to a temporary file and renamed, so a reader in
    another process sees the whole file or none; failures are ignored (the cache is advice)."""
    if not enabled():
        return
    try:
        payload = json.dumps(form, ensure_ascii=False, allow_nan=False).encode("utf-8")
        if json.loads(payload) != form:
            return  # not plain JSON data (a non-string key, a tuple ...): never stored
        folder = cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{key(table_bytes)}.json"
        fd, temporary = tempfile.mkstemp(prefix=".spec-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except (OSError, ValueError, TypeError):
        pass
