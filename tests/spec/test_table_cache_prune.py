"""The verdict store stays bounded and safe to share (spec/table_cache.py): each write prunes the folder to the KEEP
forms used last, the one it wrote always among them, and to no abandoned temporary file; processes writing and
pruning at once never show a reader part of a file; a read-only or missing folder leaves the load working; the folder
follows $GGUFSM_CACHE, else $XDG_CACHE_HOME (spec/user_cache.py), as the model cache does."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ggufsm.reference.model import registry
from ggufsm.spec import table_cache, user_cache
from ggufsm.spec.table import TABLE_PATH, load_spec

FORM = {"a": "form", "n": [1, 2, 3]}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(table_cache.SWITCH, raising=False)
    folder = tmp_path / "cache" / "spec"
    folder.mkdir(parents=True)
    return folder


def stored_form(folder, name: str, used_seconds_ago: float) -> None:
    """A stored form under `name`, last used (its modification time) that long ago."""
    path = folder / name
    payload = b'{"stored": true}'
    path.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    at = time.time() - used_seconds_ago
    os.utime(path, (at, at))


def forms(folder) -> set[str]:
    return {path.name for path in folder.iterdir() if path.suffix == ".json"}


def test_a_write_keeps_the_form_it_wrote_and_the_others_used_last(store):
    for i in range(table_cache.KEEP + 5):
        stored_form(store, f"old-{i:02d}.json", used_seconds_ago=1000 + i)  # old-00 used last
    table_cache.remember(b"table", FORM)
    written = f"{table_cache.key(b'table')}.json"
    assert forms(store) == {written} | {f"old-{i:02d}.json" for i in range(table_cache.KEEP - 1)}


def test_a_hit_marks_its_form_used_so_the_next_prune_keeps_it(store):
    table_cache.remember(b"used", FORM)
    used = store / f"{table_cache.key(b'used')}.json"
    long_ago = time.time() - 10_000
    os.utime(used, (long_ago, long_ago))
    for i in range(table_cache.KEEP):
        stored_form(store, f"other-{i}.json", used_seconds_ago=1000 + i)
    assert table_cache.recall(b"used") == FORM
    table_cache.remember(b"new", FORM)
    assert used.name in forms(store)
    assert len(forms(store)) == table_cache.KEEP


def test_abandoned_temporary_files_are_removed_and_a_live_write_is_left_alone(store):
    abandoned = store / f"{table_cache.TEMPORARY_PREFIX}dead{table_cache.TEMPORARY_SUFFIX}"
    live = store / f"{table_cache.TEMPORARY_PREFIX}live{table_cache.TEMPORARY_SUFFIX}"
    for path in (abandoned, live):
        path.write_bytes(b"half a fo")
    long_ago = time.time() - 2 * table_cache.ABANDONED_SECONDS
    os.utime(abandoned, (long_ago, long_ago))
    table_cache.remember(b"table", FORM)
    assert not abandoned.exists()
    assert live.exists()


def test_files_that_vanish_during_a_prune_are_skipped(store, monkeypatch):
    for i in range(table_cache.KEEP + 2):
        stored_form(store, f"old-{i:02d}.json", used_seconds_ago=1000 + i)
    real_listdir = os.listdir

    def listing_with_ghosts(path):
        # Names another process removed between the listing and the stat, and between the stat and the unlink.
        return [*real_listdir(path), "gone-before-stat.json", f"{table_cache.TEMPORARY_PREFIX}gone{table_cache.TEMPORARY_SUFFIX}"]

    real_unlink = os.unlink

    def unlink_racing(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        raise FileNotFoundError(errno.ENOENT, "removed meanwhile", str(path))

    with monkeypatch.context() as racing:
        racing.setattr(table_cache.os, "listdir", listing_with_ghosts)
        racing.setattr(table_cache.os, "unlink", unlink_racing)
        table_cache.remember(b"table", FORM)
    assert table_cache.recall(b"table") == FORM
    assert len(forms(store)) == table_cache.KEEP


WRITER = """
import sys
from ggufsm.spec import table_cache
writer, rounds = int(sys.argv[1]), int(sys.argv[2])
form = {"writer": writer, "padding": "x" * 200_000}
for i in range(rounds):
    table = f"table-{writer}-{i % 12}".encode()
    table_cache.remember(table, form)
    found = table_cache.recall(table)
    assert found is None or found == form, found
"""


def test_processes_writing_and_pruning_at_once_never_show_a_reader_part_of_a_file(store):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(n), "40"], env=os.environ.copy()) for n in range(3)]
    complete = checked = 0
    while any(writer.poll() is None for writer in writers):  # read until every writer has exited
        for path in store.glob("*.json"):
            try:
                text = path.read_bytes()
            except FileNotFoundError:
                continue  # pruned between the listing and the open: a miss, never a part
            digest, _, payload = text.partition(b"\n")
            checked += 1
            complete += hashlib.sha256(payload).hexdigest().encode() == digest
    assert [writer.wait() for writer in writers] == [0, 0, 0]
    assert complete == checked
    assert len(forms(store)) <= table_cache.KEEP + len(writers) - 1
    assert not list(store.glob(f"{table_cache.TEMPORARY_PREFIX}*"))


def test_a_read_only_cache_folder_leaves_the_load_working(tmp_path, store, monkeypatch):
    table = tmp_path / "table.yaml"
    table.write_bytes(TABLE_PATH.read_bytes())
    expected = load_spec(table)
    before = {path.name: path.read_bytes() for path in store.iterdir()}

    def refused(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    # What a read-only mount refuses: new files, renames, removals, times.
    for module, name in ((tempfile, "mkstemp"), (os, "replace"), (os, "unlink"), (os, "utime")):
        monkeypatch.setattr(module, name, refused)
    again = tmp_path / "again.yaml"
    again.write_bytes(TABLE_PATH.read_bytes())
    assert load_spec(again).states == expected.states  # a hit, its time left as it was
    changed = tmp_path / "changed.yaml"
    changed.write_bytes(TABLE_PATH.read_bytes() + b"\n# a changed table\n")
    assert load_spec(changed).states == expected.states  # a miss: the full path, and a write refused quietly
    assert {path.name: path.read_bytes() for path in store.iterdir()} == before


def test_a_missing_cache_folder_is_a_miss_and_is_made_by_the_first_write(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "not" / "yet"))
    monkeypatch.delenv(table_cache.SWITCH, raising=False)
    assert table_cache.recall(b"table") is None
    table_cache.remember(b"table", FORM)
    assert table_cache.recall(b"table") == FORM
    assert (tmp_path / "not" / "yet" / "spec").is_dir()


def test_the_cache_follows_xdg_cache_home_unless_ggufsm_cache_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("GGUFSM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert table_cache.cache_folder() == tmp_path / "xdg" / "ggufsm" / "spec"
    assert registry.models_dir() == tmp_path / "xdg" / "ggufsm" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # not absolute: ignored, as the XDG rule says
    assert user_cache.cache_root() == Path.home() / ".cache" / "ggufsm"
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "own"))
    assert table_cache.cache_folder() == tmp_path / "own" / "spec"
    assert registry.models_dir() == tmp_path / "own" / "models"
