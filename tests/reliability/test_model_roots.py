"""serve-stdio --model-root: a path outside every root, after resolving symlinks and relative paths, is refused.

The refusal is the table's ModelUnavailable for the load (the handle moves to
RecoverableError, last_error records it), and its message names the path as
given, nothing found on the way (not whether it exists, nor a symlink's target).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ggufsm.conformance import protocol
from ggufsm.reference.runtime import Runtime
from ggufsm.spec.errors import ModelUnavailable
from ggufsm.spec.names import State


@pytest.fixture
def rooted(tmp_path, tiny_model):
    """A root holding a copy of the model, a symlink out of it, and a model outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    inside = root / "model.gguf"
    inside.write_bytes(tiny_model.read_bytes())
    secret = outside / "secret.gguf"
    secret.write_bytes(tiny_model.read_bytes())
    (root / "link.gguf").symlink_to(secret)
    (root / "inner-link.gguf").symlink_to(inside)
    return root, outside, secret


def runtime_in(root) -> Runtime:
    runtime = Runtime(model_roots=[root])
    runtime.init_runtime(n_ctx=64, n_threads=1)
    return runtime


def test_a_path_under_a_root_loads_and_so_does_a_symlink_that_stays_inside(rooted):
    root, _, _ = rooted
    for name in ("model.gguf", "inner-link.gguf"):
        runtime = runtime_in(root)
        runtime.load_model(root / name)
        assert runtime.state == State.Ready


@pytest.mark.parametrize("path", ["secret", "link", "dotdot", "relative", "missing", "etc"])
def test_a_path_outside_the_roots_is_model_unavailable_naming_only_the_path_given(rooted, path, monkeypatch):
    root, outside, secret = rooted
    monkeypatch.chdir(root)
    given = {"secret": str(secret), "link": str(root / "link.gguf"), "dotdot": str(root / ".." / "outside" / "secret.gguf"),
             "relative": os.path.join("..", "outside", "secret.gguf"), "missing": str(outside / "nothing.gguf"),
             "etc": "/etc/passwd"}[path]
    runtime = runtime_in(root)
    with pytest.raises(ModelUnavailable) as raised:
        runtime.load_model(given)
    assert runtime.state == State.RecoverableError and runtime.last_error is raised.value
    message = raised.value.message
    assert repr(given) in message and "outside the model roots" in message
    assert str(secret) not in message.replace(repr(given), "")   # a symlink's target is never told
    assert "exist" not in message and "director" not in message


def test_a_root_prefix_is_not_a_root(tmp_path, tiny_model):
    """/data/models-private is not under /data/models."""
    root, sibling = tmp_path / "models", tmp_path / "models-private"
    root.mkdir()
    sibling.mkdir()
    (sibling / "m.gguf").write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelUnavailable):
        runtime_in(root).load_model(sibling / "m.gguf")


def test_serve_stdio_takes_repeatable_model_roots(rooted, tmp_path, tiny_model):
    root, outside, secret = rooted
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.gguf").write_bytes(tiny_model.read_bytes())
    requests = [protocol.request(1, "init_runtime", {"n_ctx": 64, "n_threads": 1}),
                protocol.request(2, "load_model", {"path": str(secret)}),
                protocol.request(3, "reset"),
                protocol.request(4, "load_model", {"path": str(other / "m.gguf")})]
    done = subprocess.run([sys.executable, "-m", "ggufsm", "serve-stdio", "--model-root", str(root),
                           "--model-root", str(other)], input="".join(map(protocol.encode, requests)),
                          capture_output=True, text=True, timeout=120, check=True)
    answers = {message["id"]: message for message in map(json.loads, done.stdout.splitlines())}
    assert answers[2]["error"]["code"] == "ModelUnavailable" and answers[2]["state"] == "RecoverableError"
    assert answers[4]["ok"] and answers[4]["state"] == "Ready"


def test_serve_stdio_refuses_a_root_that_is_not_a_directory(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ggufsm", "serve-stdio", "--model-root", str(tmp_path / "none")],
                          input="", capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not a directory" in done.stderr
