"""Provenance: what was judged, at which revision, on what machine, under which assumptions.

One block (schema: ``conformance/provenance.schema.json``) answers the seed's
verification questions for a conformance run or a benchmark:

- ``artifact``: the implementation (name, version, how it was started, its
  packages) and every model file it was given (name, size, sha256);
- ``revision``: ggufsm's version and git commit (dirty or not), the spec
  version and the table file's sha256;
- ``environment``: CPU model, ISA flags, kernel variants, cores, threads,
  memory, OS and kernel, Python, the compiler that built the C++ core, the
  load average before and after;
- ``assumptions``: the adapter's mapping notes, fixture seeds, timeouts,
  what the suite skipped.

Every fact is ``{"value": ..., "kind": ..., "how": ...}`` where kind is
``observed`` (measured here: read from /proc, hashed, timed, inferred from
behaviour), ``reported`` (what the implementation says of itself: its
version string, its own system info) or ``estimated`` (anything else).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA_ID = "ggufsm-provenance/1"
SCHEMA_PATH = Path(__file__).with_name("provenance.schema.json")
OBSERVED, REPORTED, ESTIMATED = "observed", "reported", "estimated"
KINDS = (OBSERVED, REPORTED, ESTIMATED)
# The ISA flags that decide which kernels run (llama.cpp's and ours), as /proc/cpuinfo names them.
ISA_FLAGS = ("sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_int8")
# Model inputs of a suite, by their SuiteInputs name (the files a run loads).
MODEL_INPUTS = ("model", "alt_model", "corrupt_model", "unsupported_model", "missing_model")
HASH_CHUNK = 1 << 20

Fact = dict[str, Any]


def fact(value: Any, kind: str, how: str = "") -> Fact:
    if kind not in KINDS:
        raise ValueError(f"a fact's kind is one of {KINDS}, not {kind!r}")
    return {"value": value, "kind": kind, "how": how} if how else {"value": value, "kind": kind}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ─── artifact ────────────────────────────────────────────────────────────────


def model_files(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each model input a run used: its file name, size and sha256 (observed while the file exists)."""
    files = []
    for role in MODEL_INPUTS:
        value = inputs.get(role)
        if not value:
            continue
        path = Path(value)
        entry: dict[str, Any] = {"role": role, "file": path.name}
        if path.is_file():
            entry["size"] = fact(path.stat().st_size, OBSERVED, "stat")
            entry["sha256"] = fact(sha256_of(path), OBSERVED, "hashed")
        else:
            entry["absent"] = fact(True, OBSERVED, "no such file when the run ended")
        files.append(entry)
    return files


def package_versions(names: Iterable[str]) -> dict[str, Any]:
    """Installed distributions of this environment: version, and where a local wheel was installed
    from, that wheel's sha256 (pip records the file in direct_url.json)."""
    found: dict[str, Any] = {}
    for name in names:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        entry: dict[str, Any] = {"version": distribution.version}
        direct = distribution.read_text("direct_url.json")
        if direct:
            url = json.loads(direct).get("url", "")
            entry["installed_from"] = url
            local = Path(url.removeprefix("file://"))
            if url.startswith("file://") and local.is_file():
                entry["sha256"] = sha256_of(local)
        found[name] = entry
    return found


def implementation_facts(impl: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """The implementation as it named itself, how it was started, and what its adapter module adds
    (a ``provenance()`` function in a ``python:`` adapter's module, run in this process)."""
    facts: dict[str, Any] = {
        "name": fact(info.get("name"), REPORTED, "the implementation's hello / adapter info"),
        "version": fact(info.get("version"), REPORTED, "the implementation's hello / adapter info"),
        "started_by": fact(impl, OBSERVED, "the --impl string the runner was given"),
        "spec_version_claimed": fact(info.get("spec_version"), REPORTED, "the implementation's hello"),
    }
    module = _adapter_module(impl)
    if module is not None:
        facts["adapter"] = fact(module.__name__, OBSERVED, "the python: factory's module")
        facts["adapter_sha256"] = fact(sha256_of(Path(module.__file__ or "")), OBSERVED, "hashed")
        extra: Callable[[], Mapping[str, Any]] | None = getattr(module, "provenance", None) or _ADAPTER_FACTS.get(
            module.__name__)
        if extra is not None:
            facts |= dict(extra())
    return facts


def _adapter_module(impl: str) -> Any:
    prefix, _, rest = impl.partition(":")
    if prefix != "python":
        return None
    try:
        return importlib.import_module(rest.partition(":")[0])
    except ImportError:
        return None


def mapping_notes(impl: str) -> str | None:
    """The adapter's own account of its mapping decisions (its module docstring)."""
    module = _adapter_module(impl)
    return (module.__doc__ or "").strip() or None if module is not None else None


# ─── revision ────────────────────────────────────────────────────────────────


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(directory: Path) -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD", cwd=directory)
    if commit is None:
        return {"git_commit": fact(None, OBSERVED, f"{directory} is not a git checkout")}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=directory)
    return {"git_commit": fact(commit, OBSERVED, f"git rev-parse HEAD in {directory.name}"),
            "git_dirty": fact(bool(status), OBSERVED, "git status --porcelain (tracked files)")}


def source_revision(directory: str | None) -> dict[str, Any]:
    """The commit of a peer's source checkout (GGUFSM_LLAMA_CPP_SOURCE), observed with git; nothing if unset."""
    if not directory:
        return {}
    found = git_revision(Path(directory))
    return {f"source_{name}": value for name, value in found.items()} | {
        "source": fact(directory, OBSERVED, "the checkout the peer was built from (as the run was told)")}


def revision() -> dict[str, Any]:
    import ggufsm
    from ggufsm.spec import load_spec
    from ggufsm.spec.table import TABLE_PATH

    spec = load_spec()
    package_root = Path(ggufsm.__file__).resolve().parent
    return {"ggufsm_version": fact(_version_of("ggufsm"), OBSERVED, "installed distribution"),
            **git_revision(package_root),
            "spec_version": fact(spec.version, OBSERVED, "the loaded table"),
            "table_sha256": fact(sha256_of(TABLE_PATH), OBSERVED, f"hashed {TABLE_PATH.name}")}


def _version_of(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ─── environment ─────────────────────────────────────────────────────────────


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return None


def core_compiler() -> str | None:
    """The compiler that built ggufsm._core, from the .comment section the compiler writes into it."""
    try:
        from ggufsm import _core
    except ImportError:
        return None
    data = Path(_core.__file__ or "").read_bytes()
    found = re.findall(rb"(GCC: \([^)]*\) [0-9][0-9.]*|clang version [0-9][0-9.]*)", data)
    return found[-1].decode() if found else None


def core_kernel_variant() -> str | None:
    try:
        from ggufsm._core import kernels
    except ImportError:
        return None
    return str(kernels.active_isa())


# Variables that change what a peer does (GGML_NO_BACKTRACE: abort at once on an assert, ...).
ENV_PREFIXES = ("GGML_", "GGUFSM_", "LLAMA_", "OMP_")


def relevant_environment() -> dict[str, str]:
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(ENV_PREFIXES)}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def environment(load_before: list[float] | None = None) -> dict[str, Any]:
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "cpu_model": fact(cpu.get("model name"), OBSERVED, "/proc/cpuinfo"),
        "isa_flags": fact({flag: flag in flags for flag in ISA_FLAGS}, OBSERVED, "/proc/cpuinfo flags"),
        "ggufsm_kernel_variant": fact(core_kernel_variant(), OBSERVED, "ggufsm._core.kernels.active_isa()"),
        "cores": fact(os.cpu_count(), OBSERVED, "os.cpu_count()"),
        "threads_available": fact(len(os.sched_getaffinity(0)), OBSERVED, "sched_getaffinity"),
        "memory_bytes": fact(_meminfo_total(), OBSERVED, "/proc/meminfo MemTotal"),
        "os": fact(_os_release(), OBSERVED, "/etc/os-release"),
        "kernel": fact(platform.release(), OBSERVED, "uname -r"),
        "python": fact(sys.version.split()[0], OBSERVED, "sys.version"),
        "core_compiler": fact(core_compiler(), OBSERVED, "ggufsm._core's .comment section"),
        "load_average_before": fact(load_before, OBSERVED, "os.getloadavg() (1, 5, 15 min)"),
        "load_average_after": fact(load_average(), OBSERVED, "os.getloadavg() (1, 5, 15 min)"),
    }


# ─── the block ───────────────────────────────────────────────────────────────


def collect(*, impl: str, info: Mapping[str, Any], inputs: Mapping[str, Any], options: Mapping[str, Any],
            skipped: Iterable[str] = (), load_before: list[float] | None = None,
            packages: Iterable[str] = ("ggufsm",)) -> dict[str, Any]:
    """The provenance of one run of `impl` (call it while the run's input files still exist)."""
    notes = mapping_notes(impl)
    return {
        "schema": SCHEMA_ID,
        "artifact": {
            "implementation": implementation_facts(impl, info),
            "packages": fact(package_versions(packages), OBSERVED, "importlib.metadata of the runner's environment"),
            "model_files": model_files(inputs),
        },
        "revision": revision(),
        "environment": environment(load_before),
        "assumptions": {
            "mapping_notes": fact(notes, REPORTED, "the adapter module's docstring") if notes else
            fact(None, REPORTED, "no python: adapter: the implementation documents its own mapping"),
            "inputs": fact(dict(inputs), OBSERVED, "the suite inputs the cases used"),
            "options": fact(dict(options), OBSERVED, "the runner's options (timeouts, walk seeds and counts, globs)"),
            "skipped": fact(sorted(skipped), OBSERVED, "cases reported not supported or left out by --cases"),
            "environment_variables": fact(relevant_environment(), OBSERVED,
                                          f"the runner's variables starting {', '.join(ENV_PREFIXES)}"),
        },
    }


def validate(block: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError where `block` does not follow the schema."""
    import jsonschema

    jsonschema.validate(block, json.loads(SCHEMA_PATH.read_text()))


RESULTS_SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


def registry() -> Any:
    """The schemas that refer to this block by its $id (results.json's, a benchmark record's) resolve it here."""
    from referencing import Registry, Resource

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return Registry().with_resource(schema["$id"], Resource.from_contents(schema))


def validate_against(data: Any, schema_path: Path) -> None:
    """Raise jsonschema.ValidationError where `data` does not follow the schema at `schema_path` (which may
    refer to the provenance block)."""
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, registry=registry()).validate(data)


# ─── Markdown ────────────────────────────────────────────────────────────────


def _shown(entry: Any) -> str:
    if isinstance(entry, dict) and "kind" in entry:
        value = entry["value"]
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
        return f"{text} *({entry['kind']})*"
    return json.dumps(entry, ensure_ascii=False)


def markdown(block: Mapping[str, Any]) -> list[str]:
    """The block as a Markdown section: facts marked observed / reported / estimated."""
    artifact, revision_facts, env = block["artifact"], block["revision"], block["environment"]
    lines = ["### Provenance", "", ("Each fact is *observed* (measured by the runner), *reported* (what the "
                                   "implementation says of itself) or *estimated*."), "", "| fact | value |", "| --- | --- |"]
    for name, entry in artifact["implementation"].items():
        lines.append(f"| implementation {name} | {_cell(_shown(entry))} |")
    for name, entry in artifact["packages"]["value"].items():
        lines.append(f"| package {name} | {_cell(json.dumps(entry))} *(observed)* |")
    for model in artifact["model_files"]:
        described = ", ".join(f"{key} {_shown(value)}" for key, value in model.items() if key not in ("role", "file"))
        lines.append(f"| {model['role']} file `{model['file']}` | {_cell(described)} |")
    for name, entry in revision_facts.items():
        lines.append(f"| {name} | {_cell(_shown(entry))} |")
    for name, entry in env.items():
        lines.append(f"| {name} | {_cell(_shown(entry))} |")
    assumptions = block["assumptions"]
    for name in ("options", "skipped"):
        lines.append(f"| {name} | {_cell(_shown(assumptions[name]))} |")
    lines += ["", ("The adapter's mapping notes (assumptions that could change the result) and the inputs are in "
                   "`results.json` under `provenance.assumptions`."), ""]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def for_run(impl: str, run: Any, options: Mapping[str, Any], load_before: list[float] | None) -> dict[str, Any]:
    """The provenance of a finished conformance run (a RunResult) of `impl`."""
    from ggufsm.conformance.run.runner import NOT_SUPPORTED

    skipped = [result.id for result in run.results if result.status == NOT_SUPPORTED]
    packages = ["ggufsm", *_ADAPTER_PACKAGES.get(_adapter_module_name(impl), ())]
    return collect(impl=impl, info=run.info, inputs=run.inputs, options=options, skipped=skipped,
                   load_before=load_before, packages=packages)


# The distributions a python: adapter drives (their versions and wheel hashes are part of the artifact).
_ADAPTER_PACKAGES: dict[str, tuple[str, ...]] = {
    "ggufsm.conformance.adapters.llama_cpp_python": ("llama_cpp_python", "numpy"),
    "ggufsm.conformance.adapters.llama_cpp_c": ("llama_cpp_python",),
    "ggufsm.conformance.adapters.gpt4all": ("gpt4all",),
    "ggufsm.conformance.adapters.llama_server": (),
}


def _llama_cpp_library_facts() -> Mapping[str, Any]:
    from ggufsm.conformance.adapters.llama_cpp_c import provenance

    return provenance()


# Facts for adapters that do not say them themselves (the llama-cpp-python adapter drives the same library).
_ADAPTER_FACTS: dict[str, Callable[[], Mapping[str, Any]]] = {
    "ggufsm.conformance.adapters.llama_cpp_python": _llama_cpp_library_facts,
}


def _adapter_module_name(impl: str) -> str:
    prefix, _, rest = impl.partition(":")
    return rest.partition(":")[0] if prefix == "python" else ""
