"""Changing a model file under a runtime that has it loaded, the two ways that used to kill the process.

Shared by the API tests here and the stdio ones (tests/protocol): import
`truncate` and `overwrite_in_place` and call them from a token callback, so
the change lands during a generate, at a known token, with no sleep.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def private_copy(source: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """A copy of `source` that a test may damage (never the shared fixture or the model cache)."""
    target = Path(directory) / f"damaged-{Path(source).name}"
    shutil.copyfile(source, target)
    return target


def truncate(path: str | os.PathLike, size: int = 0) -> None:
    """Cut the file to `size` bytes in place (its mapping's later pages then fault: SIGBUS)."""
    os.truncate(path, size)


def overwrite_in_place(path: str | os.PathLike, content: bytes) -> None:
    """What `cp other path` does: open the same inode with O_TRUNC and write new bytes into it."""
    with open(path, "r+b") as file:
        file.truncate(0)
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
