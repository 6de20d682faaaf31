# Docent. `make run` serves the app on embedded services; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bench lint install system clean

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

# Debian packages the tests use (apt-get when root): Chromium for the browser tests (Playwright drives
# it through executable_path), Tesseract and jbig2dec for reading scanned PDFs. `make run` needs none.
SYSTEM := chromium:chromium tesseract:tesseract-ocr jbig2dec:jbig2dec
system:
	@missing=""; for p in $(SYSTEM); do command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "install Debian's$$missing for the tests" >&2; exit 1; fi; fi

test: $(STAMP) system
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
