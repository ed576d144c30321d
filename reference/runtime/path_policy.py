"""Which model paths a handle may open: every path, or only those under its model roots.

A server that loads whatever path a client names opens any file the process
can read. With roots (``ggufsm serve-stdio --model-root DIR``, repeatable),
a path is resolved first (relative to the working directory, every symlink
followed, ``..`` collapsed) and refused unless the result lies under one
of the roots, also resolved. A refusal is the table's ModelUnavailable for
the load (model_readable is false), so the handle moves where the table
says, and its message names the path as given and nothing found on the way:
not whether it exists, what kind of file it is, or where a symlink points.
The loader then opens the resolved path, so a path is checked and opened
as the same file (short of a symlink under a root changed in between, which
takes write access to the root).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ggufsm.spec.errors import ModelUnavailable

PathSource = str | os.PathLike


class ModelRoots:
    def __init__(self, roots: Sequence[PathSource]):
        resolved = []
        for root in roots:
            path = os.path.realpath(os.fspath(root))
            if not os.path.isdir(path):
                raise ValueError(f"model root {os.fspath(root)!r} is not a directory")
            resolved.append(path)
        self.roots: tuple[str, ...] = tuple(resolved)

    def admit(self, source):
        """The source to load: bytes as given; a path resolved, if it lies under a root (else ModelUnavailable)."""
        if not isinstance(source, (str, os.PathLike)):
            return source   # bytes name no file
        given = os.fspath(source)
        resolved = os.path.realpath(given)
        if not any(resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots):
            raise ModelUnavailable(f"{given!r} is outside the model roots this server may load from "
                                   f"({len(self.roots)} root(s), set with --model-root)")
        return resolved

    def describe(self) -> list[str]:
        return list(self.roots)
