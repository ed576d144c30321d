"""`ggufsm bench batch --settled-ab`: the greedy token settled by the pass against read again by each handle,
alternating in one process round by round, each count's figure paired within its round."""

from __future__ import annotations

import json

from ggufsm import _core
from ggufsm.cli import main
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf


def test_settled_ab_runs_both_ways_of_the_greedy_choice_in_one_process_and_leaves_settling_on(tmp_path, capsys):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    out = tmp_path / "batch.json"
    assert main(["bench", "batch", "-m", str(model), "--handles", "1,2", "--repeat", "2", "--tokens", "2",
                 "--settled-ab", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| settled: aggregate tok/s | read again: aggregate tok/s | settled / read again, same round |" in text
    series = {s["name"]: s for s in json.loads(out.read_text())["series"]}
    for way in ("settled", "read again"):
        for k in (1, 2):
            assert len(series[f"{way} x{k}: aggregate"]["samples"]) == 2
    session = _core.LlamaSession(_core.LlamaModel(open_gguf(model).core, 1), 8)
    session.prefill([1, 2], 0)
    assert session.greedy_token == int(session.logits.argmax())  # the A/B left settling on
