# Two commands on a fresh machine:
#   make demo   installs everything and runs the demo on the embedded default model
#   make test   installs everything and runs the test suite
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo test lint

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/lincae demo --out demo

test: setup
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
