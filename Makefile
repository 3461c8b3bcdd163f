# The two commands: `make demo` runs the pipeline end to end, `make test` passes the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint format test e2e chaos demo demo-stop demo-clean airflow bench clean

$(STAMP): requirements.txt pyproject.toml devtools/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip install --quiet --no-deps -e devtools
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@skips=$$(grep -ro "fmt: skip" plugins/wecom --include=*.py | wc -l); if [ "$$skips" -gt 9 ]; then \
	  echo "plugins/wecom has $$skips '# fmt: skip' (at most 9): let ruff format format"; exit 1; fi

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

e2e: install
	$(BIN)/python tests/system/e2e.py

chaos: install
	$(BIN)/python tests/system/chaos.py $(CHAOS_ARGS)

demo: install
	$(BIN)/python -m wecom_dev.demo run

airflow: install
	$(BIN)/python -m wecom_dev.demo airflow

demo-stop: install
	$(BIN)/python -m wecom_dev.demo stop

demo-clean: install
	$(BIN)/python -m wecom_dev.demo clean

bench: install
	$(BIN)/python bench/token_cache.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/directory_sync.py
	$(BIN)/python bench/reminder_scan.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/callbacks.py
	$(BIN)/python bench/answers.py
	$(BIN)/python bench/changes.py

clean:
	rm -rf $(VENV) build *.egg-info plugins/*.egg-info devtools/*.egg-info .demo .e2e .chaos test-artifacts
