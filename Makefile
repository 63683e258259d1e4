# Two commands on a fresh machine: `make run` (demo pipeline) and `make test`. Both bootstrap .venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make run SEED=N`: the demo's data and training from seed N (own data and output folders).
SEED ?= 0
DEMO_DATA := demo_data$(if $(filter-out 0,$(SEED)),_seed$(SEED))
DATA ?= $(DEMO_DATA)
OUTPUT ?= output$(if $(filter-out 0,$(SEED)),_seed$(SEED))
ARGS ?=
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run lint test bench demo-data clean

setup: $(STAMP)

# Re-installs only when the lock or setup.py changed.
$(STAMP): requirements.lock setup.py
	@bash scripts/bootstrap.sh $(VENV)
	@touch $(STAMP)

demo-data: setup
	@$(VENV)/bin/cxr demo-data --output $(DEMO_DATA) --seed $(SEED)

run: setup
	@if [ "$(DATA)" = "$(DEMO_DATA)" ] && [ ! -d "$(DATA)" ]; then $(VENV)/bin/cxr demo-data --output $(DATA) --seed $(SEED); fi
	$(VENV)/bin/cxr run --data $(DATA) --output $(OUTPUT) $(if $(filter $(DEMO_DATA),$(DATA)),--demo --seed $(SEED)) $(ARGS)

# ruff.toml: Google style, 2-space indent, lines <= 100, single quotes.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests $(ARGS)

bench: setup
	$(PY) -m benchmarks.run_all $(ARGS)

clean:
	rm -rf output output_seed* demo_data demo_data_seed* .pytest_cache
