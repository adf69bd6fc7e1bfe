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

# Which torch (and the torchvision built against it) the tests get, installed before the extras
# (they only ask for ranges, which the installed builds satisfy). torch and torchvision must be a
# matching pair: PyPI's torchvision cannot load beside the 2.13.0+cpu wheel ("operator
# torchvision::nms does not exist"); 2.14.1 + 0.29.1 are on our machines' local index. A GPU box
# picks its index with PIP_INDEX_URL; `TORCH_SPEC=` keeps the torch already in the venv.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

# Test extras: pytest, Ray, every backbone extra (video, audio, clip, clap, sync) and the reference
# packages of the parity tests. laion-clap pins numpy<2: the whole stack runs with numpy 1.26.
# imagebind-unofficial (ImageBind's reference model code) goes in without its dependencies: its
# torchaudio/pytorchvideo/decord pins would replace torch, and the parity tests import only its models.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(if $(strip $(TORCH_SPEC)),$(BIN)/python -m pip install -q $(TORCH_SPEC))
	$(BIN)/python -m pip install -q -e '.[test,ray,all,parity]'
	$(BIN)/python -m pip install -q --no-deps imagebind-unofficial==0.1.1
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
