"""The package installs as one import name with the C++ core beside it."""

import ast
import pydoc
import subprocess
import sys
from pathlib import Path

import pytest

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


REPOSITORY = Path(__file__).resolve().parents[1]


def test_dir_and_help_show_the_public_names():
    assert {"Runtime", "RuntimeConfig", "SamplingConfig", "Generation", "TokenEvent", "State", "GgufsmError",
            "errors"} <= set(dir(ggufsm))
    text = pydoc.render_doc(ggufsm, renderer=pydoc.plaintext)
    assert "class Runtime" in text and "load_model(self, source)" in text
    assert ggufsm.errors.ContextOverflow.code == "ContextOverflow"


def test_type_checkers_see_every_public_name_bound():
    """Each name in __all__ is bound by an import a type checker follows (a plain one, or one
    under TYPE_CHECKING for the names imported on first use), an assignment, or a declaration
    under TYPE_CHECKING (`__version__`, computed on first use)."""
    tree = ast.parse((REPOSITORY / "src" / "ggufsm" / "__init__.py").read_text())
    bound = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    bound |= {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name)}
    bound |= {node.target.id for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
              and isinstance(node.target, ast.Name)}
    assert set(ggufsm.__all__) <= bound


def test_importing_the_package_leaves_its_version_until_asked_and_then_gives_the_installed_one():
    # importlib.metadata and its search of sys.path were 40-70 ms of every `import ggufsm`.
    code = ("import sys, ggufsm; assert 'importlib.metadata' not in sys.modules, 'imported early'; "
            "from importlib.metadata import version; assert ggufsm.__version__ == version('ggufsm')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_type_checker_sees_the_public_names_with_their_types(tmp_path):
    """mypy, on the package laid out as a wheel installs it (pyproject's wheel.packages, linked
    into a temporary folder): the lazily imported Runtime has its real signature."""
    assert (REPOSITORY / "src" / "ggufsm" / "py.typed").is_file()  # PEP 561: installed, it is checked too
    mypy = pytest.importorskip("mypy.api")
    tomllib = pytest.importorskip("tomllib")
    layout = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["scikit-build"]["wheel"]["packages"]
    for package, folder in sorted(layout.items()):
        if package == "ggufsm":
            (tmp_path / package).mkdir()
            for file in (REPOSITORY / folder).iterdir():
                (tmp_path / package / file.name).symlink_to(file)
        else:
            (tmp_path / package).symlink_to(REPOSITORY / folder)
    (tmp_path / "use.py").write_text("import ggufsm\nreveal_type(ggufsm.Runtime().load_model)\n"
                                     "reveal_type(ggufsm.errors.ContextOverflow)\n")
    out, err, status = mypy.run(["--follow-imports=silent", "--cache-dir", str(tmp_path / ".mypy_cache"),
                                 "--python-executable", sys.executable, str(tmp_path / "use.py")])
    assert 'Revealed type is "def (source: Any) -> dict[Any, Any]"' in out, out + err
    assert "-> ggufsm.spec.errors.ContextOverflow" in out, out + err


def test_python_run_from_the_repository_root_imports_the_installed_package():
    assert not (REPOSITORY / "ggufsm").exists()  # no bare folder to shadow it: the face lives in src/ggufsm
    done = subprocess.run([sys.executable, "-c", "import ggufsm, ggufsm.spec, ggufsm._core; print(ggufsm.Runtime)"],
                          cwd=REPOSITORY, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ggufsm.reference.runtime.handle.Runtime" in done.stdout
