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

    sample = {"resident": 0.0, "prompt_tokens": 32, "import_s": 0.5, "load_s": 0.3, "first_token_s": 0.4,
              "after": first_token.NOTHING}
    figures = {("m.gguf", state, runner): [sample] for state in first_token.STATES for runner in runners}
    table = first_token.render([Path("m.gguf")], SimpleNamespace(threads=2, repeat=1), runners, figures, [1.0, 1.0])
    main, order = table.split("\n\nFirst token s by the runner")
    rows = [line for line in main.splitlines() if line.startswith("|")]
    assert {row.count("|") for row in rows} == {9 + len(runners) - 1}  # 8 columns and one ratio per other runner
    assert rows[0].count(" / ") == len(runners) - 1
    order_rows = [line for line in order.splitlines() if line.startswith("|")]
    assert {row.count("|") for row in order_rows} == {4 + len(runners) + 1}  # 3 columns and one per predecessor
    assert len(order_rows) == 2 + len(first_token.STATES) * len(runners)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_over_n_factorial_rounds_each_runner_follows_each_other_one_alike(n):
    import math
    from collections import Counter

    runners = ["ggufsm", "ggufsm baseline", "llama.cpp"][:n]
    rounds = math.factorial(n)
    orders = [first_token.runner_order(runners, r) for r in range(rounds)]
    assert all(sorted(order) == sorted(runners) for order in orders)
    for place in range(n):
        assert Counter(order[place] for order in orders) == Counter({r: rounds // n for r in runners})
    # A round runs its order once per page-cache state, so its first runner follows its last: cyclic pairs.
    follows = Counter((order[i - 1], order[i]) for order in orders for i in range(n))
    if n > 1:
        assert set(follows.values()) == {rounds // (n - 1)} and len(follows) == n * (n - 1)
    assert first_token.runner_order(runners, rounds) == orders[0]


def test_the_order_table_sorts_each_sample_by_the_child_that_ran_before_it():
    from pathlib import Path
    from types import SimpleNamespace

    runners = ["ggufsm", "llama.cpp"]

    def sample(seconds, after):
        return {"resident": 0.0, "prompt_tokens": 32, "import_s": 0.1, "load_s": 0.1, "first_token_s": seconds,
                "after": after}

    figures = {("m.gguf", state, runner): [sample(1.0, "llama.cpp"), sample(3.0, "ggufsm")]
               for state in first_token.STATES for runner in runners}
    table = first_token.render([Path("m.gguf")], SimpleNamespace(threads=2, repeat=2), runners, figures, [1.0, 1.0])
    order = table.split("\n\nFirst token s by the runner")[1]
    row = next(line for line in order.splitlines() if line.startswith("| m.gguf | warm | ggufsm |"))
    assert [cell.strip() for cell in row.strip("|").split("|")][3:] == ["3.000 (1)", "1.000 (1)", "-"]


def test_each_sample_names_the_runner_whose_child_ran_just_before_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ggufsm.reference.bench import runtime
    from ggufsm.reference.model import registry

    model = tmp_path / "m.gguf"
    model.write_bytes(b"m" * 4096)
    ran = []

    def child(python, kind, path, threads):
        ran.append(path.name.split("-m.gguf")[0])
        return {"import_s": 0.1, "load_s": 0.1, "first_token_s": 0.2, "prompt_tokens": 32, "token": 1}

    monkeypatch.setattr(registry, "resolve", lambda name, pull: model)
    monkeypatch.setattr(runtime, "_peer_installed", lambda: False)
    monkeypatch.setattr(first_token, "measure_in_child", child)
    monkeypatch.setattr(first_token, "make_cold", lambda path: 0.0)
    monkeypatch.setattr(first_token, "warm", lambda path: 1.0)
    figures = {}
    monkeypatch.setattr(first_token, "render", lambda paths, args, runners, found, load: figures.update(found) or "")
    args = SimpleNamespace(model="m", repeat=2, threads=1, baseline_python=sys.executable, record=None)
    assert first_token.run(args) == 0
    # Round 0: ggufsm, baseline (warm), ggufsm, baseline (cold); round 1 rotated: baseline first.
    assert ran == ["ggufsm", "ggufsm-baseline"] * 2 + ["ggufsm-baseline", "ggufsm"] * 2
    afters = {key: [s["after"] for s in samples] for key, samples in figures.items()}
    assert afters[("m.gguf", "warm", "ggufsm")] == [first_token.NOTHING, "ggufsm baseline"]
    assert afters[("m.gguf", "cold", "ggufsm")] == ["ggufsm baseline", "ggufsm baseline"]
    assert afters[("m.gguf", "warm", "ggufsm baseline")] == ["ggufsm", "ggufsm baseline"]
    assert afters[("m.gguf", "cold", "ggufsm baseline")] == ["ggufsm", "ggufsm"]
