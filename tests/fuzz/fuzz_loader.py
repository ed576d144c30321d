"""Coverage-guided fuzzing of the loader with atheris (`make fuzz-ci`: 60 s; `make fuzz`: longer, opt-in).

    python tests/fuzz/make_corpus.py build/fuzz/corpus
    python tests/fuzz/fuzz_loader.py build/fuzz/corpus -max_total_time=60

atheris guides by the coverage of the Python it instruments (the validation in
reference/ and the tokenizers); the C++ parser is not instrumented (that would
need clang's libFuzzer at build time), so it is reached through mutations of
the corpus, and run under ASAN and UBSAN by `make test-sanitize`. Inputs that
find something are written as crash-* files; new coverage goes to the corpus
directory given first (a scratch folder: the seed is written, never committed).
"""

from __future__ import annotations

import inspect
import sys

import atheris

with atheris.instrument_imports(include=["loader_target"]):
    from loader_target import check


def instrument_package(prefix: str = "ggufsm") -> int:
    """Instrument, in place, every Python function and method of the loaded `prefix` modules.

    atheris' import hook cannot wrap the editable install's loader (scikit-build-core's redirect), and
    instrument_all() also rewrites all of numpy (minutes); this takes only ours. Returns the count."""
    seen: set[int] = set()

    def visit(value, module_name: str) -> int:
        if id(value) in seen:
            return 0
        seen.add(id(value))
        if inspect.isfunction(value) and value.__module__ == module_name:
            atheris.instrument_func(value)
            return 1
        if inspect.isclass(value) and value.__module__ == module_name:
            return sum(visit(member, module_name) for member in vars(value).values())
        if isinstance(value, (staticmethod, classmethod)):
            return visit(value.__func__, module_name)
        if isinstance(value, property) and value.fget is not None:
            return visit(value.fget, module_name)
        return 0

    return sum(visit(value, name) for name, module in list(sys.modules.items())
               if name.startswith(prefix) and module is not None for value in list(vars(module).values()))


def test_one_input(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    check(b"")  # imports what a load imports (the tokenizers), so that it is instrumented too
    print(f"instrumented {instrument_package()} functions of ggufsm", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
