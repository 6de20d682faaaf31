# Docent. `make run` serves the app on embedded services; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench lint install browser clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build here; a bare range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,bench]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	exec $(PY) -m assistant.stack

# Debian's Chromium for the browser tests (Playwright drives it through executable_path).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package for the browser tests" >&2; exit 1; fi; }

test: $(STAMP) browser
	$(PY) manage.py makemigrations --check --dry-run --settings=assistant.settings.test >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

ONLY ?=
bench: $(STAMP)
	$(PY) -m bench $(if $(ONLY),--only $(ONLY),)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf var/test .pytest_cache
