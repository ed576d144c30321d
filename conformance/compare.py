"""The comparison page: several implementations' stored runs side by side, in the manner of Bowtie's summary.

``ggufsm conformance compare RESULTS... [--findings FILE] [--output FILE]``
reads ``results.json`` files (never runs anything) and renders:

- a table of each implementation's counts per input set, and what it is
  (name and version as it reports them, packages and model files as observed);
- the matrix: rows are the seed's rules (the behavioural cases and the other
  cases that are not a table cell, by kind) and the table's cells grouped by
  state; columns are the implementations; each entry shows one icon per
  input set (the worst result of that row's cases);
- each implementation's coloured diagram beside the others;
- the findings (a YAML file: per implementation, a statement and the cases
  it rests on), each linked to its failing case and given its
  ``conformance replay`` line, both taken from the stored results (from the
  runs on the finding's ``input_set`` where it names one). A finding
  whose case does not fail in the stored results is an error: the page
  never states what the data does not show.

With ``--output``, the page is written into the file between the compare
markers (the rest of the file is kept), so a hand-written guide can follow it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggufsm.conformance.report import ICONS, slug, worst
from ggufsm.conformance.results_file import load_records, results_path
from ggufsm.conformance.run.case import CELL
from ggufsm.conformance.run.runner import FAIL, NOT_SUPPORTED, PASS, XFAIL, XPASS
from ggufsm.spec import load_spec

BEGIN = "<!-- ggufsm conformance compare: begin (generated; do not edit) -->"
END = "<!-- ggufsm conformance compare: end -->"
DIAGRAM_WIDTH = 260
STATUSES = (PASS, FAIL, NOT_SUPPORTED, XFAIL, XPASS)


class StaleFinding(ValueError):
    """A finding names a case that does not fail in the stored results."""


@dataclass(frozen=True)
class Run:
    """One implementation's run on one input set, as stored."""

    name: str            # the implementation's own name
    input_set: str       # the folder the results.json is in (tiny-fixtures, smollm2, ...)
    folder: Path
    record: dict[str, Any]

    @property
    def cases(self) -> list[dict[str, Any]]:
        return list(self.record["cases"])

    def case(self, case_id: str) -> dict[str, Any] | None:
        return next((case for case in self.cases if case["id"] == case_id), None)

    def diagram(self) -> Path | None:
        found = sorted(self.folder.glob(f"{slug(self.name)}.lifecycle.svg"))
        return found[0] if found else None


def read_runs(paths: Iterable[Path]) -> list[Run]:
    """One run per (implementation, input set): from its own report where one is given, else the first found.

    A results.json is the report of its first implementation; the others in it ran beside that one for
    comparison (`--impl PEER --impl "ggufsm serve-stdio"` keeps the reference's run in the peer's folder).
    Such a guest run stands in only when no report of its own is among the files, so that an
    implementation's row links to its own summary and diagram, whatever order the files come in.
    """
    own: dict[tuple[str, str], Run] = {}
    guests: dict[tuple[str, str], Run] = {}
    order: list[tuple[str, str]] = []   # each (implementation, input set) where it first appears
    for path in paths:
        file = results_path(path)
        for index, record in enumerate(load_records(file)):
            run = Run(record["info"]["name"], file.parent.name, file.parent, record)
            key = (run.name, run.input_set)
            if key not in own and key not in guests:
                order.append(key)
            (own if index == 0 else guests).setdefault(key, run)
    return [own.get(key) or guests[key] for key in order]


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _link(target: Path, base: Path) -> str:
    import os

    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


# ─── the page ────────────────────────────────────────────────────────────────


def _columns(runs: list[Run]) -> tuple[list[str], list[str]]:
    """Implementations in the order given, the reference last; input sets most shared first, then by name."""
    from ggufsm.conformance.adapters.reference import ReferenceAdapter

    names = _ordered(run.name for run in runs)
    names.sort(key=lambda name: name == ReferenceAdapter.name)
    sharing: dict[str, int] = {}
    for run in runs:
        sharing[run.input_set] = sharing.get(run.input_set, 0) + 1
    return names, sorted(sharing, key=lambda input_set: (-sharing[input_set], input_set))


def render(runs: list[Run], findings: Mapping[str, list[dict[str, Any]]], base: Path) -> list[str]:
    names, input_sets = _columns(runs)
    by_key = {(run.name, run.input_set): run for run in runs}
    lines = [BEGIN, "", "## The implementations side by side", "",
             "Generated by `ggufsm conformance compare` from the stored results below (nothing is re-run); "
             f"each entry shows one icon per input set ({', '.join(f'`{name}`' for name in input_sets)}). "
             + " · ".join(f"{ICONS[status]} {status}" for status in STATUSES), ""]
    lines += _counts(names, input_sets, by_key, base)
    lines += _findings(names, findings, sorted(runs, key=lambda run: input_sets.index(run.input_set)), base)
    lines += _diagrams(names, input_sets, by_key, base)
    lines += _matrix(names, input_sets, by_key)
    return [*lines, END]


def _counts(names: list[str], input_sets: list[str], by_key: dict[tuple[str, str], Run], base: Path) -> list[str]:
    lines = ["| implementation (version as it reports it) | input set | " + " | ".join(STATUSES) + " | report |",
             "| --- " * (len(STATUSES) + 3) + "|"]
    for name in names:
        for input_set in input_sets:
            run = by_key.get((name, input_set))
            if run is None:
                continue
            counts = run.record["counts"]
            summary = run.folder / "summary.md"
            lines.append(f"| {name} {run.record['info']['version']} | {input_set} | "
                         + " | ".join(str(counts.get(status, 0)) for status in STATUSES)
                         + f" | [summary]({_link(summary, base)}) · [results.json]({_link(run.folder / 'results.json', base)}) |")
    lines += ["", ("Counts are observed by the runner; versions are what each implementation reports of itself. "
                   "Each report's provenance block has the rest (artifact hashes, revision, machine)."), ""]
    return lines


def _findings(names: list[str], findings: Mapping[str, list[dict[str, Any]]], runs: list[Run], base: Path) -> list[str]:
    if not findings:
        return []
    lines = ["### Findings", ""]
    for name in names:
        entries = findings.get(name) or []
        if not entries:
            continue
        lines += [f"**{name}**", ""]
        for entry in entries:
            lines.append(f"- {entry['finding'].strip()}")
            for case_id in entry.get("cases", []):
                run, case = _failing(name, case_id, runs, entry.get("input_set"))
                summary = _link(run.folder / "summary.md", base)
                lines.append(f"  - [`{case_id}`]({summary}) ({run.input_set}): `{_replay_line(case)}`")
        lines.append("")
    return lines


def _failing(name: str, case_id: str, runs: list[Run], input_set: str | None = None) -> tuple[Run, dict[str, Any]]:
    """The first stored run of `name` (on `input_set`, where the finding names the one it shows on) in
    which the case fails, and the case."""
    for run in runs:
        if run.name != name or input_set not in (None, run.input_set):
            continue
        case = run.case(case_id)
        if case is not None and case["status"] == FAIL:
            return run, case
    where = f" on {input_set}" if input_set else ""
    raise StaleFinding(f"finding for {name} names {case_id!r}, which does not fail in any stored run of {name}{where}")


def _replay_line(case: dict[str, Any]) -> str:
    for line in reversed(case.get("message", "").splitlines()):
        if line.startswith("replay: "):
            return line.removeprefix("replay: ")
    return f"ggufsm conformance replay --case {case['id']} (no replay line stored)"


def _diagrams(names: list[str], input_sets: list[str], by_key: dict[tuple[str, str], Run], base: Path) -> list[str]:
    lines = ["### Diagrams", "", ("Each transition of the table coloured by the worst result of its cases "
                                  "(green passes, red fails, grey not supported)."), "", "<table>",
             "<tr><th></th>" + "".join(f"<th>{name}</th>" for name in names) + "</tr>"]
    for input_set in input_sets:
        cells = []
        for name in names:
            run = by_key.get((name, input_set))
            diagram = run.diagram() if run is not None else None
            cells.append(f'<td><img src="{_link(diagram, base)}" width="{DIAGRAM_WIDTH}" alt="{name}, {input_set}"></td>'
                         if diagram is not None else "<td></td>")
        lines.append(f"<tr><th>{input_set}</th>" + "".join(cells) + "</tr>")
    return [*lines, "</table>", ""]


def _matrix(names: list[str], input_sets: list[str], by_key: dict[tuple[str, str], Run]) -> list[str]:
    spec = load_spec()
    rows: dict[str, dict[str, str]] = {}      # row key -> (name, input set) key -> worst status
    kinds: dict[str, str] = {}
    for (name, input_set), run in by_key.items():
        grouped: dict[str, list[str]] = {}
        for case in run.cases:
            key = case["cell"] if case["kind"] == CELL and case.get("cell") else case["id"]
            kinds.setdefault(key, case["kind"])
            grouped.setdefault(key, []).append(case["status"])
        for key, statuses in grouped.items():
            rows.setdefault(key, {})[f"{name}\0{input_set}"] = worst(statuses) or ""
    header = ["| | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]

    def row(key: str, label: str) -> str:
        found = rows.get(key, {})
        entries = [" ".join(ICONS.get(found.get(f"{name}\0{input_set}", ""), "·") for input_set in input_sets)
                   for name in names]
        return f"| {label} | " + " | ".join(entries) + " |"

    lines = ["### The seed's rules", "", *header]
    rules = [key for key, kind in kinds.items() if kind != CELL]
    lines += [row(key, f"`{key}`") for key in sorted(rules, key=lambda key: (kinds[key], key))]
    lines.append("")
    cells = _ordered(f"{branch.state}.{branch.operation}" for branch in spec.all_branches())
    for state in spec.states:
        in_state = [cell for cell in cells if cell.split(".")[0] == state and cell in rows]
        if not in_state:
            continue
        lines += [f"### {state}", "", *header]
        lines += [row(cell, f"`{cell.split('.', 1)[1]}`") for cell in in_state]
        lines.append("")
    return lines


# ─── the command ─────────────────────────────────────────────────────────────


def read_findings(path: Path | None) -> dict[str, list[dict[str, Any]]]:
    if path is None:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{path}: expected a mapping of implementation name to findings")
    return data


def page(results: list[Path], *, findings: Path | None, base: Path) -> str:
    return "\n".join(render(read_runs(results), read_findings(findings), base)) + "\n"


def splice(existing: str, block: str) -> str:
    """`existing` with its compare block replaced by `block` (or `block` after the first heading)."""
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + block.rstrip("\n") + tail
    title, newline, body = existing.partition("\n")
    return f"{title}{newline}\n{block}\n{body}" if title.startswith("# ") else f"{block}\n{existing}"


def main(results: list[Path], *, findings: Path | None = None, output: Path | None = None) -> int:
    try:
        return _write(results, findings, output)
    except StaleFinding as stale:
        print(f"ggufsm conformance compare: {stale}", file=sys.stderr)
        return 1


def _write(results: list[Path], findings: Path | None, output: Path | None) -> int:
    if output is None:
        sys.stdout.write(page(results, findings=findings, base=Path.cwd()))
        return 0
    block = page(results, findings=findings, base=output.parent)
    existing = output.read_text(encoding="utf-8") if output.exists() else ""
    output.write_text(splice(existing, block), encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0
