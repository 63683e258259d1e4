# Two commands on a fresh machine: `make run` (demo pipeline) and `make test`. Both bootstrap .venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= demo_data
OUTPUT ?= output
ARGS ?=
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run lint test bench demo-data clean

setup: $(STAMP)

# Re-installs only when the lock or setup.py changed.
$(STAMP): requirements.lock setup.py
	@bash scripts/bootstrap.sh $(VENV)
	@touch $(STAMP)

demo-data: setup
	@$(VENV)/bin/cxr demo-data --output $(DATA)

run: setup
	@if [ "$(DATA)" = demo_data ] && [ ! -d demo_data ]; then $(VENV)/bin/cxr demo-data --output demo_data; fi
	$(VENV)/bin/cxr run --data $(DATA) --output $(OUTPUT) $(if $(filter demo_data,$(DATA)),--demo) $(ARGS)

# ruff.toml: Google style, 2-space indent, lines <= 100, single quotes.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests $(ARGS)

bench: setup
	$(PY) -m benchmarks.run_all $(ARGS)

clean:
	rm -rf $(OUTPUT) demo_data .pytest_cache
