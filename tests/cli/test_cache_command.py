"""`ggufsm cache` shows where the user's cache is and what its two parts hold, and `ggufsm cache clear` removes
exactly the part it names: the spec's stored forms (the next load stores its form again) or the registered models
and their stamps, nothing it does not own."""

from __future__ import annotations

import json

import pytest

from ggufsm import cli
from ggufsm.reference.model import registry
from ggufsm.spec import table_cache
from ggufsm.spec.table import TABLE_PATH, load_spec


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache with one stored spec form, one registered model ("tiny", stamped) and a file of the user's."""
    root = tmp_path / "cache"
    monkeypatch.setenv("GGUFSM_CACHE", str(root))
    monkeypatch.delenv(table_cache.SWITCH, raising=False)
    table_cache.remember(b"a table", {"a": "form"})
    model = root / "models" / "tiny.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + bytes(96))
    entry = registry.RegistryEntry("tiny", "tiny.gguf", registry.sha256_of_file(model),
                                   (registry.WheelPart("tiny-model==1", "tiny.gguf", 100),))
    monkeypatch.setattr(registry, "REGISTRY", {"tiny": entry})
    assert registry.cache_status(entry).state == "verified"  # writes the stamp
    (root / "models" / "mine.gguf").write_bytes(b"the user's own")
    return root


def shown(capsys) -> dict:
    capsys.readouterr()  # what came before
    assert cli.main(["cache", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_cache_command_shows_the_root_and_what_each_part_holds(cache, capsys):
    report = shown(capsys)
    assert report["root"] == str(cache)
    assert report["spec"]["files"] == 1
    assert report["models"]["files"] == 3  # the model, its stamp, the user's file
    assert report["models"]["cached"] == ["tiny"]
    assert cli.main(["cache"]) == 0
    assert str(cache) in capsys.readouterr().out


def test_clearing_the_spec_removes_its_forms_only_and_the_next_load_stores_one_again(cache, capsys, tmp_path):
    assert cli.main(["cache", "clear", "spec"]) == 0
    report = shown(capsys)
    assert report["spec"]["files"] == 0
    assert report["models"]["files"] == 3
    table = tmp_path / "table.yaml"
    table.write_bytes(TABLE_PATH.read_bytes())
    load_spec(table)
    assert shown(capsys)["spec"]["files"] == 1


def test_clearing_the_models_removes_the_registered_ones_and_their_stamps_not_the_users_files(cache, capsys):
    assert cli.main(["cache", "clear", "models"]) == 0
    report = shown(capsys)
    assert report["models"]["cached"] == []
    assert sorted(path.name for path in (cache / "models").iterdir()) == ["mine.gguf"]
    assert report["spec"]["files"] == 1


def test_clearing_all_of_a_missing_cache_is_no_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "never-made"))
    assert cli.main(["cache", "clear", "all"]) == 0
    assert shown(capsys)["spec"] == {"path": str(tmp_path / "never-made" / "spec"), "files": 0, "bytes": 0}
