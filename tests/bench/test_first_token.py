"""`ggufsm bench runtime --first-token`: residency is read, not assumed; a cold child starts only cold; the
child measures through the public Runtime from a new handle to the first token of a text prompt."""

from __future__ import annotations

import sys

import pytest

from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench import first_token
from ggufsm.reference.bench.first_token import evict, make_cold, measure_in_child, private_copy, resident_share, warm


def test_a_file_read_through_is_wholly_resident(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 << 20))
    assert warm(path) == 1.0
    assert resident_share(path) == 1.0


def test_eviction_never_raises_and_the_share_stays_a_share(tmp_path):
    # How much DONTNEED drops depends on the filesystem (tmpfs keeps everything): the bench reads the
    # share after the eviction rather than trusting it, and this checks only that it is one.
    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * (1 << 20))
    evict(path)
    assert 0.0 <= resident_share(path) <= 1.0


def test_an_empty_file_counts_as_resident(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert resident_share(path) == 1.0


def test_a_file_that_stays_resident_is_never_measured_as_cold(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * (1 << 20))
    monkeypatch.setattr(first_token, "resident_share", lambda _: 0.5)  # as when another process maps it
    with pytest.raises(RuntimeError, match="50.0% of the file stays in the page cache"):
        make_cold(path)


def test_a_file_evicted_below_the_limit_is_cold_with_the_share_read(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * (1 << 20))
    monkeypatch.setattr(first_token, "resident_share", lambda _: 0.0)
    assert make_cold(path) == 0.0


def test_each_runner_reads_a_private_copy_of_the_model(tmp_path):
    original = tmp_path / "model.gguf"
    original.write_bytes(bytes(range(256)) * 4096)
    copy = private_copy(original, tmp_path, "ggufsm baseline")
    assert copy != original and copy.read_bytes() == original.read_bytes()
    assert copy.stat().st_ino != original.stat().st_ino


def test_the_child_times_a_new_handle_to_the_first_token_of_the_text_prompt(tmp_path):
    model = write_tiny_llama(tmp_path / "tiny.gguf", seed=0)
    sample = measure_in_child(sys.executable, first_token.OURS, model, 1)
    assert set(sample) == {"import_s", "load_s", "first_token_s", "prompt_tokens", "token"}
    assert sample["prompt_tokens"] > 0 and isinstance(sample["token"], int)
    assert 0 < sample["load_s"] <= sample["first_token_s"]  # one clock: the token comes after the load


@pytest.mark.parametrize("runners", [["ggufsm"], ["ggufsm", "ggufsm baseline", "llama.cpp"]])
def test_the_table_has_a_ratio_column_for_each_other_runner_and_rows_as_wide_as_its_header(runners):
    from pathlib import Path
    from types import SimpleNamespace

    sample = {"resident": 0.0, "prompt_tokens": 32, "import_s": 0.5, "load_s": 0.3, "first_token_s": 0.4}
    figures = {("m.gguf", state, runner): [sample] for state in first_token.STATES for runner in runners}
    table = first_token.render([Path("m.gguf")], SimpleNamespace(threads=2, repeat=1), runners, figures, [1.0, 1.0])
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert {row.count("|") for row in rows} == {9 + len(runners) - 1}  # 8 columns and one ratio per other runner
    assert rows[0].count(" / ") == len(runners) - 1
