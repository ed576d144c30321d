"""The benchmark record: every sample kept with its unit, summaries computed from them, comparisons paired
round by round, the peer's artifact observed, and `--json` on every bench writing a record its schema accepts."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess

import jsonschema
import pytest

from ggufsm.cli import build_parser, main
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench.record import OBSERVED, Record, paired, peer_binary_facts, validate


def _record(**options) -> Record:
    return Record("decode", {"repeat": 3, "threads": 2, **options}, argv=["bench", "decode", "--repeat", "3"])


def test_every_sample_is_kept_in_order_and_min_median_max_come_from_them():
    record = _record()
    for value in (30.0, 10.0, 20.0):
        record.sample("decode in place", value, "tok/s")
    [series] = record.finish()["series"]
    assert series["samples"] == [30.0, 10.0, 20.0]
    assert (series["n"], series["min"], series["median"], series["max"]) == (3, 10.0, 20.0, 30.0)
    assert series["unit"] == "tok/s" and series["runner"] == "ggufsm" and series["role"] == "measure"


def test_a_series_keeps_one_unit():
    record = _record()
    record.sample("load", 1.0, "s")
    with pytest.raises(ValueError, match="in s, not ms"):
        record.sample("load", 1000.0, "ms")


def test_a_comparison_pairs_the_samples_of_the_same_round_and_applies_its_factor():
    record = _record()
    for tok_s, gbs in ((10.0, 20.0), (12.0, 30.0)):
        record.sample("decode", tok_s, "tok/s")
        record.limit("read bandwidth", gbs, "GB/s")
    record.compare("decode / read bandwidth", "decode", "read bandwidth", factor=1e9 / 1e9 * 2)
    data = record.finish()
    assert paired(data, data["comparisons"][0]) == [1.0, 0.8]
    assert next(s for s in data["series"] if s["name"] == "read bandwidth")["role"] == "limit"


def test_a_comparison_of_series_of_different_lengths_is_refused():
    record = _record()
    record.sample("a", 1.0, "tok/s")
    record.sample("b", 1.0, "tok/s")
    record.sample("b", 2.0, "tok/s")
    record.compare("a / b", "a", "b")
    data = record.finish()
    with pytest.raises(ValueError, match="pairs rounds"):
        paired(data, data["comparisons"][0])


def test_the_record_carries_provenance_command_options_repeat_and_load_and_follows_its_schema(tmp_path):
    record = _record(model=tmp_path / "m.gguf")
    record.sample("decode", 1.0, "tok/s")
    record.fact("bytes_per_token", 123, OBSERVED, "summed")
    data = record.write(tmp_path / "out" / "record.json")
    assert json.loads((tmp_path / "out" / "record.json").read_text()) == data
    assert data["command"] == ["ggufsm", "bench", "decode", "--repeat", "3"]
    assert data["options"]["model"] == str(tmp_path / "m.gguf") and data["repeat"] == 3
    environment = data["provenance"]["environment"]
    assert environment["threads_used"] == {"value": 2, "kind": "observed", "how": "the bench's --threads option"}
    assert len(environment["load_average_before"]["value"]) == 3 and environment["load_average_after"]["kind"] == OBSERVED
    assert environment["ggufsm_kernel_variant"]["kind"] == OBSERVED


def test_a_record_with_a_sample_missing_its_unit_is_not_valid():
    data = _record().finish()
    data["series"] = [{"name": "x", "runner": "ggufsm", "role": "measure", "better": "higher", "samples": [1.0], "n": 1,
                       "min": 1.0, "median": 1.0, "max": 1.0}]
    with pytest.raises(jsonschema.ValidationError, match="'unit' is a required property"):
        validate(data)


def test_a_peer_binary_is_hashed_and_its_source_commit_observed_with_git(tmp_path):
    source = tmp_path / "llama.cpp"
    source.mkdir()
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (source / "CMakeLists.txt").write_text("project(x)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    build = tmp_path / "build"
    (build / "bin").mkdir(parents=True)
    (build / "CMakeCache.txt").write_text(f"CMAKE_BUILD_TYPE:STRING=Release\nCMAKE_HOME_DIRECTORY:INTERNAL={source}\n")
    binary = build / "bin" / "llama-bench"
    binary.write_bytes(b"not really an executable")
    facts = peer_binary_facts(binary)
    assert facts["sha256"]["value"] == hashlib.sha256(b"not really an executable").hexdigest()
    assert facts["size"]["value"] == len(b"not really an executable")
    assert facts["source"]["value"] == str(source)
    assert facts["source_git_commit"] == {"value": commit, "kind": "observed", "how": "git rev-parse HEAD in llama.cpp"}
    record = _record()
    record.peer_binary(binary)
    data = record.finish()
    assert data["provenance"]["artifact"]["peers"]["llama-bench"] == facts
    validate(data)


def test_a_missing_peer_binary_is_recorded_absent(tmp_path):
    assert peer_binary_facts(tmp_path / "nothing")["absent"]["value"] is True


def _bench_parsers() -> dict[str, argparse.ArgumentParser]:
    bench = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
                 ).choices["bench"]
    commands = next(action for action in bench._actions if isinstance(action, argparse._SubParsersAction))
    return {"(default runtime)": bench, **commands.choices}


def test_every_bench_subcommand_and_the_default_bench_take_json():
    parsers = _bench_parsers()
    assert {"runtime", "parse", "kernels", "forward", "decode", "batch", "guard"} <= set(parsers)
    for name, parser in parsers.items():
        if name != "report":   # renders stored records; runs nothing
            assert "--json" in parser._option_string_actions, name


def test_bench_parse_json_keeps_every_run_of_both_readers_and_the_model_hash(tmp_path, capsys):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    out = tmp_path / "parse.json"
    assert main(["bench", "parse", str(model), "--repeat", "2", "--json", str(out)]) == 0
    assert "| tiny.gguf" in capsys.readouterr().out
    data = json.loads(out.read_text())
    validate(data)
    assert data["bench"] == "parse" and data["repeat"] == 2 and data["options"]["models"] == [str(model)]
    by_name = {series["name"]: series for series in data["series"]}
    assert {name: len(series["samples"]) for name, series in by_name.items()} == {
        "tiny.gguf: gguf.GGUFReader": 2, "tiny.gguf: ggufsm open_gguf": 2, "tiny.gguf: ggufsm of which C++": 2}
    assert by_name["tiny.gguf: gguf.GGUFReader"]["runner"] == "gguf"
    [model_file] = data["provenance"]["artifact"]["model_files"]
    assert model_file["file"] == "tiny.gguf" and model_file["size"]["value"] == model.stat().st_size
    assert "gguf" in data["provenance"]["artifact"]["packages"]["value"]
    assert len(paired(data, data["comparisons"][0])) == 2
