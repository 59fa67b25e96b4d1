# The two commands README.md opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint clean

$(BIN)/atlas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/atlas

demo: venv
	$(BIN)/atlas demo

lint: venv
	$(BIN)/ruff check atlas tests
	$(BIN)/ruff format --check atlas tests
	$(BIN)/mypy

test: lint
	$(BIN)/atlas es start
	$(BIN)/pytest

clean:
	-$(BIN)/atlas es stop
	rm -rf $(VENV)
