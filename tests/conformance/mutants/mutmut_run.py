"""mutmut on the lifecycle code, with the conformance suite as its test: staging, running, reading the verdicts.

mutmut 3 names a mutant after the module path of its file, relative to the
directory it runs in (``src/`` stripped), and its trampolines compare that
name with the running function's ``__module__``. This repository maps its
rooms onto one import package (``spec/`` is ``ggufsm.spec``, ...), so mutmut
runs in a staging directory (``build/mutmut/``) where the package is laid
out as it is imported: ``src/ggufsm/{spec,reference,conformance}`` plus the
built C++ core, each directory copied from where ``[tool.scikit-build]
wheel.packages`` says it lives (so the staging follows any layout the
project's packaging follows). The configuration is the repository's own
``[tool.mutmut]`` (pyproject.toml, copied with the rest); its paths are the
staging directory's. The staged tests are ``suite_cases.py`` (one test per
case of the suite) and a conftest that puts the staged package in front of
the editable install.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
STAGING = REPO / "build" / "mutmut"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")

STAGED_CONFTEST = '''"""Import the staged (mutated) package, never the editable install of the working tree."""

import sys
from pathlib import Path

STAGED = Path(__file__).resolve().parents[1] / "src" / "ggufsm"

# The editable install's finder sits in front of sys.path and would serve the unmutated sources, and its path
# entry (the repository's src/) would find the unmutated package face: the staged src/ goes first instead.
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != "ScikitBuildRedirectingFinder"]
sys.path[:] = [str(STAGED.parent), *(entry for entry in sys.path
                                     if not (Path(entry or ".") / "ggufsm" / "__init__.py").is_file())]
# mutmut runs pytest several times in one process (and forks from it): drop ggufsm only if it is not the
# staged copy, or two copies of its classes (GgufsmError...) would meet.
loaded = sys.modules.get("ggufsm")
if loaded is not None and Path(loaded.__file__).resolve().parent != STAGED:
    for name in [name for name in sys.modules if name == "ggufsm" or name.startswith("ggufsm.")]:
        del sys.modules[name]

import ggufsm  # noqa: E402

if Path(ggufsm.__file__).resolve().parent != STAGED:
    raise ImportError(f"ggufsm was imported from {ggufsm.__file__}, not the staged copy {STAGED}")
'''

# mutmut's exit-code statuses that count as the suite catching the mutant.
CAUGHT = ("killed", "timeout", "segfault")


@dataclass
class MutmutResult:
    statuses: dict[str, str]                       # mutant name -> mutmut's status
    diffs: dict[str, str] = field(default_factory=dict)   # mutant name -> its diff (survivors only)
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def by_status(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name, status in sorted(self.statuses.items()):
            grouped.setdefault(status, []).append(name)
        return grouped

    def to_json(self) -> dict:
        return {"statuses": self.statuses, "diffs": self.diffs, "seconds": self.seconds, "config": self.config}

    @classmethod
    def from_json(cls, data: dict) -> MutmutResult:
        return cls(data["statuses"], data["diffs"], data["seconds"], data.get("config", {}))


def wheel_packages() -> dict[str, str]:
    """The import package's directories (``ggufsm/spec``) and where they live in the repository (``spec``)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return project["tool"]["scikit-build"]["wheel"]["packages"]


def mutmut_config() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]


def stage(staging: Path = STAGING) -> None:
    """A fresh staging directory: the package as imported, the staged tests, pyproject.toml."""
    if staging.exists():
        shutil.rmtree(staging)
    package = staging / "src" / "ggufsm"
    # Outer packages first, so a room is copied into the package face that contains it.
    for target, source in sorted(wheel_packages().items(), key=lambda item: item[0].count("/")):
        shutil.copytree(REPO / source, staging / "src" / target, ignore=IGNORED, dirs_exist_ok=True)
    core = importlib.util.find_spec("ggufsm._core")
    if core is None or core.origin is None:
        raise RuntimeError("ggufsm._core is not built: install the package first (pip install -e .)")
    shutil.copy2(core.origin, package / Path(core.origin).name)
    tests = staging / "tests"
    tests.mkdir(parents=True)
    shutil.copy2(HERE / "suite_cases.py", tests / "test_conformance_cases.py")
    (tests / "conftest.py").write_text(STAGED_CONFTEST, encoding="utf-8")
    shutil.copy2(REPO / "pyproject.toml", staging / "pyproject.toml")


def run(*, max_children: int = 2, staging: Path = STAGING, log=sys.stderr) -> MutmutResult:
    """Stage, run mutmut, read every mutant's verdict and each survivor's diff."""
    import time

    stage(staging)
    mutmut = Path(sys.executable).with_name("mutmut")
    if not mutmut.exists():
        raise RuntimeError(f"mutmut is not installed beside {sys.executable}: pip install -e '.[mutation]'")
    started = time.perf_counter()
    completed = subprocess.run([str(mutmut), "run", "--max-children", str(max_children)], cwd=staging,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    (staging / "mutmut-run.log").write_text(completed.stdout, encoding="utf-8")
    if completed.returncode != 0:
        tail = "\n".join(completed.stdout.splitlines()[-30:])
        raise RuntimeError(f"mutmut run failed (exit {completed.returncode}); see {staging / 'mutmut-run.log'}:\n{tail}")
    statuses = read_statuses(staging)
    diffs = {name: show(name, mutmut, staging) for name, status in statuses.items() if status not in CAUGHT}
    print(f"mutmut: {len(statuses)} mutants in {seconds:.0f} s", file=log)
    return MutmutResult(statuses, diffs, seconds, mutmut_config())


def read_statuses(staging: Path = STAGING) -> dict[str, str]:
    """Every mutant's status, from mutmut's own records (``mutants/**.py.meta``)."""
    from mutmut.stats import status_by_exit_code

    statuses: dict[str, str] = {}
    for meta in sorted((staging / "mutants").rglob("*.py.meta")):
        for name, exit_code in json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"].items():
            statuses[name] = status_by_exit_code[exit_code]
    return statuses


def show(name: str, mutmut: Path, staging: Path = STAGING) -> str:
    shown = subprocess.run([str(mutmut), "show", name], cwd=staging, capture_output=True, text=True, check=True)
    return shown.stdout.split("\n", 1)[1] if shown.stdout.startswith("#") else shown.stdout
