"""Which of mutmut's mutants count, and the score over those that do.

mutmut changes code mechanically; some of its changes cannot be seen by any
conformance suite, because the spec leaves what they change open. Those are
not eligible, by rules stated here (and printed in docs/conformance/power.md),
applied to each mutant's diff, never by hand per mutant:

- mutants no case reaches ("no tests": mutmut never ran them);
- a changed human message: the table fixes error *codes*; a message's words
  are the implementation's (only a literal containing a space, or an f-string,
  counts as a message, so a changed dictionary key or name is still eligible);
  A guard's reason replaced by None counts too (the error then carries the
  generic refusal), except where the table's errors say what the message
  names (InvalidModel: the field or tensor and the byte offset);
- changed timing figures (``timings``, ``*_seconds``, ``perf_counter``): the
  protocol reports timings as free-form diagnostics the spec puts no rule on;
- equivalent by reading: the few mutants in :data:`REVIEWED` (keyed by
  function and changed line, with the reason a reader can check), for code
  no input reaches or changes no behaviour can show.

Every other mutant is eligible; the caught ones (killed, timed out, crashed)
count as killed. Survivors get a note in :data:`SURVIVOR_NOTES` once someone
has looked at why the suite lets them pass.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata

from mutants.mutmut_run import CAUGHT, MutmutResult

UNREACHED = "no tests"
REVIEWED_RULE = "equivalent by reading"
NOT_RUN = ("not checked", "skipped", "check was interrupted by user")
MESSAGE = "a human message's words"
TIMING = "a timing figure"

RULES_TEXT = [
    "- **not reached**: no case of the suite runs the mutated function (mutmut's \"no tests\"); listed below "
    "by function, since the suite should reach them.",
    f"- **{MESSAGE}**: the mutant changes only a string literal that is a message (contains a space, or is an "
    "f-string), or replaces a guard's reason with None. The table fixes error codes, not the words of their "
    "messages, except InvalidModel's (it names the field or tensor and the byte offset): those stay eligible.",
    f"- **{REVIEWED_RULE}**: listed in `tests/conformance/mutants/equivalence.py` (`REVIEWED`) by function and "
    "changed line, each with its reason (shown below).",
    f"- **{TIMING}**: the changed line computes timings (`timings`, `*_s`/`*_seconds`, `perf_counter`), which "
    "the protocol reports as free-form diagnostics with no rule in the spec.",
]

_TIMING = re.compile(r"\btimings\b|_seconds\b|perf_counter|\b\w+_s\b|_tok_s\b")

# Guards whose error's message the table fixes (errors.<code>.meaning says what it names): their reasons count.
MESSAGE_FIXED = {"model_well_formed": "InvalidModel"}
_REASON_SOURCE = re.compile(r"[\w.]*\b(?:failure_message|end_note)\b")

_HOLDS = re.compile(r"(.*\bholds\(.+?), (.+)\)$")
_STRING = re.compile(r"""[rbfuRBFU]*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")

# Read and judged equivalent: (function, the changed line as mutmut writes it) -> why no behaviour can show it.
REVIEWED: dict[tuple[str, str], str] = {
    ("ggufsm.reference.runtime.guards.Guards.context_left",
     "n_past = request.n_past if (request is not None) or True else 0"):
        "the table asks context_left only where a request is open (ContinuationReady), so the else is never taken",
    ("ggufsm.reference.runtime.guards.Guards.context_left",
     "n_past = request.n_past if request is not None else 1"):
        "n_past is read only when a request is open (the guard's `request is not None and ...`)",
    ("ggufsm.reference.runtime.resident.Resident.present",
     "held = {ResidentDatum.config, ResidentDatum.diagnostics}"):
        "held is the empty set there: assigning and adding are the same",
    ("ggufsm.reference.runtime.resident.Resident.install", 'self.request = ""'):
        "install runs only on a successful load, whose next state (Ready) does not allow a request: entering it "
        "drops the request whatever it was",
    ("ggufsm.reference.runtime.resident.Resident.keep_only", 'self.last_error = ""'):
        "every state a transition enters allows last_error (only Uninitialized does not, and no transition enters "
        "it): the line never runs",
    ("ggufsm.reference.runtime.resident.Resident.keep_only", "release(None, session)"):
        "the model's last reference is dropped on the line before: CPython frees it at once, closed or not",
    ("ggufsm.reference.runtime.resident.Resident.keep_only", "release(model, None)"):
        "the session's last reference is dropped on the line before: CPython frees it at once, closed or not",
}

# Why a survivor survives, once someone looked: mutmut's name -> the missing check (see power.md).
SURVIVOR_NOTES: dict[str, str] = {
    "ggufsm.reference.runtime.guards.xǁGuardsǁmodel_well_formed__mutmut_2":
        "an InvalidModel refusal that names no field or tensor and no byte offset passes: no case reads the "
        "message the table's errors.InvalidModel says it carries (a check of the message's offset would tell)",
}


@dataclass
class Score:
    version: str
    killed: int = 0
    eligible: int = 0
    unreached: int = 0
    not_run: int = 0
    equivalent: dict[str, str] = field(default_factory=dict)   # name -> which rule
    survivors: list[str] = field(default_factory=list)
    unreached_functions: dict[str, int] = field(default_factory=dict)


def score(result: MutmutResult) -> Score:
    try:
        version = metadata.version("mutmut")
    except metadata.PackageNotFoundError:
        version = str(result.config.get("version", "3"))
    out = Score(version)
    unreached: Counter[str] = Counter()
    for name, status in sorted(result.statuses.items()):
        if status == UNREACHED:
            out.unreached += 1
            unreached[function_of(name)] += 1
            continue
        if status in NOT_RUN:
            out.not_run += 1
            continue
        if status not in CAUGHT:
            why = not_eligible(result.diffs.get(name, ""), function_of(name))
            if why:
                out.equivalent[name] = why
                continue
            out.survivors.append(name)
        else:
            out.killed += 1
        out.eligible += 1
    out.unreached_functions = dict(unreached.most_common())
    return out


def function_of(name: str) -> str:
    """``ggufsm.reference.runtime.request.xǁRequestǁrun__mutmut_3`` -> ``ggufsm.reference.runtime.request.Request.run``."""
    base = name.rsplit("__mutmut_", 1)[0]
    module, _, function = base.rpartition(".")
    function = function.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".")
    return f"{module}.{function}"


def diff_body(diff: str) -> list[str]:
    """The diff's hunks, without its file headers."""
    return [line for line in diff.strip("\n").splitlines() if not line.startswith(("---", "+++"))]


def _changed(diff: str) -> tuple[list[str], list[str]]:
    body = diff_body(diff)
    return ([line[1:] for line in body if line.startswith("-")], [line[1:] for line in body if line.startswith("+")])


def changed_line(diff: str) -> str:
    _, added = _changed(diff)
    return " / ".join(line.strip() for line in added) or "(a line removed)"


def _tokens(source: str) -> list[tuple[int, str]] | None:
    try:
        return [(token.type, token.string) for token in tokenize.generate_tokens(io.StringIO(source.strip()).readline)
                if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                      tokenize.ENDMARKER, tokenize.COMMENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _is_message(literal: str) -> bool:
    prefix = literal[: len(literal) - len(literal.lstrip("rbfuRBFU"))].lower()
    return "f" in prefix or " " in literal


def not_eligible(diff: str, function: str = "") -> str:
    """The rule that makes this diff unobservable by design, or "" when it is eligible."""
    removed, added = _changed(diff)
    if (function, changed_line(diff)) in REVIEWED:
        return REVIEWED_RULE
    if not removed or len(removed) != len(added):
        return ""
    guard = function.rsplit(".", 1)[-1]
    if guard not in MESSAGE_FIXED and all(_reason_dropped(old, new) for old, new in zip(removed, added, strict=True)):
        return MESSAGE
    if all(_TIMING.search(line) for line in removed):
        return TIMING
    if guard in MESSAGE_FIXED:
        return ""
    for old, new in zip(removed, added, strict=True):
        old_tokens, new_tokens = _tokens(old), _tokens(new)
        if old_tokens is None or new_tokens is None or len(old_tokens) != len(new_tokens):
            return ""
        differing = [(a, b) for a, b in zip(old_tokens, new_tokens, strict=True) if a != b]
        if not differing or not all(a[0] == tokenize.STRING and b[0] == tokenize.STRING and _is_message(a[1])
                                    for a, b in differing):
            return ""
    return MESSAGE


def _reason_dropped(old: str, new: str) -> bool:
    """The line's only change is a message (or where a guard's reason comes from) replaced by None."""
    old, new = old.strip(), new.strip()
    # a regular expression, not tokenize: the line may be one part of a call spread over several
    candidates = [match.group(0) for match in _STRING.finditer(old) if _is_message(match.group(0))]
    candidates += [match.group(0) for match in _REASON_SOURCE.finditer(old)]
    if any(old.replace(candidate, "None", 1) == new for candidate in candidates):
        return True
    # the whole reason argument of a guard's holds(condition, reason)
    was, now = _HOLDS.match(old), _HOLDS.match(new)
    return bool(was and now and was.group(1) == now.group(1) and now.group(2) == "None")


def review_note(name: str, diff: str) -> str:
    """The reviewer's reason, for a mutant equivalent by reading."""
    return REVIEWED.get((function_of(name), changed_line(diff)), "")


def why_it_survives(name: str, diff: str) -> str:
    return SURVIVOR_NOTES.get(name, f"in `{function_of(name)}`: not analysed yet")
