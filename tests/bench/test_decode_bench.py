"""`ggufsm bench decode` (and --long-context): every run is held to the read probe sampled around it, the old
measure (one plain sum after) kept beside, and the output says how the probe reads."""

from __future__ import annotations

import argparse
import json

from ggufsm.cli import main
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.bench.limits import SAMPLES_AROUND


def test_a_decode_run_is_held_to_the_median_of_the_probe_samples_around_it_with_the_old_measure_beside(tmp_path, capsys):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    out = tmp_path / "decode.json"
    assert main(["bench", "decode", "-m", str(model), "--repeat", "2", "--tokens", "2", "--start", "2",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{SAMPLES_AROUND} samples right before and {SAMPLES_AROUND} right after each timed run" in text
    assert "| in place |" in text and "old measure" in text
    series = {s["name"]: s for s in json.loads(out.read_text())["series"]}
    for name in ("in place", "huge pages"):
        assert len(series[f"read bandwidth around {name}"]["samples"]) == 2  # one median per round
        assert len(series[f"read bandwidth around {name}, every sample"]["samples"]) == 2 * 2 * SAMPLES_AROUND
        assert len(series[f"read bandwidth around {name}, old measure (one plain sum after)"]["samples"]) == 2


def test_long_context_decode_is_held_to_the_probe_around_it(tmp_path, capsys, monkeypatch):
    from ggufsm.reference.bench import long_context

    # The tiny model's context, not 4096 tokens: the path is what is tested, not the length.
    monkeypatch.setattr(long_context, "PREFILL", 24)
    monkeypatch.setattr(long_context, "DEPTH", 16)
    monkeypatch.setattr(long_context, "DECODE_STEPS", 2)
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    args = argparse.Namespace(model=str(model), threads=1, repeat=2, peer=False, record=None)
    assert long_context.run(args) == 0
    assert "samples right before" in capsys.readouterr().out


def test_step_ab_runs_both_step_shapes_in_one_process_round_by_round(tmp_path, capsys):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    out = tmp_path / "decode.json"
    assert main(["bench", "decode", "-m", str(model), "--step-ab", "--repeat", "2", "--tokens", "2", "--start", "2",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| layer walk |" in text and "| dispatched |" in text
    assert "dispatched / layer walk, round by round" in text
    series = {s["name"]: s for s in json.loads(out.read_text())["series"]}
    for name in ("layer walk", "dispatched"):
        assert len(series[f"decode {name}"]["samples"]) == 2


def test_step_ab_with_a_shape_runs_the_default_step_against_that_shape_round_by_round(tmp_path, capsys):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    shape = "walk_part_bytes=256,small_op_read_ahead=32,rope_once=false"
    assert main(["bench", "decode", "-m", str(model), "--step-ab", "--shape", shape, "--repeat", "2", "--tokens", "2",
                 "--start", "2"]) == 0
    text = capsys.readouterr().out
    assert f"| {shape} |" in text and "| default |" in text
    assert f"default / {shape}, round by round" in text
