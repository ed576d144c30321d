"""The documents derived from the table: current in docs/spec, versioned, and faithful to the cells."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ggufsm.spec import load_spec, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "spec"
SPEC = load_spec()
REGENERATE = "run `ggufsm spec docs` and commit docs/spec"


# The text formats are compared byte for byte. The SVG is drawn by the
# installed graphviz, whose layout and font metrics differ between versions,
# so it is checked for being there, being an SVG and carrying the version.
@pytest.mark.parametrize("name", ["lifecycle.md", "lifecycle.dot", "lifecycle.mmd"])
def test_docs_spec_text_files_are_what_the_table_renders(name):
    assert (DOCS / name).read_bytes() == render.documents(SPEC)[name], f"docs/spec/{name} is stale: {REGENERATE}"


def test_docs_spec_svg_is_there_and_carries_the_spec_version():
    svg = (DOCS / "lifecycle.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert f"spec {SPEC.version}" in svg, f"docs/spec/lifecycle.svg is stale: {REGENERATE}"


def test_every_artifact_carries_the_spec_version():
    for name, content in render.documents(SPEC).items():
        assert f"{SPEC.version}".encode() in content, name
    assert f"spec {SPEC.version}".encode() in render.render_image(SPEC, "svg")


def test_the_states_table_has_the_seeds_three_columns_and_every_state():
    text = render.markdown(SPEC)
    assert "| State | Resident data | Allowed operations |" in text
    for name in SPEC.states:
        assert f"\n| {name}" in text


def test_the_matrix_has_a_row_per_state_and_a_column_per_command():
    text = render.markdown(SPEC)
    matrix = text.split("## State × operation")[1].split("##")[0]
    header = "| State | " + " | ".join(SPEC.commands) + " |"
    assert header in matrix
    rows = [line for line in matrix.splitlines() if line.startswith("| ") and not line.startswith(("| State", "| ---"))]
    assert [row.split(" | ")[0][2:] for row in rows] == list(SPEC.states)


def test_the_decision_list_reading_of_a_cell_matches_its_branches():
    # The matrix writes Ready.generate one guard per line; each line's
    # outcome must be the branch that guard selects.
    lines = render._cell_text(SPEC, "Ready", "generate", "\n").splitlines()
    assert lines[0] == "¬input_valid: ✗ InvalidInput → RecoverableError"
    assert lines[1] == "else ¬sampling_valid: ✗ InvalidSampling → RecoverableError"
    assert lines[-1] == "else: → ContinuationReady (via Generating)"
    assert len(lines) == len(SPEC.branches("Ready", "generate"))


def test_flags_shared_by_a_whole_cell_are_written_once():
    lines = render._cell_text(SPEC, "Freed", "load_model", "\n").splitlines()
    assert lines[0] == "(via Loading)"
    assert lines[-1] == "else: → Ready"


def test_allowed_operations_are_derived_from_the_cells():
    assert render.allowed_text(SPEC, "Loading").endswith("every command waits")
    freed = render.allowed_text(SPEC, "Freed")
    assert "load_model → Ready" in freed and "ModelNotLoaded: generate" in freed


# ─── the diagram ─────────────────────────────────────────────────────────────


def test_the_picture_draws_no_self_loops_and_no_queries():
    drawing = render.picture(SPEC)
    assert all(edge.tail != edge.head for edge in drawing.edges)
    words = [line for edge in drawing.edges for line in edge.lines()] + [note for node in drawing.nodes for note in node.notes]
    drawn = set(" ".join(words).replace(",", " ").split())
    assert drawn.isdisjoint(SPEC.queries)


def test_the_picture_merges_edges_between_the_same_states():
    keys = [(edge.tail, edge.head, edge.kind) for edge in render.picture(SPEC).edges]
    assert len(keys) == len(set(keys))


def test_every_state_changing_branch_is_drawn():
    drawing = render.picture(SPEC)
    edges = {(edge.tail, edge.head, edge.kind): edge for edge in drawing.edges}
    for branch in SPEC.all_branches():
        outcome = branch.outcome
        kind = "error" if outcome.error else "normal"
        if outcome.via:
            assert (branch.state, outcome.via, "enter") in edges, branch.source
            assert (outcome.via, outcome.to, kind) in edges, branch.source
        elif outcome.to != branch.state:
            edge = edges[(branch.state, outcome.to, kind)]
            assert branch.operation in " ".join(edge.lines()), branch.source


def test_every_staying_branch_is_noted_on_its_state():
    notes = {node.name: " ".join(node.notes) for node in render.picture(SPEC).nodes}
    for branch in SPEC.all_branches():
        outcome = branch.outcome
        if outcome.to == branch.state and not outcome.via and not SPEC.operations[branch.operation].is_query:
            noted = "every command waits" if outcome.serialized else branch.operation
            assert noted in notes[branch.state], branch.source


def test_error_edges_are_red_and_dashed_and_transient_states_dashed():
    source = render.dot_source(SPEC)
    assert f'label="InvalidSampling (set_sampling)" color="{render.ERROR_COLOUR}"' in source
    for state in SPEC.transient_states:
        (line,) = [line for line in source.splitlines() if line.strip().startswith(f"{state} [")]
        assert "dashed" in line


def test_mermaid_declares_transient_states_and_every_edge():
    text = render.mermaid(SPEC)
    assert "stateDiagram-v2" in text
    for state in SPEC.transient_states:
        assert f'state "{state} (transient)" as {state}' in text
    assert text.count(" --> ") == len(render.picture(SPEC).edges) + 1  # + the initial arrow


# ─── the commands ────────────────────────────────────────────────────────────


def ggufsm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggufsm", "spec", *args], capture_output=True)


def test_spec_table_prints_the_markdown():
    result = ggufsm("table")
    assert result.returncode == 0
    assert result.stdout.decode() == render.markdown(SPEC)


@pytest.mark.parametrize("image_format, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("dot", b"//"), ("mermaid", b"---")])
def test_spec_diagram_writes_each_format(tmp_path, image_format, magic):
    output = tmp_path / f"lifecycle.{image_format}"
    result = ggufsm("diagram", "--format", image_format, "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert output.read_bytes().startswith(magic)


def test_spec_docs_writes_the_four_files(tmp_path):
    result = ggufsm("docs", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(render.DOC_FILES)
    assert (tmp_path / "lifecycle.dot").read_bytes() == (DOCS / "lifecycle.dot").read_bytes()


def test_spec_version_prints_the_version():
    assert ggufsm("version").stdout.decode().strip() == SPEC.version
