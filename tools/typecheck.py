"""mypy over the package as it is installed, from the repository's own folders.

The package `ggufsm` is assembled from several top-level folders (pyproject's
`wheel.packages`), and an editable install reaches them through import hooks
that mypy cannot follow. So this links the same mapping into build/typecheck
and runs mypy there: the modules mypy reads are the repository's files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
# The rooms whose types are checked (their own imports are followed, but only these report).
CHECKED = ("ggufsm/spec", "ggufsm/reference/runtime", "ggufsm/conformance")


def link_tree() -> Path:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["wheel"]["packages"]
    shutil.rmtree(TREE, ignore_errors=True)
    for target, source in sorted(packages.items()):  # the face before the rooms inside it
        link = TREE / target
        link.parent.mkdir(parents=True, exist_ok=True)
        if "/" in target:
            link.symlink_to(ROOT / source)
            continue
        # The face folder also holds the rooms' links, so it is a real folder of links to its files.
        link.mkdir()
        for entry in (ROOT / source).iterdir():
            if entry.name != "__pycache__":
                (link / entry.name).symlink_to(entry)
    return TREE


def main() -> int:
    tree = link_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *CHECKED]
    return subprocess.call(command, cwd=tree)


if __name__ == "__main__":
    sys.exit(main())
