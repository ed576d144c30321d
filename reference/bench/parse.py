"""`ggufsm bench parse`: open + parse + validate of real models, ggufsm beside gguf.GGUFReader.

ggufsm's side is the whole `open_gguf(path)`: memory map, parse and validate
in C++ (header, every metadata value, tensor infos, layout, architecture,
hyperparameters, tensor shapes, tokenizer), then the metadata as Python values
and the tensor infos. The peer's side is `gguf.GGUFReader(path)`, which reads
the same container into numpy views and validates less. Both run in this one
process, one after the other, on a page cache warmed by one untimed read, and
the best of N runs of each is kept; the ratio compares like with like.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SECTION = "## GGUF parse"


def register_bench(bench_commands) -> None:
    parser = bench_commands.add_parser("parse", help="open + parse + validate of real models, beside gguf.GGUFReader")
    parser.add_argument("models", nargs="*", default=["smollm2", "gemma3"],
                        help="registry names or GGUF paths (default: smollm2 gemma3)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader; the best is kept (default 3)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help=f"write the table into this Markdown file's '{SECTION}' section (created or replaced)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ggufsm.reference.model.registry import resolve

    rows = [measure(resolve(name, pull=True), args.repeat, args.record) for name in args.models]
    command = " ".join(["ggufsm bench parse", *args.models, f"--repeat {args.repeat}"])
    table = render_markdown(rows, command)
    print(table)
    if args.markdown is not None:
        write_section(args.markdown, table)
    return 0


def timings(repeat: int, action) -> list[float]:
    """Seconds of each of `repeat` runs of action (at least one)."""
    seconds = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(path: Path, repeat: int, record=None) -> dict:
    import gguf

    from ggufsm import _core
    from ggufsm.reference.model.gguf_file import open_gguf

    warm_page_cache(path)

    def ours() -> None:
        open_gguf(path).close()

    def core_only() -> None:
        _core.open_gguf_path(str(path))

    def theirs() -> None:
        gguf.GGUFReader(path)

    samples = {"gguf.GGUFReader": timings(repeat, theirs), "ggufsm open_gguf": timings(repeat, ours),
               "ggufsm of which C++": timings(repeat, core_only)}
    if record is not None:
        record.model(path)
        record.peer_package("gguf")
        for reader, seconds in samples.items():
            for value in seconds:
                record.sample(f"{path.name}: {reader}", value, "s", better="lower",
                              runner="gguf" if reader.startswith("gguf.") else "ggufsm", model=path.name)
        record.compare(f"{path.name}: gguf.GGUFReader / ggufsm open_gguf", f"{path.name}: gguf.GGUFReader",
                       f"{path.name}: ggufsm open_gguf", how="run by run (the page cache warm for both)")
    theirs_s, ours_s, core_s = (min(seconds) for seconds in samples.values())
    return {"model": path.name, "file_size": path.stat().st_size, "reader_s": theirs_s, "ggufsm_s": ours_s,
            "core_s": core_s, "ratio": theirs_s / ours_s}


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as model_file:
        while model_file.read(1 << 24):
            pass


def render_markdown(rows: list[dict], command: str) -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (best of N runs each, one process, warm page cache; load average {load}, "
        f"{os.cpu_count()} cores).",
        "ggufsm `open_gguf`: memory map + C++ parse + full validation + metadata as Python values;",
        "of which C++ only: `_core.open_gguf_path` (memory map, parse, validate; no Python values).",
        "gguf.GGUFReader: `GGUFReader(path)` (container only, numpy views).",
        "",
        "| model | file size | gguf.GGUFReader | ggufsm open_gguf | of which C++ | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['file_size']:,} B | {row['reader_s'] * 1e3:,.0f} ms | "
                     f"{row['ggufsm_s'] * 1e3:,.1f} ms | {row['core_s'] * 1e3:,.1f} ms | {row['ratio']:,.0f}x |")
    return "\n".join(lines) + "\n"


def write_section(markdown: Path, table: str) -> None:
    """Replace (or append) the section in `markdown`, leaving the others as they are."""
    text = markdown.read_text(encoding="utf-8") if markdown.exists() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + table
    else:
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start] + table + (text[following:] if following >= 0 else "")
    markdown.write_text(text, encoding="utf-8")
