# Two commands on a fresh machine: `make demo` (the main job on the embedded default) and
# `make test` (the whole test suite). Both create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test sanity bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The package and its runtime dependencies (editable: the checkout's prompts/ and models/ are read in place).
$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Which torch the parity tests get, installed before the test extras (they only ask for a range,
# which the installed build satisfies). The default is the CPU wheel on our machines' disk; a GPU
# box overrides it, e.g. `make test TORCH_SPEC='torch==2.14.1'` (pick the index with PIP_INDEX_URL),
# or `TORCH_SPEC=` to keep the torch already in the venv.
TORCH_SPEC ?= torch==2.13.0

# Test extras: pytest, the parity references (torch, torchmetrics), setuptools for the wheel test.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(if $(strip $(TORCH_SPEC)),$(BIN)/python -m pip install -q '$(TORCH_SPEC)')
	$(BIN)/python -m pip install -q -e '.[test,ray]'
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
