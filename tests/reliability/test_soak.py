"""`ggufsm soak`: random operations checked against the table. A short run finds nothing on the reference,
and the checks do catch a runtime that breaks the table (a raw exception, an outcome no cell names, resident
data a state does not allow)."""

from __future__ import annotations

import json

import pytest

from ggufsm.cli import main
from ggufsm.reference.cli.soak import Soak, SoakFiles
from ggufsm.reference.runtime import Runtime
from ggufsm.spec import load_spec


@pytest.fixture(scope="module")
def soak_files(tmp_path_factory):
    return SoakFiles.make(tmp_path_factory.mktemp("soak"), None)


def soak(files, seconds: float = 2.0) -> dict:
    return Soak(files, handles=2, threads=2, seed=5, change_files=False).run(seconds)


def test_a_short_soak_of_the_reference_finds_no_violation_and_draws_every_command(soak_files):
    report = soak(soak_files)
    assert report["violations"] == 0, report["first_violations"]
    commands = {name for name, entry in load_spec().operations.items() if entry.kind == "command"}
    assert commands <= set(report["by_op"]), report["by_op"]


def test_a_short_soak_that_changes_the_model_file_under_its_handles_finds_no_violation(soak_files):
    """The table names what a changed file does (model_intact), so the soak with --change-files (make soak-ci)
    holds every outcome to a cell: truncations and rewrites in place included."""
    report = Soak(soak_files, handles=2, threads=2, seed=9, change_files=True).run(2.0)
    assert report["violations"] == 0, report["first_violations"]
    assert report["change_files"] is True


def test_the_soak_catches_a_raw_exception(soak_files, monkeypatch):
    def broken_reset(self):
        raise ValueError("not a table error")

    monkeypatch.setattr(Runtime, "reset", broken_reset)
    report = soak(soak_files)
    assert report["violations"] > 0
    assert any("reset raised ValueError" in text for text in report["first_violations"])


def test_the_soak_catches_an_outcome_no_cell_names(soak_files, monkeypatch):
    original = Runtime.free

    def free_then_init(self):   # ends in Initialized, which no free outcome names
        original(self)
        self.init_runtime(n_ctx=64, n_threads=1)

    monkeypatch.setattr(Runtime, "free", free_then_init)
    report = soak(soak_files)
    assert any(".free ended in Initialized" in text for text in report["first_violations"])


def test_the_soak_command_prints_its_figures_and_exits_0(capsys):
    assert main(["soak", "--seconds", "1", "--handles", "1", "--threads", "1", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ops"] > 0 and report["violations"] == 0 and report["seed"] == 3
