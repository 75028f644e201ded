# Shoebox: `make run` starts everything, `make test` runs every test.
# Both install what they need first (a venv in .venv, Debian packages for tests).

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip on these machines warns about every missing local index folder: keep the log readable.
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LIBRARY ?=

.PHONY: run test install install-test system-deps bench clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET_PIP)

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt $(QUIET_PIP)
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-test.txt $(QUIET_PIP)
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

system-deps:
	@scripts/system-deps.sh

run: install
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py models pull --if-online
	@if [ -n "$(LIBRARY)" ]; then $(BIN)/python manage.py import_library "$(LIBRARY)"; fi
	$(BIN)/python manage.py serve

test: install-test system-deps
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest

# Benchmarks are not part of `make test`; each prints ratios against a baseline run in the
# same process. Results and the machine they ran on: BENCHMARKS.md.
bench: install-test system-deps
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/clip_bench.py
	$(BIN)/python bench/faces_bench.py
	$(BIN)/python bench/ocr_bench.py
	$(BIN)/python bench/caption_bench.py --model-arch smolvlm-500m --photos 4 --batch 4
	$(BIN)/python bench/search_bench.py
	$(BIN)/python bench/grid_bench.py
	$(BIN)/python bench/review_bench.py
	$(BIN)/python bench/vocabulary_bench.py

clean-data:
	-$(BIN)/python manage.py shoebox_db stop
	rm -rf data
