# Flotilla — one entry per habit. `make run` and `make test` set up .venv on first use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv run test unit e2e lint audit bench faults clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: an unpinned one pulls a CUDA build of several GB.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[ai,dev]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	FLOTILLA_SANDBOX=$${FLOTILLA_SANDBOX:-true} FLOTILLA_DEMO_BOT=$${FLOTILLA_DEMO_BOT:-true} \
		$(BIN)/flotilla serve

test: $(STAMP)
	$(BIN)/pytest -q tests --ignore=tests/e2e
	$(MAKE) e2e

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

e2e: $(STAMP)
	@if [ -d tests/e2e ] && ls tests/e2e/test_*.py >/dev/null 2>&1; then \
		$(BIN)/pytest -q tests/e2e; else echo "no e2e tests yet"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy orchestrator shared whatsapp_bot sms_bot telegram_bot admin_ui
	$(MAKE) audit

# Known vulnerabilities in the installed packages (PyPI's advisory data; docs/security.md).
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off

bench: $(STAMP)
	$(BIN)/python -m bench

faults: $(STAMP)
	FLOTILLA_FAULTS_SCALE=full $(BIN)/pytest -q tests/faults tests/fuzz tests/security

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
