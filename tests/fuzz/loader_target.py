"""The loader's fuzz target: any bytes through the one validation `load_model` and `inspect` run.

`check(data)` must end in one of the table's named errors or in a validated
model whose every metadata value and tensor view can be read; anything else (a
raw Python exception; a crash, which ASAN reports in `make test-sanitize`) is a
finding. `fuzz_loader.py` drives it with atheris; test_corpus.py replays the
committed corpus through it in every test run.
"""

from __future__ import annotations

from ggufsm.reference.model.loaded_model import validate_model_file
from ggufsm.spec.errors import GgufsmError


def check(data: bytes) -> None:
    try:
        model = validate_model_file(data)
    except GgufsmError:
        return
    try:
        for key in model.metadata:
            model.metadata[key]
        for name in model.tensors:
            model.tensor_data(name).sum()
    finally:
        model.close()
