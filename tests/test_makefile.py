"""The Makefile's set-up: a project virtual environment, re-installed only when a build input changes.

Each test asks make what it would do (`make -n`, which runs nothing) with VENV pointed at a
temporary folder, so the checkout's own .venv and build are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(venv: Path, *targets: str, python: str = sys.executable) -> str:
    """The commands `make TARGETS` would run, one per line."""
    return subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={venv}", f"PYTHON={python}", *targets],
                          capture_output=True, text=True, check=True).stdout


def installed_venv(tmp_path: Path) -> Path:
    """A venv folder as a finished `make setup` leaves it: an interpreter and a stamp newer than every input."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".ggufsm-installed").touch()
    return venv


def test_a_fresh_checkout_makes_a_project_venv_from_the_given_python_and_installs_into_it(tmp_path):
    venv = tmp_path / "venv"
    plan = planned(venv, "setup", python="/usr/bin/python3")
    assert f"/usr/bin/python3 -m venv {venv}" in plan
    assert f'{venv}/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"' in plan
    # Nothing goes into the interpreter the venv is made from (PEP 668 refuses that on Debian).
    assert "/usr/bin/python3 -m pip" not in plan


def test_a_second_run_with_nothing_changed_installs_nothing(tmp_path):
    venv = installed_venv(tmp_path)
    plan = planned(venv, "demo")
    assert "pip install" not in plan and "-m venv" not in plan
    assert f"{venv}/bin/python -m ggufsm demo" in plan


def test_a_changed_build_input_installs_again(tmp_path):
    venv = installed_venv(tmp_path)
    stamp = venv / ".ggufsm-installed"
    oldest_input = min((ROOT / "pyproject.toml").stat().st_mtime, (ROOT / "CMakeLists.txt").stat().st_mtime)
    os.utime(stamp, (oldest_input - 60, oldest_input - 60))   # as if a build input changed after the install
    assert "pip install --quiet --disable-pip-version-check -e" in planned(venv, "demo")


def test_the_system_packages_the_build_needs_are_checked_by_the_thing_itself():
    makefile = (ROOT / "Makefile").read_text()
    for check, package in (("command -v dot", "graphviz"), ("command -v g++", "g++"), ("Python.h", "python3-dev"),
                           ("-m venv", "python3-venv")):
        assert check in makefile and package in makefile, (check, package)


def test_ci_runs_the_readmes_test_command():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert any(line.startswith("make test") for line in ci.splitlines())
