# Two commands on a fresh machine: `make demo` (the main job on the embedded default) and
# `make test` (the whole test suite). Both create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test sanity bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The package and its runtime dependencies (editable, so the built-in suites and model cards are found).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Test extras: pytest and the parity references (CPU torch 2.13.0 from the local wheel, torchmetrics).
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/mova-bench run --model procedural --suite thunderstorm_set

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

sanity: $(VENV)/.installed
	$(BIN)/mova-bench sanity

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_eval_vs_decode.py
	$(BIN)/python benchmarks/bench_frechet.py
	$(BIN)/python benchmarks/bench_stats_memory.py

clean-venv:
	rm -rf $(VENV)
