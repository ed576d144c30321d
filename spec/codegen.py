"""Python modules generated from the table, so that code names its vocabulary without retyping it.

``ggufsm spec generate`` writes two modules beside this one:

- ``names.py``: one ``str`` enum per vocabulary of the table (states,
  operations, guards, errors, finish reasons). Code writes ``State.Ready``,
  never ``"Ready"``; a type checker sees every member, and a renamed state
  breaks the code that used the old name at import time.
- ``errors.py``: the exception hierarchy, one class per error code, written
  out as plain class statements that static tools can follow.

The generated files are committed; ``tests/spec/test_codegen.py`` fails when
either differs from what the table generates now (as for docs/spec).
"""

from __future__ import annotations

import keyword
import textwrap
from pathlib import Path

from ggufsm.spec.table import Spec

PACKAGE_DIR = Path(__file__).parent
NAMES_PATH = PACKAGE_DIR / "names.py"
ERRORS_PATH = PACKAGE_DIR / "errors.py"

HEADER = '''\
# GENERATED from spec/lifecycle.yaml by `ggufsm spec generate`; do not edit.
# tests/spec/test_codegen.py fails when this file is stale.
'''

# Python base classes beside GgufsmError, so callers can also catch the usual
# way (``except ValueError``). Which standard family an error belongs to is a
# Python concern, not something the language-neutral table says.
PYTHON_FAMILY: dict[str, str] = {
    "InvalidSampling": "ValueError",
    "InvalidInput": "ValueError",
    "ContextOverflow": "ValueError",
    "InvalidModel": "ValueError",
    "UnsupportedModel": "ValueError",
    "ModelUnavailable": "OSError",
    "InvalidState": "RuntimeError",
    "ModelNotLoaded": "RuntimeError",
}


def names_module(spec: Spec) -> str:
    vocabularies = [
        ("State", "A state of the lifecycle table.", [(name, entry.description) for name, entry in spec.states.items()]),
        ("Operation", "An operation of the lifecycle table.",
         [(name, entry.description) for name, entry in spec.operations.items()]),
        ("Guard", "A guard of the lifecycle table, in the order the runtime evaluates them.",
         [(name, entry.description) for name, entry in spec.guards.items()]),
        ("ErrorCode", "A named error of the lifecycle table.",
         [(name, entry.meaning) for name, entry in spec.errors.items()]),
        ("FinishReason", "How a request's generation ended.", list(spec.finish_reasons.items())),
        ("ResidentDatum", "Data a handle may hold.", list(spec.resident_data.items())),
        ("EffectField", "A field of an outcome's effects.",
         [(name, ", ".join(values)) for name, values in spec.effect_fields.items()]),
        *((effect_class(name), f"The values of the {name} effect.", list(values.items()))
          for name, values in spec.effect_fields.items()),
    ]
    parts = [
        HEADER,
        f'"""The table\'s vocabulary as enums (spec {spec.version}). Members compare equal to their names."""\n',
        "from __future__ import annotations\n",
        "from enum import Enum\n",
        f'SPEC_VERSION = "{spec.version}"\n',
    ]
    for class_name, doc, members in vocabularies:
        lines = [f"class {class_name}(str, Enum):", f'    """{doc}"""', ""]
        for name, description in members:
            lines.append(f'    {_member(name)} = "{name}"')
            lines.append(f'    """{_docstring_text(description)}"""')
        lines += ["", "    def __str__(self) -> str:", "        return self.value", ""]
        parts.append("\n" + "\n".join(lines))
    return "\n".join(parts)


def effect_class(field: str) -> str:
    """The enum of one effect field's values: last_error -> LastErrorEffect."""
    return "".join(part.capitalize() for part in field.split("_")) + "Effect"


def errors_module(spec: Spec) -> str:
    classes = []
    for code, entry in spec.errors.items():
        family = PYTHON_FAMILY.get(code)
        bases = f"GgufsmError, {family}" if family else "GgufsmError"
        classes.append(
            f"class {code}({bases}):\n"
            f'    """{_docstring_text(entry.meaning)}"""\n\n'
            f"    code = ErrorCode.{_member(code)}\n"
            f"    meaning = {entry.meaning!r}\n"
        )
    listing = ",\n".join(f"    {code}" for code in spec.errors)
    return (
        HEADER
        + '"""The error hierarchy: GgufsmError and one subclass per error code of the table.\n\n'
        "Every error carries ``code`` (an ``ErrorCode``), ``message`` (what was wrong and where) and\n"
        "``state_after`` (the handle's state once the error was recorded, None outside a runtime).\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        "from ggufsm.spec.names import ErrorCode\n\n\n"
        "class GgufsmError(Exception):\n"
        '    """An operation failed with one of the table\'s named errors."""\n\n'
        "    code: ErrorCode\n"
        '    meaning: str = ""\n\n'
        "    def __init__(self, message: str, *, state_after: str | None = None):\n"
        "        super().__init__(message)\n"
        "        self.message = message\n"
        "        self.state_after = state_after\n\n"
        "    def __str__(self) -> str:\n"
        '        suffix = f" (state after: {self.state_after})" if self.state_after else ""\n'
        '        return f"{self.code}: {self.message}{suffix}"\n\n'
        "    def to_dict(self) -> dict:\n"
        '        state_after = None if self.state_after is None else str(self.state_after)\n'
        '        return {"code": str(self.code), "message": self.message, "state_after": state_after}\n\n\n'
        + "\n\n".join(classes)
        + "\n\n"
        + f"ERROR_CLASSES: dict[str, type[GgufsmError]] = {{cls.code.value: cls for cls in (\n{listing},\n)}}\n\n\n"
        "def error_class(code: str) -> type[GgufsmError]:\n"
        '    """The exception class for a table error code."""\n'
        "    try:\n"
        "        return ERROR_CLASSES[str(code)]\n"
        "    except KeyError:\n"
        '        raise KeyError(f"{code!r} is not an error code of the lifecycle table") from None\n\n\n'
        "__all__ = [\n"
        '    "GgufsmError",\n'
        '    "ERROR_CLASSES",\n'
        '    "error_class",\n'
        + "".join(f'    "{code}",\n' for code in spec.errors)
        + "]\n"
    )


def generated_files(spec: Spec) -> dict[Path, str]:
    return {NAMES_PATH: names_module(spec), ERRORS_PATH: errors_module(spec)}


def stale_files(spec: Spec) -> list[Path]:
    """The generated modules whose text differs from what the table generates now."""
    return [path for path, text in generated_files(spec).items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def write_generated(spec: Spec) -> list[Path]:
    written = []
    for path, text in generated_files(spec).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def _member(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"table name {name!r} is not a Python identifier")
    return name


def _docstring_text(text: str) -> str:
    return " ".join(textwrap.dedent(text).split()).replace("\\", "\\\\").replace('"""', "'''")


if __name__ == "__main__":  # python -m ggufsm.spec.codegen: works even when the generated modules are broken
    from ggufsm.spec.table import load_spec

    for written in write_generated(load_spec()):
        print(f"wrote {written}")
