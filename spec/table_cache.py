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
load that follows. It lives in the ``spec/`` folder of the user's ggufsm
cache (user_cache.py: ``$GGUFSM_CACHE``, else ``$XDG_CACHE_HOME/ggufsm``, else
``~/.cache/ggufsm``; the model cache's root), and is advice only: missing,
unreadable, corrupt, read-only or unwritable, the load takes the full path.
``GGUFSM_SPEC_CACHE=0`` turns it off; deleting the folder clears it.

Every table edit and every version of the checking code is a new key, and
the folders of several checkouts share one cache: each write prunes the
folder to the KEEP forms used last (by modification time; a hit refreshes
its file's), the one just written always among them, and removes the
temporary files of writes that died more than an hour ago. Safe beside other
processes doing the same: a form is written whole to a temporary name and
renamed, so a reader opens the whole file or none; a reader that opened a
file a pruner then removes still reads it whole (an unlink does not touch an
open file); a file that vanished between the listing and its stat or unlink
is skipped; a form pruned before it is read is a miss, like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ggufsm.spec.user_cache import cache_root

FORMAT = 2  # of the stored file (2: a digest line, then the normal form); part of the key
# The code whose behaviour decides a verdict: the table's reader, its checker, and this cache.
CHECKING_CODE = ("table.py", "check.py", "table_cache.py")
SWITCH = "GGUFSM_SPEC_CACHE"
# Forms kept after a write: this checkout's, and a few for other checkouts and recent edits (each ~45 KB).
KEEP = 8
# A temporary file older than this is a write that died (a live write renames its file within milliseconds).
ABANDONED_SECONDS = 3600.0
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".spec-", ".tmp"


def cache_folder() -> Path:
    """Where verdicts are stored: the spec/ folder of the user's ggufsm cache (the model cache's root)."""
    return cache_root() / "spec"


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
        path = cache_folder() / f"{key(table_bytes)}.json"
        stored = path.read_bytes()
        digest, _, payload = stored.partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            return None
        form = json.loads(payload)
    except (OSError, ValueError):
        return None
    if not isinstance(form, dict):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last a prune removes (a read-only cache keeps its old time)
    return form


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
        fd, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        prune(folder, keep=target.name)
    except (OSError, ValueError, TypeError):
        pass


def prune(folder: Path, keep: str) -> None:
    """Removes all but the KEEP forms used last (`keep`, just written, always stays) and abandoned temporary files.
    Files that vanish meanwhile (another process pruning) are skipped; nothing here raises OSError."""
    forms: list[tuple[float, str]] = []
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        try:
            modified = os.stat(folder / name).st_mtime
        except OSError:
            continue  # removed since the listing
        if name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX):
            if now - modified > ABANDONED_SECONDS:
                _remove(folder / name)
        elif name.endswith(".json") and name != keep:
            forms.append((modified, name))
    forms.sort(reverse=True)  # most recently used first
    for _, name in forms[KEEP - 1:]:
        _remove(folder / name)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def clear() -> tuple[int, int]:
    """Removes every stored form and temporary file (`ggufsm cache clear spec`): (files removed, bytes freed).
    The next load takes the full path and stores its form again."""
    folder = cache_folder()
    removed = freed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0, 0
    for name in names:
        if not (name.endswith(".json") or (name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX))):
            continue  # not ours
        try:
            size = os.stat(folder / name).st_size
            os.unlink(folder / name)
        except OSError:
            continue
        removed += 1
        freed += size
    return removed, freed
