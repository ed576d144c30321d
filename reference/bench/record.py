"""A benchmark's record: what ran, on what, every sample, and the limits measured beside them.

`ggufsm bench <any> --json PATH` writes one (schema: ``record.schema.json`` beside this module,
``ggufsm-bench/1``). The CLI (reference/cli/bench.py) makes the record before the bench's handler
runs and gives it to the handler as ``args.record``; the handler only adds what it measures, and
the CLI finishes and writes it. A bench module uses it like this::

    def run(args) -> int:
        record = args.record
        record.model(path)                                      # each model file it runs (name, size, sha256)
        record.peer_binary(LLAMA_BENCH)                         # a peer's executable run side by side
        record.peer_package("llama_cpp_python")                 # a peer driven in-process (wheel version)
        for _ in range(args.repeat):
            record.sample("decode in place", tok_s, "tok/s")    # EVERY sample, in the order taken
            record.limit("read bandwidth", gbs, "GB/s")         # a measured limit, sampled beside it
        record.compare("in place / read bandwidth", "decode in place", "read bandwidth",
                       factor=bytes_per_token / 1e9, how="tok/s x bytes per token / read bandwidth")
        record.fact("bytes_per_token", bytes_per_token, OBSERVED, "weights + f16 KV at the middle step")
        print(table)

- A series is one quantity of one runner (``runner="ggufsm"`` unless said), one sample per round;
  min, median and max are computed from the samples when the record is finished, never typed in.
- A comparison is numerator x factor / denominator, taken round by round over two series of the
  same length (samples paired by index: the moment they share); the report renders its median
  and range. Against a limit series it is the distance to that limit.
- ``record.fact`` keeps anything else a reader needs (observed / reported / estimated, as the
  provenance block marks every fact).

Outside the CLI (a test, a script), ``Record.for_args("decode", args)`` makes one the same way.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ggufsm.conformance import provenance
from ggufsm.conformance.provenance import ESTIMATED, OBSERVED, REPORTED, fact

SCHEMA_ID = "ggufsm-bench/1"
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")
MEASURE, LIMIT = "measure", "limit"
HIGHER, LOWER = "higher", "lower"
__all__ = ["Record", "OBSERVED", "REPORTED", "ESTIMATED", "validate", "SCHEMA_ID"]
# Options that are the record's own plumbing, not the bench's.
_NOT_OPTIONS = ("handler", "record", "json", "debug", "command", "bench_command")


class Record:
    def __init__(self, bench: str, options: Mapping[str, Any], argv: Iterable[str] | None = None):
        self.bench = bench
        self.options = {key: _plain(value) for key, value in options.items() if key not in _NOT_OPTIONS}
        self.command = ["ggufsm", *(sys.argv[1:] if argv is None else argv)]
        self.started = _now()
        self.load_before = provenance.load_average()
        self.series: dict[str, dict[str, Any]] = {}
        self.comparisons: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}
        self.models: list[dict[str, Any]] = []
        self.peers: dict[str, Any] = {}
        self.packages: list[str] = ["ggufsm"]

    @classmethod
    def for_args(cls, bench: str, args: Any, argv: Iterable[str] | None = None) -> Record:
        return cls(bench, vars(args), argv)

    # ─── what a bench adds ───────────────────────────────────────────────────

    def sample(self, name: str, value: float, unit: str, *, runner: str = "ggufsm", better: str = HIGHER,
               role: str = MEASURE, **labels: Any) -> None:
        """One sample of the series `name` (made on its first sample; its unit, runner and role stay)."""
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = {"name": name, "runner": runner, "role": role, "unit": unit,
                                          "better": better, "samples": []}
            if labels:
                series["labels"] = {key: _plain(value) for key, value in labels.items()}
        elif series["unit"] != unit:
            raise ValueError(f"series {name!r} is in {series['unit']}, not {unit}")
        if not math.isfinite(value):
            raise ValueError(f"series {name!r}: a sample must be a finite number, not {value!r}")
        series["samples"].append(float(value))

    def limit(self, name: str, value: float, unit: str, **labels: Any) -> None:
        """One sample of a measured limit (read bandwidth, int8 peak): the ceiling its measures are held to."""
        self.sample(name, value, unit, runner="machine", role=LIMIT, **labels)

    def compare(self, name: str, numerator: str, denominator: str, *, factor: float = 1.0, how: str = "") -> None:
        entry: dict[str, Any] = {"name": name, "numerator": numerator, "denominator": denominator}
        if factor != 1.0:
            entry["factor"] = float(factor)
        if how:
            entry["how"] = how
        self.comparisons.append(entry)

    def fact(self, name: str, value: Any, kind: str, how: str = "") -> None:
        self.facts[name] = fact(_plain(value), kind, how)

    def model(self, path: Path | str, role: str = "model") -> None:
        """A model file the bench ran: its name, size and sha256 (observed)."""
        entries = provenance.model_files({"model": str(path)})
        for entry in entries:
            entry["role"] = role
        if not any(known["file"] == Path(path).name for known in self.models):
            self.models += entries

    def peer_binary(self, binary: Path | str, name: str | None = None) -> None:
        """A peer's executable run side by side: its path, size and sha256, and the source it was built
        from (the build's CMakeCache.txt names it) at the commit git observes there."""
        binary = Path(binary)
        self.peers[name or binary.name] = peer_binary_facts(binary)

    def peer_package(self, distribution: str) -> None:
        """A peer driven in this process (llama-cpp-python): its version and wheel hash go with the packages."""
        if distribution not in self.packages:
            self.packages.append(distribution)

    # ─── finishing ───────────────────────────────────────────────────────────

    def finish(self) -> dict[str, Any]:
        """The record as JSON-ready data (provenance taken now: load average after, kernel variant in use)."""
        block = provenance.collect(impl=f"ggufsm bench {self.bench}", info=_ggufsm_info(), inputs={},
                                   options=self.options, load_before=self.load_before, packages=self.packages)
        block["artifact"]["model_files"] = self.models
        if self.peers:
            block["artifact"]["peers"] = self.peers
        block["assumptions"]["mapping_notes"] = fact(None, REPORTED, "a benchmark: no adapter")
        threads = self.options.get("threads")
        if threads is not None:
            block["environment"]["threads_used"] = fact(threads, OBSERVED, "the bench's --threads option")
        series = [summarised(entry) for entry in self.series.values()]
        return {"schema": SCHEMA_ID, "bench": self.bench, "command": self.command, "options": self.options,
                "repeat": self.options.get("repeat", self.options.get("rounds")), "started": self.started,
                "finished": _now(), "provenance": block, "series": series, "comparisons": self.comparisons,
                "facts": self.facts}

    def write(self, path: Path) -> dict[str, Any]:
        data = self.finish()
        validate(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return data


def summarised(series: Mapping[str, Any]) -> dict[str, Any]:
    samples = series["samples"]
    summary = ({"n": len(samples), "min": min(samples), "median": statistics.median(samples), "max": max(samples)}
               if samples else {"n": 0})
    return dict(series) | summary


def paired(record: Mapping[str, Any], comparison: Mapping[str, Any]) -> list[float]:
    """A comparison's values, round by round, from the two series' samples."""
    by_name = {series["name"]: series["samples"] for series in record["series"]}
    top, bottom = by_name[comparison["numerator"]], by_name[comparison["denominator"]]
    if len(top) != len(bottom):
        raise ValueError(f"{comparison['name']}: {len(top)} samples against {len(bottom)}; a comparison pairs rounds")
    factor = comparison.get("factor", 1.0)
    return [a * factor / b for a, b in zip(top, bottom, strict=True)]


def peer_binary_facts(binary: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {"path": fact(str(binary), OBSERVED, "the executable the bench ran")}
    if not binary.is_file():
        return facts | {"absent": fact(True, OBSERVED, "no such file")}
    facts |= {"size": fact(binary.stat().st_size, OBSERVED, "stat"),
              "sha256": fact(provenance.sha256_of(binary), OBSERVED, "hashed")}
    source = _cmake_source(binary)
    if source is not None:
        facts |= provenance.source_revision(source)
        facts["source"] = fact(source, OBSERVED, "CMAKE_HOME_DIRECTORY in the build's CMakeCache.txt")
    return facts


def _cmake_source(binary: Path) -> str | None:
    for directory in binary.resolve().parents:
        cache = directory / "CMakeCache.txt"
        if cache.is_file():
            for line in cache.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("CMAKE_HOME_DIRECTORY:"):
                    return line.partition("=")[2].strip()
            return None
    return None


def _ggufsm_info() -> dict[str, Any]:
    import ggufsm
    from ggufsm.spec import load_spec

    return {"name": "ggufsm", "version": ggufsm.__version__, "spec_version": load_spec().version}


def _plain(value: Any) -> Any:
    """An option's value as JSON (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def validate(data: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError where `data` does not follow the record's schema (and the
    provenance schema it refers to)."""
    provenance.validate_against(data, SCHEMA_PATH)
