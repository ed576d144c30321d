"""A sound table's normal form is remembered per table file's bytes and checker code, and never trusted past
them: a changed table, changed code or a stored file that is not what its digest says is a miss, and the
full path (YAML, checker, normalisation) runs and stores the form again.

Each test loads copies of the real table at fresh paths (so the process's own
cache of Specs, keyed by path, is a miss) with the verdict store in a
temporary $GGUFSM_CACHE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest
import yaml

from ggufsm.spec import SpecDefects, table_cache
from ggufsm.spec import check as spec_check
from ggufsm.spec.table import TABLE_PATH, build_spec, load_spec, normal_form, read_table, spec_from_normal_form


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(table_cache.SWITCH, raising=False)
    return tmp_path / "cache" / "spec"


def table_copy(tmp_path, name: str, text: str | None = None):
    path = tmp_path / name
    if text is None:
        shutil.copyfile(TABLE_PATH, path)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def same_spec(a, b) -> bool:
    # Spec compares by identity (eq=False): compare its fields.
    return all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a))


def refuse_to_check(monkeypatch) -> None:
    def checker_ran(raw):
        raise AssertionError("the checker ran on a table whose verdict was stored")

    monkeypatch.setattr(spec_check, "check_table", checker_ran)


def test_a_sound_table_is_stored_and_its_next_load_skips_the_checker(tmp_path, store, monkeypatch):
    first = load_spec(table_copy(tmp_path, "first.yaml"))
    assert [path.suffix for path in store.iterdir()] == [".json"]
    refuse_to_check(monkeypatch)
    second = load_spec(table_copy(tmp_path, "second.yaml"))
    assert second is not first
    assert same_spec(second, first)  # built from the stored form, value for value


def test_one_changed_byte_is_a_miss_and_a_defective_table_is_refused_by_name(tmp_path, store):
    load_spec(table_copy(tmp_path, "sound.yaml"))
    raw = read_table()
    raw["guards"].append({"name": "moon_full", "known": "before", "description": "never used"})
    with pytest.raises(SpecDefects, match="unused_guard: guards.moon_full"):
        load_spec(table_copy(tmp_path, "broken.yaml", yaml.safe_dump(raw)))
    assert len(list(store.iterdir())) == 1  # only the sound table's verdict


def test_a_defective_table_is_never_stored(tmp_path, store):
    raw = read_table()
    del raw["cells"]["Ready"]["reset"]
    with pytest.raises(SpecDefects, match="missing_cell: cells.Ready.reset"):
        load_spec(table_copy(tmp_path, "broken.yaml", yaml.safe_dump(raw)))
    assert not store.exists() or not list(store.iterdir())


def stored_text(payload: bytes) -> bytes:
    """A stored file as table_cache writes one: the payload's sha256, then the payload."""
    return hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def test_the_normal_form_builds_the_spec_the_table_builds():
    spec = build_spec(read_table())
    form = normal_form(spec)
    assert json.loads(json.dumps(form)) == form  # plain JSON data: it reads back as written
    assert same_spec(spec_from_normal_form(form), spec)


def test_a_corrupt_stored_form_is_a_miss_and_is_rewritten(tmp_path, store, monkeypatch):
    expected = load_spec(table_copy(tmp_path, "first.yaml"))
    (stored,) = store.iterdir()
    good = stored.read_bytes()
    digest, _, payload = good.partition(b"\n")
    flipped = payload.replace(b'"Ready"', b'"Reddy"', 1)  # still JSON, still a form: only the digest tells
    form = json.loads(payload)
    form["cells"].pop()  # a form that leaves a cell out, under a digest that matches it
    corrupt = [b"{not json", good[:len(good) // 2], digest + b"\n" + flipped, stored_text(b"[]"),
               stored_text(json.dumps({"states": "not a mapping"}).encode()), stored_text(json.dumps(form).encode())]
    for number, text in enumerate(corrupt):
        stored.write_bytes(text)
        assert same_spec(load_spec(table_copy(tmp_path, f"again-{number}.yaml")), expected), number
        assert stored.read_bytes() == good, number  # the full path stored the sound form again
    refuse_to_check(monkeypatch)
    assert same_spec(load_spec(table_copy(tmp_path, "hit.yaml")), expected)


def test_a_changed_table_changes_the_loaded_spec_with_no_other_step_and_the_stale_form_is_left_unused(tmp_path, store):
    load_spec(table_copy(tmp_path, "before.yaml"))
    raw = read_table()
    raw["states"]["Ready"]["description"] = "a changed description"
    raw["errors"]["InvalidInput"]["meaning"] = "a changed meaning"
    changed = load_spec(table_copy(tmp_path, "after.yaml", yaml.safe_dump(raw)))
    assert changed.states["Ready"].description == "a changed description"
    assert changed.errors["InvalidInput"].meaning == "a changed meaning"
    assert len(list(store.iterdir())) == 2  # the old table's form stays, under its own key, unused


def test_an_unwritable_cache_leaves_the_load_working(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("GGUFSM_CACHE", str(blocker))
    assert same_spec(load_spec(table_copy(tmp_path, "table.yaml")), load_spec())


def test_the_switch_turns_the_store_off(tmp_path, store, monkeypatch):
    monkeypatch.setenv(table_cache.SWITCH, "0")
    load_spec(table_copy(tmp_path, "table.yaml"))
    assert not store.exists()


def test_the_key_covers_the_table_and_every_file_of_the_checking_code(tmp_path, monkeypatch):
    table_bytes = TABLE_PATH.read_bytes()
    code = tmp_path / "spec"
    code.mkdir()
    for name in table_cache.CHECKING_CODE:
        shutil.copyfile(TABLE_PATH.with_name(name), code / name)
    monkeypatch.setattr(table_cache, "__file__", str(code / "table_cache.py"))
    original = table_cache.key(table_bytes)
    assert table_cache.key(table_bytes + b"\n") != original
    for name in table_cache.CHECKING_CODE:
        saved = (code / name).read_bytes()
        (code / name).write_bytes(saved + b"\n# changed\n")
        assert table_cache.key(table_bytes) != original, name
        (code / name).write_bytes(saved)
    assert table_cache.key(table_bytes) == original


def test_a_table_that_json_cannot_carry_exactly_is_never_stored(tmp_path, store):
    table_cache.remember(b"table", {1: "an integer key"})
    assert not store.exists() or not list(store.iterdir())
