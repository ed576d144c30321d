"""`ggufsm bench batch --settled-ab` (the greedy token settled by the pass against read again by each handle) and
`--shape-ab` (the default step against another step shape),
alternating in one process round by round, each count's figure paired within its round."""

from __future__ import annotations

import json

from ggufsm import _core
from ggufsm.cli import main
from ggufsm.conformance.fixtures.tiny_models import write_tiny_llama
from ggufsm.reference.model.gguf_file import open_gguf


def run_ab(tmp_path, capsys, flags: list[str], ways: tuple[str, str]):
    """The bench's A/B over a tiny model, handles 1 and 2, 2 rounds: its tiny model's path, after checking the
    table's header and that each way has a sample of each figure a round."""
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    out = tmp_path / "batch.json"
    assert main(["bench", "batch", "-m", str(model), "--handles", "1,2", "--repeat", "2", "--tokens", "2", *flags,
                 "--json", str(out)]) == 0
    a, b = ways
    assert f"| {a}: aggregate tok/s | {b}: aggregate tok/s | {a} / {b}, same round |" in capsys.readouterr().out
    series = {s["name"]: s for s in json.loads(out.read_text())["series"]}
    for way in ways:
        for k in (1, 2):
            for figure in ("aggregate", "per-token latency"):
                assert len(series[f"{way} x{k}: {figure}"]["samples"]) == 2
    return model


def test_settled_ab_runs_both_ways_of_the_greedy_choice_in_one_process_and_leaves_settling_on(tmp_path, capsys):
    model = run_ab(tmp_path, capsys, ["--settled-ab"], ("settled", "read again"))
    session = _core.LlamaSession(_core.LlamaModel(open_gguf(model).core, 1), 8)
    session.prefill([1, 2], 0)
    assert session.greedy_token == int(session.logits.argmax())  # the A/B left settling on


def test_shape_ab_runs_the_default_and_the_given_step_shape_in_one_process_and_leaves_the_default(tmp_path, capsys):
    model = run_ab(tmp_path, capsys, ["--shape-ab", "layer_walk=false"], ("default", "layer_walk=false"))
    # The A/B left one session's step walked by the team (the default): member 0's walk time in the profile.
    core_model = _core.LlamaModel(open_gguf(model).core, 2)
    session = _core.LlamaSession(core_model, 8)
    session.prefill([1, 2], 0)
    batch = _core.DecodeBatch(core_model)
    batch.set_profiling(True)
    batch.decode([session], [3], [2])
    assert batch.profile["walked_seconds"][0] > 0.0

