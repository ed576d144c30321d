"""The kit's side of ``model_intact`` false: a private copy of a model file, changed under the runtime.

A file-change case (``plan.cases.ModelFileChange``) must not touch the suite's
own files, which every other case loads: it gets a copy of the file in a
temporary directory (same file name, so its identity in diagnostics is the
original's), every argument naming the original names the copy, and just
before the case's call the kit changes the copy the way the plan says. The
copy is dated a minute back when made, so a rewrite now gives it another
modification time on any filesystem clock (a coarse one could otherwise
give the load and the rewrite the same tick). Nothing here needs the
implementation's cooperation: the runtime sees only its file change, as it
would if a user ran ``cp`` over it, whether it runs in this process or
behind a pipe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ggufsm.conformance.plan.cases import ModelFileChange
from ggufsm.conformance.plan.recipes import FileChange, SuiteInputs

BACKDATE_NS = 60 * 10**9
OTHER_MODEL = {"model": "alt_model", "alt_model": "model"}


class PrivateCopy:
    """The copy one case loads, and how to change it."""

    def __init__(self, change: ModelFileChange, inputs: SuiteInputs, directory: Path):
        self.change = change
        self.original = str(getattr(inputs, change.file))
        self.other = Path(getattr(inputs, OTHER_MODEL[change.file]))
        self.path = directory / Path(self.original).name
        shutil.copyfile(self.original, self.path)
        made = os.stat(self.path).st_mtime_ns - BACKDATE_NS
        os.utime(self.path, ns=(made, made))

    def args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """A call's arguments with every mention of the original file turned into the copy."""
        return {key: str(self.path) if value == self.original else value for key, value in args.items()}

    def apply(self) -> None:
        """Change the copy in place (the same inode the runtime opened), as the plan says."""
        if self.change.how == FileChange.truncate:
            os.truncate(self.path, self.path.stat().st_size // 2)
            return
        content = self.other.read_bytes()
        with open(self.path, "r+b") as file:   # what `cp OTHER FILE` does to an existing FILE
            file.truncate(0)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())


@contextmanager
def private_copy(change: ModelFileChange | None, inputs: SuiteInputs) -> Iterator[PrivateCopy | None]:
    """The case's private copy (None for a case that changes no file), removed afterwards."""
    if change is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ggufsm-file-change-") as directory:
        yield PrivateCopy(change, inputs, Path(directory))
