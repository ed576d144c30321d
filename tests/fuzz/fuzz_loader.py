"""Coverage-guided fuzzing of the loader with atheris (`make fuzz-ci`: 60 s; `make fuzz`: longer, opt-in).

    python tests/fuzz/fuzz_loader.py tests/fuzz/corpus -max_total_time=60

atheris guides by the coverage of the Python it instruments (the validation in
reference/ and the tokenizers); the C++ parser is not instrumented (that would
need clang's libFuzzer at build time), so it is reached through mutations of
the corpus, and run under ASAN and UBSAN by `make test-sanitize`. Inputs that
find something are written as crash-* files; new coverage goes to the corpus
directory given first (pass a scratch copy to keep the committed one small).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["ggufsm"]):
    from loader_target import check


def test_one_input(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
