"""The package installs as one import name with the C++ core beside it."""

import subprocess
import sys

import ggufsm
from ggufsm import _core
from ggufsm.spec import errors


def test_core_extension_imports_and_reports_its_version():
    assert _core.__version__ == "0.1.0"


def test_every_table_error_is_a_ggufsm_error_subclass():
    assert errors.ERROR_CLASSES, "the table names no errors"
    for code, cls in errors.ERROR_CLASSES.items():
        assert issubclass(cls, ggufsm.GgufsmError)
        assert cls.code == code
        assert cls.meaning


def test_console_command_runs():
    result = subprocess.run([sys.executable, "-m", "ggufsm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("ggufsm ")
