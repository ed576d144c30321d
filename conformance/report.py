"""Reports of a run: JSON (one record per case), JUnit XML, a Markdown summary, and the state
diagram with every transition coloured by its result; with several implementations, a comparison.

Coverage is measured against the table: of its cells (state × operation), of
its branches, and of its transitions (from, operation, to, error), how many
have a case and how many pass.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ggufsm.conformance.run.runner import FAIL, NOT_SUPPORTED, PASS, XFAIL, XPASS, RunResult
from ggufsm.spec import Branch, Spec

ICONS = {PASS: "✅", FAIL: "❌", NOT_SUPPORTED: "➖", XFAIL: "⚠️", XPASS: "❗"}
# Diagram colours: a transition is as good as its worst case.
COLOURS = {PASS: "#2e7d32", XPASS: "#2e7d32", NOT_SUPPORTED: "#9e9e9e", XFAIL: "#ef6c00", FAIL: "#c62828"}
SEVERITY = (PASS, XPASS, NOT_SUPPORTED, XFAIL, FAIL)


def worst(statuses: Iterable[str]) -> str | None:
    found = list(statuses)
    return max(found, key=SEVERITY.index) if found else None


def _icon(status: str | None) -> str:
    return ICONS[status] if status is not None else " "


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "impl"


def summary_line(run: RunResult) -> str:
    counts = run.counts()
    words = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    stopped = f" (stopped early: {run.stopped}; a partial run)" if run.stopped else ""
    return (f"{run.implementation}: {len(run.results)} cases: {words} in {run.seconds:.1f} s -> "
            f"{'OK' if run.ok else 'FAILED'}{stopped}")


# ─── coverage ────────────────────────────────────────────────────────────────


def branch_statuses(run: RunResult) -> dict[str, str]:
    """The status of each table branch (by its source), from the cell cases."""
    statuses: dict[str, list[str]] = {}
    for result in run.results:
        if result.kind == "cell":
            statuses.setdefault(result.rule, []).append(result.status)
    return {rule: SEVERITY[max(SEVERITY.index(status) for status in found)] for rule, found in statuses.items()}


def coverage(run: RunResult, spec: Spec) -> dict[str, dict[str, int]]:
    by_branch = branch_statuses(run)
    branches = list(spec.all_branches())
    cells: dict[tuple[str, str], list[str | None]] = {}
    transitions: dict[tuple[str, str, str, str | None], list[str | None]] = {}
    for branch in branches:
        status = by_branch.get(branch.source)
        cells.setdefault((branch.state, branch.operation), []).append(status)
        key = (branch.state, branch.operation, branch.outcome.to, branch.outcome.error)
        transitions.setdefault(key, []).append(status)

    def measure(groups: Iterable[list[str | None]]) -> dict[str, int]:
        groups = list(groups)
        return {"total": len(groups),
                "with_a_case": sum(all(status not in (None, NOT_SUPPORTED) for status in group) for group in groups),
                "passing": sum(all(status in (PASS, XPASS) for status in group) for group in groups)}

    measured = {"cells": measure(cells.values()), "branches": measure([[by_branch.get(b.source)] for b in branches]),
                "transitions": measure(transitions.values())}
    walk = next((result for result in run.results if result.kind == "walk" and result.measures), None)
    if walk is not None:
        total = walk.measures["total"]
        measured["walk triples"] = {"total": total, "with_a_case": walk.measures["taken"],
                                    "passing": walk.measures["taken"] if walk.status in (PASS, XPASS) else 0,
                                    "by_random_walks": walk.measures["by_random_walks"]}
    return measured


# ─── JSON and JUnit ──────────────────────────────────────────────────────────


def run_json(run: RunResult, spec: Spec) -> dict[str, Any]:
    return {"implementation": run.implementation, "info": run.info, "spec_version": run.spec_version,
            "inputs": run.inputs, "seconds": round(run.seconds, 3), "ok": run.ok, "stopped": run.stopped,
            "counts": run.counts(),
            "coverage": coverage(run, spec), "cases": [result.to_json() for result in run.results]}


def junit_xml(runs: list[RunResult]) -> bytes:
    suites = ElementTree.Element("testsuites", name="ggufsm conformance")
    for run in runs:
        counts = run.counts()
        suite = ElementTree.SubElement(suites, "testsuite", name=run.implementation, tests=str(len(run.results)),
                                       failures=str(counts[FAIL]), skipped=str(counts[NOT_SUPPORTED] + counts[XFAIL]),
                                       time=f"{run.seconds:.3f}")
        for result in run.results:
            case = ElementTree.SubElement(suite, "testcase", classname=f"{run.implementation}.{result.kind}",
                                          name=result.id, time=f"{result.seconds:.3f}")
            detail = "\n".join([*result.description, "", result.message]).strip()
            if result.status == FAIL:
                failure = ElementTree.SubElement(case, "failure", message=result.message.splitlines()[0] if result.message else "failed")
                failure.text = detail + (f"\nsignal: {result.signal}" if result.signal else "")
            elif result.status == NOT_SUPPORTED:
                ElementTree.SubElement(case, "skipped", message=f"not supported: {result.message}")
            elif result.status == XFAIL:
                ElementTree.SubElement(case, "skipped", message=f"expected failure: {result.message}")
            elif result.status == XPASS:
                ElementTree.SubElement(case, "system-out").text = "listed as expected to fail, but passes now"
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True)


# ─── Markdown ────────────────────────────────────────────────────────────────


def _percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"


def run_markdown(run: RunResult, spec: Spec, diagram: str | None) -> list[str]:
    counts, cover = run.counts(), coverage(run, spec)
    info = run.info
    lines = [f"## {run.implementation}", "",
             f"{info['name']} {info['version']} · spec {run.spec_version} (implementation says "
             f"{info.get('spec_version') or 'nothing'}) · reports state: {info['capabilities']['state']} · "
             f"diagnostics: {info['capabilities']['diagnostics']}", "",
             f"**{'PASS' if run.ok else 'FAIL'}**: {len(run.results)} cases in {run.seconds:.1f} s: "
             + ", ".join(f"{ICONS[status]} {count} {status}" for status, count in counts.items() if count)
             + (f". **Partial**: the run stopped early ({run.stopped})." if run.stopped else ""), "",
             "| coverage | with a case | passing |", "| --- | --- | --- |"]
    for name, measured in cover.items():
        lines.append(f"| {name} | {_percent(measured['with_a_case'], measured['total'])} | "
                     f"{_percent(measured['passing'], measured['total'])} |")
    lines.append("")
    if "walk triples" in cover:
        walked = cover["walk triples"]
        lines += [f"Walk triples: the (state, operation, guard values) the table allows in a stable state; the random "
                  f"walks took {walked['by_random_walks']} of {walked['total']}, a route of its own each of the rest.", ""]
    if diagram:
        lines += [f"![{run.implementation}: transitions coloured by result]({diagram})", "",
                  "Green: passes · red: fails · orange: expected to fail · grey: not supported.", ""]
    lines += _matrix(run, spec)
    problems = [result for result in run.results if result.status not in (PASS, XFAIL)]
    if problems:
        lines += ["### Cases that do not pass", "", "| case | result | rule | what happened |", "| --- | --- | --- | --- |"]
        for result in problems:
            message = result.message.replace("\n", "<br>").replace("|", "\\|")
            signal = f" (signal {result.signal})" if result.signal else ""
            lines.append(f"| `{result.id}` | {ICONS[result.status]} {result.status}{signal} | `{result.rule}` | {message} |")
        lines.append("")
    return lines


def _matrix(run: RunResult, spec: Spec) -> list[str]:
    """State × operation, each cell the worst result of its cases."""
    by_cell: dict[str, list[str]] = {}
    for result in run.results:
        if result.cell:
            by_cell.setdefault(result.cell, []).append(result.status)
    operations = list(spec.operations)
    lines = ["| state | " + " | ".join(operations) + " |", "| --- " * (len(operations) + 1) + "|"]
    for state in spec.states:
        row = [_icon(worst(by_cell.get(f"{state}.{op}", []))) for op in operations]
        lines.append(f"| {state} | " + " | ".join(row) + " |")
    return [*lines, ""]


def comparison_markdown(runs: list[RunResult]) -> list[str]:
    names = [run.implementation for run in runs]
    lines = ["## Comparison", "", "| | " + " | ".join(f"`{name}`" for name in names) + " |",
             "| --- " * (len(names) + 1) + "|"]
    for status in (PASS, FAIL, NOT_SUPPORTED, XFAIL, XPASS):
        lines.append(f"| {status} | " + " | ".join(str(run.counts()[status]) for run in runs) + " |")
    lines.append("| seconds | " + " | ".join(f"{run.seconds:.1f}" for run in runs) + " |")
    statuses = [{result.id: result.status for result in run.results} for run in runs]
    differing = [case for case in dict.fromkeys(case for table in statuses for case in table)
                 if len({table.get(case) for table in statuses}) > 1]
    if differing:
        lines += ["", "Cases whose results differ:", "", "| case | " + " | ".join(f"`{name}`" for name in names) + " |",
                  "| --- " * (len(names) + 1) + "|"]
        for case in differing:
            lines.append(f"| `{case}` | " + " | ".join(_icon(table.get(case)) for table in statuses) + " |")
    return [*lines, ""]


# ─── the coloured diagram ────────────────────────────────────────────────────


def diagram_svg(run: RunResult, spec: Spec) -> bytes:
    """The table's state diagram (drawn by ggufsm.spec.render) with each transition coloured by the
    worst result among the cases of the branches it stands for."""
    from ggufsm.spec import render

    by_branch = branch_statuses(run)

    def colour_of(branches: Iterable[Branch]) -> str | None:
        status = worst(by_branch[branch.source] for branch in branches if branch.source in by_branch)
        return COLOURS[status] if status is not None else None

    graph = render.dot_graph(spec, colour_of=colour_of)
    graph.attr(label=f"{run.implementation}: conformance to spec {spec.version}\n"
                     "green: passes · red: fails · orange: expected to fail · grey: not supported")
    return graph.pipe(format="svg")


# ─── writing ─────────────────────────────────────────────────────────────────


def write_reports(runs: list[RunResult], report_dir: Path,
                  provenance: Sequence[dict[str, Any] | None] | None = None) -> list[Path]:
    """The reports of `runs`; `provenance`: each run's block (conformance/provenance.py), in its JSON record
    and at the top of its Markdown section."""
    from ggufsm.conformance.provenance import markdown as provenance_markdown
    from ggufsm.spec import load_spec

    spec = load_spec()
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name: str, content: bytes | str) -> None:
        path = report_dir / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        written.append(path)

    blocks: list[dict[str, Any] | None] = list(provenance or [None] * len(runs))
    records = [run_json(run, spec) | ({"provenance": block} if block else {}) for run, block in zip(runs, blocks, strict=True)]
    write("results.json", json.dumps(records, indent=1, default=str) + "\n")
    write("junit.xml", junit_xml(runs))
    # The spec the runs were made against (a stored report rendered again keeps its own).
    versions = sorted({run.spec_version for run in runs}) or [spec.version]
    markdown = ["# ggufsm conformance report", "",
                f"Spec {', '.join(versions)}. Produced by `ggufsm conformance run`; one JSON record per case in "
                "`results.json`, JUnit XML in `junit.xml`.", ""]
    if len(runs) > 1:
        markdown += comparison_markdown(runs)
    names = [run.info["name"] for run in runs]
    for run, block in zip(runs, blocks, strict=True):
        # The implementation's own name when it tells them apart, else the --impl string.
        name = run.info["name"] if names.count(run.info["name"]) == 1 else run.implementation
        diagram = f"{slug(name)}.lifecycle.svg"
        write(diagram, diagram_svg(run, spec))
        section = run_markdown(run, spec, diagram)
        markdown += section[:2] + (provenance_markdown(block) if block else []) + section[2:]
    write("summary.md", "\n".join(markdown).rstrip() + "\n")
    return written
