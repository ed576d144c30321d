"""docs/conformance/power.md: the suite's power, from the hand-written mutants and mutmut's verdicts."""

from __future__ import annotations

import datetime
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mutants import BY_NAME, DERIVED, equivalence
from mutants.base import PROTOCOL
from mutants.escapes import NOT_YET_KILLED
from mutants.kill import Verdict
from mutants.mutmut_run import MutmutResult

REPO = Path(__file__).resolve().parents[3]
COMMAND = ".venv/bin/python tests/conformance/measure_power.py"
FAILURES_SHOWN = 3


@dataclass
class Results:
    control: Verdict
    mutants: dict[str, Verdict]
    mutmut: MutmutResult | None
    tree: str       # the commit measured (and whether the tree had changes)
    when: str

    @classmethod
    def collect(cls, verdicts: dict[str, Verdict], mutmut: MutmutResult | None, *, control: str) -> Results:
        verdicts = dict(verdicts)
        return cls(verdicts.pop(control), verdicts, mutmut, _tree(), datetime.date.today().isoformat())

    def to_json(self) -> dict:
        return {"control": self.control.to_json(), "mutants": {name: v.to_json() for name, v in self.mutants.items()},
                "mutmut": self.mutmut.to_json() if self.mutmut else None, "tree": self.tree, "when": self.when}

    @classmethod
    def from_json(cls, data: dict) -> Results:
        return cls(Verdict.from_json(data["control"]),
                   {name: Verdict.from_json(v) for name, v in data["mutants"].items()},
                   MutmutResult.from_json(data["mutmut"]) if data["mutmut"] else None, data["tree"], data["when"])

    @classmethod
    def merged(cls, parts: list[Results]) -> Results:
        """Every part's mutant verdicts (a later part's replace an earlier's), the control and tree of the part
        with the most, mutmut's from the last part that ran it."""
        main = max(parts, key=lambda part: len(part.mutants))
        mutmut = next((part.mutmut for part in reversed(parts) if part.mutmut is not None), None)
        verdicts = {name: verdict for part in parts for name, verdict in part.mutants.items()}
        ordered = {name: verdicts[name] for name in BY_NAME if name in verdicts}
        return cls(main.control, ordered, mutmut, main.tree, main.when)

    @property
    def killed(self) -> list[str]:
        return [name for name, verdict in self.mutants.items() if verdict.killed]

    def tally(self, derived: bool) -> tuple[int, int]:
        """(killed, measured) among the authored mutants, or among those derived from the table."""
        names = [name for name in self.mutants if (BY_NAME[name] in DERIVED) == derived]
        return sum(self.mutants[name].killed for name in names), len(names)

    def headline(self) -> str:
        line = f"hand-written mutants killed {len(self.killed)}/{len(self.mutants)}"
        if self.mutmut is not None:
            score = equivalence.score(self.mutmut)
            line += f"; mutmut killed {score.killed}/{score.eligible} surviving-eligible"
        return line


def _tree() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD')} on {git('rev-parse', '--abbrev-ref', 'HEAD')}{dirty}"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def render(results: Results) -> str:
    return "\n".join([*_header(results), *_hand_written(results), *_mutmut(results.mutmut), *_rerun(results), ""])


def _rerun(results: Results) -> list[str]:
    mutant_minutes = sum(verdict.seconds for verdict in results.mutants.values()) / 60
    return [
        "## How to re-run",
        "",
        "```sh",
        ".venv/bin/pip install -e '.[test,mutation]'                                  # mutmut, once",
        f"{COMMAND} --jobs 2                               # everything; writes this page",
        f"{COMMAND} --skip-mutmut --jobs 2                 # the hand-written mutants only",
        f"{COMMAND} --skip-mutants --results mutmut.json   # mutmut only; then:",
        f"{COMMAND} --from-results mutants.json mutmut.json  # this page from saved results",
        f"{COMMAND} --mutant TopPLowerEdgeAcceptsOutside --all-failures  # one mutant, every failing case",
        "GGUFSM_POWER=1 .venv/bin/python -m pytest -q tests/conformance/test_mutants.py  # the kill check as tests",
        "```",
        "",
        f"This measurement: the mutants' suites took {mutant_minutes:.0f} minutes of wall time in all (each in its own "
        "process, stopping at its first failing case)"
        + (f", mutmut {results.mutmut.seconds / 60:.0f} minutes" if results.mutmut else "")
        + ", on 2 cores shared with other work: a ratio, not a benchmark. mutmut is opt-in: never in CI.",
    ]


def _header(results: Results) -> list[str]:
    control = results.control
    return [
        "# The conformance suite's power",
        "",
        f"Generated by `{COMMAND}`: do not edit, rerun it (see *How to re-run* at the end).",
        "",
        f"Measured on {results.tree}, {results.when}: the suite in-process on the kit's default fixtures, "
        "as `ggufsm conformance run --in-process` runs it, one pass.",
        "",
        f"- **Hand-written mutants killed: {len(results.killed)}/{len(results.mutants)} "
        f"({_percent(len(results.killed), len(results.mutants))})**: "
        + ", ".join(f"{what} {k}/{n} ({_percent(k, n)})" for what, (k, n) in
                    (("authored one by one", results.tally(False)), ("derived from the table", results.tally(True)))),
        *([f"- **mutmut, lifecycle code: {results.headline().split('; ')[1]} "
           f"({_percent(equivalence.score(results.mutmut).killed, equivalence.score(results.mutmut).eligible)})**"]
          if results.mutmut else ["- mutmut: not run (`--skip-mutmut`)"]),
        f"- Control, the unmodified reference: {control.cases_run - len(control.failures)}/{control.cases_run} "
        f"cases pass" + (f" (failing: {', '.join(f.case for f in control.failures)})" if control.failures else ""),
        "",
        "A mutant is killed when at least one case of the suite fails against it. The target (issue 11): "
        "at least 95% of the hand-written mutants and 90% of mutmut's surviving-eligible mutants.",
        "",
    ]


def _hand_written(results: Results) -> list[str]:
    lines = [
        "## Hand-written mutants",
        "",
        "`tests/conformance/mutants/`: each is the reference runtime with one part swapped, breaking one "
        "rule of the table (`spec/lifecycle.yaml`, looked up there) or of the seed. Most are authored one by one "
        "(one module per kind); `derived.py` generates the rest from the table itself, so their list of rules "
        "is the table's: one refusing the last value inside and one accepting the first value outside every "
        "bound of every numeric range (and one refusing null where null is in range), one per effect an "
        "operation has on some branch (leaving that datum as it was), one per must-wait cell (refusing at "
        "once instead of waiting). A mutant's suite stops at its first failing case (`--all-failures` lists "
        "them all). "
        "`tests/conformance/test_mutants.py` runs the suite against each and expects it killed (the ones "
        "this suite cannot kill yet are marked expected to fail, strictly, so a kill shows). "
        f"\"Observable\" says how the deviation can be seen: `{PROTOCOL}` through one handle as the protocol "
        "is; the others need what protocol 1.1 adds (several handles, structured diagnostics).",
        "",
    ]
    by_kind: dict[str, list[str]] = {}
    for name in results.mutants:
        by_kind.setdefault(BY_NAME[name].kind, []).append(name)
    lines += ["| kind | killed |", "| --- | --- |"]
    for kind, names in by_kind.items():
        killed = sum(results.mutants[name].killed for name in names)
        lines.append(f"| {kind} | {killed}/{len(names)} |")
    lines += ["", "| mutant | breaks | observable | killed by |", "| --- | --- | --- | --- |"]
    for kind, names in by_kind.items():
        for name in names:
            mutant, verdict = BY_NAME[name], results.mutants[name]
            lines.append(f"| `{name}` ({kind}): {mutant.summary()} | `{mutant.breaks.ref}` | {mutant.observable} "
                         f"| {_killed_by(verdict)} |")
    escaped = [name for name in results.mutants if not results.mutants[name].killed]
    if escaped:
        lines += ["", f"### Not killed ({len(escaped)})", ""]
        for name in escaped:
            mutant = BY_NAME[name]
            lines.append(f"- `{name}`: {mutant.summary()} Rule: `{mutant.breaks.ref}`. **Missing check: "
                         f"{NOT_YET_KILLED.get(name, 'not analysed yet')}.** Observable: {mutant.observable}. "
                         f"Passed {results.mutants[name].cases_run} cases in {results.mutants[name].seconds:.0f} s"
                         + (f"; {results.mutants[name].problem}" if results.mutants[name].problem else "") + ".")
    return lines + [""]


def _killed_by(verdict: Verdict) -> str:
    if verdict.problem and not verdict.failures:
        return f"(run failed: {verdict.problem})"
    if not verdict.failures:
        return "**not killed**"
    shown = ", ".join(f"`{failure.case}`" for failure in verdict.failures[:FAILURES_SHOWN])
    more = len(verdict.failures) - FAILURES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _mutmut(mutmut: MutmutResult | None) -> list[str]:
    if mutmut is None:
        return []
    score = equivalence.score(mutmut)
    counts = Counter(mutmut.statuses.values())
    config = mutmut.config
    lines = [
        "## mutmut on the lifecycle code",
        "",
        f"mutmut {score.version} mutates `{'`, `'.join(config.get('source_paths', []))}` (the staging "
        "directory's paths for the lifecycle files of `reference/runtime/`; see `[tool.mutmut]` in pyproject.toml "
        "and `tests/conformance/mutants/mutmut_run.py`). Its test command is the suite against the reference, "
        "one pytest test per case (`tests/conformance/mutants/suite_cases.py`): for each mutant, mutmut runs "
        "the cases that reach the mutated function and stops at the first that fails.",
        "",
        f"- generated: {len(mutmut.statuses)}; run in {mutmut.seconds / 60:.0f} min "
        f"({', '.join(f'{status} {n}' for status, n in counts.most_common())})",
        f"- killed: {counts.get('killed', 0)}; timed out: {counts.get('timeout', 0)}; crashed: "
        f"{counts.get('segfault', 0)} (all three count as caught: {score.killed})",
        f"- survived: {counts.get('survived', 0) + counts.get('suspicious', 0)}",
        f"- not eligible: {score.unreached + len(score.equivalent) + score.not_run} ({score.unreached} reached by "
        f"no case of the suite, {len(score.equivalent)} equivalent by the rules below, {score.not_run} not run)",
        f"- **eligible: {score.killed}/{score.eligible} killed ({_percent(score.killed, score.eligible)})**; "
        f"{len(score.survivors)} survive",
        "",
        "### What is not eligible",
        "",
        *equivalence.RULES_TEXT,
        "",
    ]
    if score.unreached_functions:
        lines += ["Functions no case reaches (their mutants are \"no tests\"):", ""]
        lines += [f"- `{function}` ({n})" for function, n in score.unreached_functions.items()]
        lines.append("")
    if score.equivalent:
        lines += [f"Equivalent mutants ({len(score.equivalent)}):", ""]
        for name, why in sorted(score.equivalent.items()):
            diff = mutmut.diffs.get(name, "")
            note = equivalence.review_note(name, diff)
            lines.append(f"- `{name}` ({why}): `{equivalence.changed_line(diff)}`" + (f": {note}" if note else ""))
        lines.append("")
    lines += [f"### Survivors ({len(score.survivors)})", ""]
    if not score.survivors:
        lines.append("None.")
    for name in score.survivors:
        lines += [f"- `{name}`: {equivalence.why_it_survives(name, mutmut.diffs.get(name, ''))}", "",
                  "  ```diff", *[f"  {line}" for line in equivalence.diff_body(mutmut.diffs.get(name, ""))],
                  "  ```", ""]
    return lines
