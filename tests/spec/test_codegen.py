"""The generated vocabulary modules (spec/names.py, spec/errors.py) are what the table generates now."""

import ast

from ggufsm.spec import codegen, errors, names
from ggufsm.spec.table import load_spec


def test_generated_modules_are_up_to_date_with_the_table():
    stale = codegen.stale_files(load_spec())
    assert not stale, f"stale generated module(s) {[str(path) for path in stale]}: run `ggufsm spec generate`"


def test_every_vocabulary_of_the_table_is_an_enum_with_exactly_its_names():
    spec = load_spec()
    assert [member.value for member in names.State] == list(spec.states)
    assert [member.value for member in names.Operation] == list(spec.operations)
    assert [member.value for member in names.Guard] == list(spec.guards)
    assert [member.value for member in names.ErrorCode] == list(spec.errors)
    assert [member.value for member in names.FinishReason] == list(spec.finish_reasons)
    assert names.SPEC_VERSION == spec.version


def test_error_classes_are_plain_class_statements_static_tools_can_follow():
    tree = ast.parse(codegen.ERRORS_PATH.read_text(encoding="utf-8"))
    declared = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert declared == {"GgufsmError", *load_spec().errors}
    for code, cls in errors.ERROR_CLASSES.items():
        assert cls.code == code and issubclass(cls, errors.GgufsmError)
        assert getattr(errors, code) is cls


def test_an_error_serializes_its_code_and_state_as_plain_strings():
    error = errors.InvalidModel("bad tensor at offset 24", state_after=names.State.RecoverableError)
    assert error.to_dict() == {"code": "InvalidModel", "message": "bad tensor at offset 24",
                               "state_after": "RecoverableError"}
    assert type(error.to_dict()["state_after"]) is str
