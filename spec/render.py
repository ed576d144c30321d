"""Documents derived from the table: the Markdown tables, the state diagram (DOT, SVG/PNG, Mermaid).

The diagram is first reduced to a small picture model (:class:`Picture`) so
DOT and Mermaid draw the same thing:

- one edge per (from, to, kind), labelled with every operation (or error) on it;
- error edges red and dashed, labelled with the error names;
- transient states grey and dashed; an operation that runs ``via`` one is
  drawn as an edge into the transient state and edges out of it to each end;
- self-loops are not drawn: each state's node carries a short note of what
  stays in it (``↻`` succeeds and stays, ``✗ Error:`` refused or rejected and
  stays, ``waits:`` serialized), and queries, which answer everywhere and
  change nothing, are left out.

Every artifact carries the spec version.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import graphviz

from ggufsm.spec.table import Branch, Outcome, Spec

GENERATED_BY = "ggufsm spec docs"
LAZY_MARK = "*"


# ─── shared wording ──────────────────────────────────────────────────────────


def conditions_text(branch: Branch) -> str:
    """Guards written compactly: `model_readable ∧ ¬model_well_formed`."""
    return " ∧ ".join(_literal(name, value) for name, value in branch.conditions)


def outcome_text(outcome: Outcome, state: str) -> str:
    """One outcome in a few words: `✗ InvalidModel → RecoverableError (via Loading)`."""
    target = "stays" if outcome.to == state else f"→ {outcome.to}"
    words = f"✗ {outcome.error}, {target}" if outcome.error and outcome.to == state else target
    if outcome.error and outcome.to != state:
        words = f"✗ {outcome.error} {target}"
    flags = [f"via {outcome.via}"] if outcome.via else []
    flags += ["lazy init"] if outcome.lazy_init else []
    flags += ["waits"] if outcome.serialized else []
    return f"{words} ({', '.join(flags)})" if flags else words


def _cell_text(spec: Spec, state: str, operation: str, separator: str) -> str:
    """A cell in one table cell: its branches as a decision list when they form one.

    Branches usually read "if g1 fails → A, else if g2 fails → B, ..., else
    C": each branch's conditions are the negations of the earlier branches'
    deciding guards plus one of its own. Written that way a cell shows one
    guard per line instead of a growing conjunction; the details section
    keeps the full conditions.
    """
    branches = spec.branches(state, operation)
    shared = _shared_flags(branches)
    strip = lambda outcome: replace(outcome, via=None, lazy_init=False, serialized=False) if shared else outcome  # noqa: E731
    deciders = _decision_list(branches)
    if deciders is None:
        lines = [f"{conditions_text(b)}: {outcome_text(strip(b.outcome), state)}" for b in branches]
    elif len(branches) == 1:
        lines = [outcome_text(strip(branches[0].outcome), state)]
    else:
        lines = []
        for index, (branch, decider) in enumerate(zip(branches, deciders, strict=True)):
            test = _literal(*decider) if decider else ""
            lead = ("else " if index else "") + test if test else "else"
            lines.append(f"{lead}: {outcome_text(strip(branch.outcome), state)}")
    return separator.join(([f"({shared})"] if shared else []) + lines)


def _shared_flags(branches) -> str:
    """The via / lazy init / waits flags, when every branch of a multi-branch cell has the same ones."""
    if len(branches) < 2:
        return ""
    flags = {(b.outcome.via, b.outcome.lazy_init, b.outcome.serialized) for b in branches}
    if len(flags) != 1:
        return ""
    via, lazy, serialized = flags.pop()
    words = ([f"via {via}"] if via else []) + (["lazy init"] if lazy else []) + (["waits"] if serialized else [])
    return ", ".join(words)


def _decision_list(branches):
    """Each branch's deciding (guard, value), None for a final 'else'; None if the cell is no decision list."""
    taken: dict[str, bool] = {}
    deciders: list[tuple[str, bool] | None] = []
    for index, branch in enumerate(branches):
        own = branch.when
        if any(own.get(guard) != value for guard, value in taken.items()):
            return None
        rest = {guard: value for guard, value in own.items() if guard not in taken}
        if len(rest) == 1:
            (guard, value), = rest.items()
            deciders.append((guard, value))
            taken[guard] = not value
        elif not rest and index == len(branches) - 1:
            deciders.append(None)
        else:
            return None
    return deciders


# Short marks for the effects on diagram edges and in the matrix: + made or set, − dropped or cleared.
EFFECT_MARKS = {
    ("last_error", "set"): "+error", ("last_error", "cleared"): "−error",
    ("request", "new"): "+request", ("request", "extended"): "+token", ("request", "cleared"): "−request",
    ("model", "installed"): "+model", ("model", "released"): "−model",
    ("sampling", "applied"): "sampling", ("config", "applied"): "config",
}


def effects_text(outcome: Outcome) -> str:
    """The effects that change something, as `field: value` words (`last_error: cleared, request: cleared`)."""
    return ", ".join(f"{name}: {value}" for name, value in outcome.changes().items())


def effect_marks(spec: Spec, state: str, outcome: Outcome, *, implied_by_error: bool = False) -> str:
    """Compact marks for a diagram label: `−error −request`. An error edge implies its +error, and
    dropping what the state it starts from cannot hold drops nothing."""
    required, optional = spec.resident(state)
    held = required | optional
    marks = [EFFECT_MARKS.get((name, value), f"{name}={value}") for name, value in outcome.changes().items()
             if not (implied_by_error and name == "last_error" and value == "set")
             and not (value in ("cleared", "released") and name in spec.resident_data and name not in held)]
    return " ".join(marks)


def _literal(guard: str, value: bool) -> str:
    return guard if value else f"¬{guard}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


# ─── Markdown ────────────────────────────────────────────────────────────────


def markdown(spec: Spec, diagram: str | None = None) -> str:
    """The lifecycle as Markdown: states table, operations, guards, errors, the full matrix, cell details."""
    lines = [
        "# The ggufsm runtime lifecycle",
        "",
        f"Spec version {spec.version}. Generated from `spec/lifecycle.yaml` by `{GENERATED_BY}`; do not edit by hand.",
        "",
    ]
    if diagram:
        lines += [f"![The lifecycle state diagram, spec {spec.version}]({diagram})", ""]
    lines += _states_section(spec)
    lines += _operations_section(spec)
    lines += _guards_section(spec)
    lines += _effects_section(spec)
    lines += _ranges_section(spec)
    lines += _errors_section(spec)
    lines += _matrix_section(spec)
    lines += _details_section(spec)
    return "\n".join(lines).rstrip() + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _states_section(spec: Spec) -> list[str]:
    rows = []
    for name, state in spec.states.items():
        label = f"{name} (transient)" if state.transient else name
        rows.append([label, resident_text(spec, name), allowed_text(spec, name)])
    queries = ", ".join(spec.queries)
    return [
        "## States",
        "",
        *_table(["State", "Resident data", "Allowed operations"], rows),
        f"The queries ({queries}) answer in every state and change nothing. "
        f"`{LAZY_MARK}`: the operation first initialises the runtime with the default configuration.",
        "",
    ]


def resident_text(spec: Spec, state: str) -> str:
    required, optional = spec.resident(state)
    in_order = lambda names: ", ".join(datum for datum in spec.resident_data if datum in names)  # noqa: E731
    parts = [in_order(required)] if required else []
    parts += [f"may hold: {in_order(optional)}"] if optional else []
    return "; ".join(parts) or "none"


def allowed_text(spec: Spec, state: str) -> str:
    """The seed's 'Allowed operations' column, derived from the cells.

    An operation is allowed when some branch succeeds without waiting; it is
    shown with where it leads when that is elsewhere. Waiting and refused
    operations are summed up after it.
    """
    allowed, waiting, refused = list[str](), list[str](), dict[str, list[str]]()
    for operation in spec.commands:
        branches = spec.branches(state, operation)
        if all(b.outcome.serialized for b in branches):
            waiting.append(operation)
            continue
        successes = [b.outcome for b in branches if b.outcome.error is None]
        if not successes:
            for b in branches:
                assert b.outcome.error is not None   # no success among them
                refused.setdefault(b.outcome.error, []).append(operation)
            continue
        name = operation + (LAZY_MARK if any(o.lazy_init for o in successes) else "")
        targets = _unique(o.to for o in successes if o.to != state)
        allowed.append(f"{name} → {'/'.join(targets)}" if targets else name)
    parts = [", ".join(allowed)] if allowed else []
    if waiting:
        every = set(waiting) == {op for op in spec.commands if spec.operations[op].kind == "command"}
        parts.append("every command waits" if every else f"waits: {', '.join(waiting)}")
    parts += [f"{error}: {', '.join(_unique(ops))}" for error, ops in refused.items()]
    return "; ".join(parts)


def _operations_section(spec: Spec) -> list[str]:
    rows = [[name, op.kind, op.description] for name, op in spec.operations.items()]
    return ["## Operations", "", *_table(["Operation", "Kind", "What it does"], rows)]


def _guards_section(spec: Spec) -> list[str]:
    rows = [[str(position), name, guard.known.replace("_", " "), ", ".join(guard.needs) or "—", guard.description]
            for position, (name, guard) in enumerate(spec.guards.items(), start=1)]
    return [
        "## Guards",
        "",
        "Conditions an outcome depends on, in the order the runtime evaluates them. The machine tries a cell's "
        "branches in table order and a branch's guards in this order, stopping at the first that fails; a guard is "
        "computed at most once per operation, and only when a branch still open names it. "
        "*before*: known before the operation changes anything. *while running*: known in the operation's "
        "transient `via` state, from what its work found; the operation leaves that state on these alone. "
        "*Needs*: guards that must hold before this one can be computed.",
        "",
        *_table(["#", "Guard", "Known", "Needs", "Holds when"], rows),
    ]


def _effects_section(spec: Spec) -> list[str]:
    rows = [[name, value, meaning] for name, values in spec.effect_fields.items() for value, meaning in values.items()]
    marks = ", ".join(f"`{mark}` {name}: {value}" for (name, value), mark in EFFECT_MARKS.items())
    return [
        "## Effects",
        "",
        "What an outcome does beyond its target state, field by field (the *Effects* column of the cells below; a "
        "field not written there is `kept`). The diagram marks them on its edges: " + marks + ".",
        "",
        *_table(["Field", "Value", "Means"], rows),
    ]


def _ranges_section(spec: Spec) -> list[str]:
    rows = []
    for guard, entry in spec.ranges.items():
        for name, value in entry.values.items():
            parts = [f"{key} {interval.text}" for key, interval in
                     (("", value.range), ("length", value.length), ("token ids", value.token_ids)) if interval]
            nullable = [f"null: {value.null_means}"] if value.nullable else []
            rows.append([guard, f"{entry.arguments_of}.{name}", value.type, "; ".join(p.strip() for p in parts),
                         "; ".join(filter(None, [value.meaning, *nullable]))])
    return [
        "## Ranges",
        "",
        ("The values each guard checks. A value outside its range makes the guard false; conformance tries every edge "
         "and just past it (a number's step past). n_ctx and n_vocab are the handle's context size and the model's "
         "vocabulary size. generate's `sampling` argument takes set_sampling's values, for that request only."),
        "",
        *_table(["Guard", "Argument", "Type", "Range", "Meaning"], rows),
    ]


def _errors_section(spec: Spec) -> list[str]:
    raised_in: dict[str, list[str]] = {name: [] for name in spec.errors}
    for branch in spec.all_branches():
        if branch.outcome.error:
            cell = f"{branch.state}.{branch.operation}"
            if cell not in raised_in[branch.outcome.error]:
                raised_in[branch.outcome.error].append(cell)
    rows = [[name, error.meaning, ", ".join(raised_in[name])] for name, error in spec.errors.items()]
    return ["## Errors", "", *_table(["Error", "Meaning", "Raised by (state.operation)"], rows)]


def _matrix_section(spec: Spec) -> list[str]:
    rows = [[state, *(_cell_text(spec, state, op, "<br>") for op in spec.commands)] for state in spec.states]
    return [
        "## State × operation",
        "",
        "Every cell has exactly one outcome for each assignment of its guards (`ggufsm spec check` proves it). "
        "`→ S`: ends in S; `stays`: ends where it started; `✗ E`: raises E; "
        "`via T`: in transient state T while it runs; `waits`: serialized behind the running operation.",
        "",
        *_table(["State", *spec.commands], rows),
    ]


def _details_section(spec: Spec) -> list[str]:
    lines = ["## Cells in detail", ""]
    for name, state in spec.states.items():
        lines += [f"### {name}", "", state.description, ""]
        rows = []
        for operation in spec.commands:
            for branch in spec.branches(name, operation):
                rows.append([operation, conditions_text(branch) or "always", outcome_text(branch.outcome, name),
                             branch.outcome.effect, effects_text(branch.outcome) or "—"])
        lines += _table(["Operation", "When", "Outcome", "Effect", "Effects"], rows)
    return lines


def _unique(items) -> list:
    return list(dict.fromkeys(items))


# ─── the picture ─────────────────────────────────────────────────────────────


@dataclass
class Node:
    name: str
    transient: bool
    notes: list[str] = field(default_factory=list)
    note_branches: list[list[Branch]] = field(default_factory=list)  # the branches behind each note


@dataclass
class Edge:
    tail: str
    head: str
    kind: str  # "normal" | "error" | "enter" (into a transient state)
    items: dict[str, list[str]] = field(default_factory=dict)  # label line -> operations (error edges) or {op: []}
    branches: list[Branch] = field(default_factory=list)       # the branches the edge stands for

    def lines(self) -> list[str]:
        if self.kind == "error":
            return [f"{error} ({', '.join(ops)})" if ops else error for error, ops in self.items.items()]
        return _wrap(list(self.items), per_line=3)


@dataclass
class Picture:
    title: str
    initial: str
    nodes: list[Node]
    edges: list[Edge]


def picture(spec: Spec) -> Picture:
    """The state diagram's content, independent of how it is drawn."""
    nodes = {name: Node(name, state.transient) for name, state in spec.states.items()}
    edges: dict[tuple[str, str, str], Edge] = {}
    staying: dict[str, dict[str, list[str]]] = {name: {} for name in spec.states}
    staying_branches: dict[tuple[str, str], list[Branch]] = {}

    def add(tail, head, kind, line, operation=None):
        edge = edges.setdefault((tail, head, kind), Edge(tail, head, kind))
        edge.branches.append(branch)
        ops = edge.items.setdefault(line, [])
        if operation and operation not in ops:
            ops.append(operation)

    for state in spec.states:
        for operation in spec.commands:
            for branch in spec.branches(state, operation):
                outcome = branch.outcome
                name = operation + (LAZY_MARK if outcome.lazy_init else "")
                marks = effect_marks(spec, state, outcome)
                marked = " ".join(filter(None, [name, marks]))
                if outcome.via:
                    add(state, outcome.via, "enter", name)
                    if outcome.error:
                        add(outcome.via, outcome.to, "error", _marked(spec, state, outcome))
                    else:
                        add(outcome.via, outcome.to, "normal", " ".join(filter(None, [operation, marks])))
                elif outcome.to != state:
                    if outcome.error:
                        add(state, outcome.to, "error", _marked(spec, state, outcome), name)
                    else:
                        add(state, outcome.to, "normal", marked)
                else:
                    key = "waits" if outcome.serialized else (f"✗ {outcome.error}" if outcome.error else "↻")
                    ops = staying[state].setdefault(key, [])
                    staying_branches.setdefault((state, key), []).append(branch)
                    if name not in ops:
                        ops.append(name)
    for state, groups in staying.items():
        ordered = sorted(groups.items(), key=_note_order)
        nodes[state].notes = [_note(spec, key, ops) for key, ops in ordered]
        nodes[state].note_branches = [staying_branches[(state, key)] for key, _ in ordered]
    title = f"ggufsm runtime lifecycle · spec {spec.version}"
    return Picture(title, spec.initial_state, list(nodes.values()), list(edges.values()))


def _marked(spec: Spec, state: str, outcome: Outcome) -> str:
    assert outcome.error is not None
    marks = effect_marks(spec, state, outcome, implied_by_error=True)
    return f"{outcome.error} {marks}" if marks else outcome.error


def _note_order(item) -> tuple:
    key = item[0]
    return (0 if key == "↻" else 1 if key == "waits" else 2, key)


def _note(spec: Spec, key: str, ops: list[str]) -> str:
    if key == "waits":
        every = set(ops) == {op for op in spec.commands if spec.operations[op].kind == "command"}
        return "every command waits" if every else f"waits: {', '.join(ops)}"
    prefix = "↻ " if key == "↻" else f"{key}: "
    return prefix + ", ".join(ops)


def _wrap(words: list[str], per_line: int) -> list[str]:
    return [", ".join(words[i : i + per_line]) for i in range(0, len(words), per_line)]


def legend(spec: Spec) -> str:
    return (
        f"queries ({', '.join(spec.queries)}) answer in every state and are not drawn\n"
        f"red dashed: error (recorded as last_error) · grey dashed: into a transient state · {LAZY_MARK} initialises first · "
        "↻ succeeds and stays · ✗ refused or rejected, stays\n"
        "effects: +/− request, model, error made or dropped · +token: one more token · sampling, config: applied"
    )


# ─── DOT / SVG / PNG ─────────────────────────────────────────────────────────

FONT = "Helvetica"
ERROR_COLOUR = "#c62828"
TRANSIENT_COLOUR = "#757575"


def dot_graph(spec: Spec, colour_of=None) -> graphviz.Digraph:
    """The diagram; colour_of(branches) -> colour or None, if given, recolours each edge and note by
    the branches it stands for (the conformance report colours them by result)."""
    drawing = picture(spec)
    graph = graphviz.Digraph(
        name="lifecycle",
        comment=f"{drawing.title}; generated from spec/lifecycle.yaml by `{GENERATED_BY}`",
        graph_attr={
            "label": f"{drawing.title}\n{legend(spec)}",
            "labelloc": "t",
            "fontname": FONT,
            "fontsize": "16",
            "rankdir": "TB",
            "nodesep": "0.5",
            "ranksep": "0.6",
        },
        node_attr={"fontname": FONT, "shape": "box", "style": "rounded", "margin": "0.15,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "10", "arrowsize": "0.7"},
    )
    graph.node("__start", label="", shape="point", width="0.15")
    graph.edge("__start", drawing.initial)
    for node in drawing.nodes:
        graph.node(node.name, label=_node_label(node, colour_of), **_node_style(node))
    for edge in drawing.edges:
        style = _edge_style(edge)
        colour = colour_of(edge.branches) if colour_of else None
        if colour:
            style |= {"color": colour, "fontcolor": colour, "penwidth": "2"}
        graph.edge(edge.tail, edge.head, label=_edge_label(edge), **style)
    return graph


def _node_label(node: Node, colour_of=None) -> str:
    title = f"<B>{_html(node.name)}</B>" + (" <I>(transient)</I>" if node.transient else "")
    rows = [f'<TR><TD ALIGN="CENTER">{title}</TD></TR>']
    for index, note in enumerate(node.notes):
        colour = ERROR_COLOUR if note.startswith("✗") else "#424242"
        if colour_of and index < len(node.note_branches):
            colour = colour_of(node.note_branches[index]) or colour
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="{colour}">{_html(note)}</FONT></TD></TR>')
    return f'<<TABLE BORDER="0" CELLSPACING="1" CELLPADDING="1">{"".join(rows)}</TABLE>>'


def _node_style(node: Node) -> dict:
    if node.transient:
        return {"style": "rounded,dashed,filled", "color": TRANSIENT_COLOUR, "fillcolor": "#f5f5f5", "fontcolor": "#424242"}
    return {"style": "rounded,filled", "fillcolor": "#e3f2fd", "color": "#1565c0"}


def _edge_label(edge: Edge) -> str:
    return "\n".join(edge.lines())


def _edge_style(edge: Edge) -> dict:
    # Error edges weigh nothing in the layout, so the normal flow stays straight.
    if edge.kind == "error":
        return {"color": ERROR_COLOUR, "fontcolor": ERROR_COLOUR, "style": "dashed", "weight": "0"}
    if edge.kind == "enter":
        return {"color": TRANSIENT_COLOUR, "fontcolor": TRANSIENT_COLOUR, "style": "dashed", "weight": "2"}
    return {"color": "#1565c0", "weight": "2"}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dot_source(spec: Spec) -> str:
    return dot_graph(spec).source


def render_image(spec: Spec, image_format: str) -> bytes:
    """SVG or PNG bytes drawn by graphviz's `dot`."""
    return dot_graph(spec).pipe(format=image_format)


# ─── Mermaid ─────────────────────────────────────────────────────────────────


def mermaid(spec: Spec) -> str:
    drawing = picture(spec)
    lines = [
        "---",
        f"title: {drawing.title}",
        "---",
        f"%% Generated from spec/lifecycle.yaml by `{GENERATED_BY}`; spec {spec.version}.",
        *(f"%% {line}" for line in legend(spec).splitlines()),
        "stateDiagram-v2",
        f"    [*] --> {drawing.initial}",
    ]
    for node in drawing.nodes:
        if node.transient:
            lines.append(f'    state "{node.name} (transient)" as {node.name}')
    for edge in drawing.edges:
        label = ", ".join(edge.lines())
        label = f"✗ {label}" if edge.kind == "error" else label
        lines.append(f"    {edge.tail} --> {edge.head} : {label}")
    for node in drawing.nodes:
        if node.notes:
            lines.append(f"    note right of {node.name}")
            lines += [f"        {note}" for note in node.notes]
            lines.append("    end note")
    transient = [node.name for node in drawing.nodes if node.transient]
    if transient:
        lines.append("    classDef transient fill:#f5f5f5,stroke:#757575,stroke-dasharray:5 5,color:#424242")
        lines.append(f"    class {','.join(transient)} transient")
    return "\n".join(lines) + "\n"


# ─── docs/spec ───────────────────────────────────────────────────────────────

DOC_FILES = ("lifecycle.md", "lifecycle.svg", "lifecycle.dot", "lifecycle.mmd")


def documents(spec: Spec) -> dict[str, bytes]:
    """Every generated file of docs/spec, by name."""
    return {
        "lifecycle.md": markdown(spec, diagram="lifecycle.svg").encode(),
        "lifecycle.svg": render_image(spec, "svg"),
        "lifecycle.dot": dot_source(spec).encode(),
        "lifecycle.mmd": mermaid(spec).encode(),
    }


def write_documents(spec: Spec, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in documents(spec).items():
        path = out / name
        path.write_bytes(content)
        written.append(path)
    return written
