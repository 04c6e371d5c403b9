# Two commands do all the set-up on a fresh machine:
#   make study   creates .venv, installs effnb, runs the whole study (PROFILE=cpu by default) into reports/
#   make test    creates .venv, installs effnb, runs the test suite
PYTHON ?= python3.11
VENV ?= .venv
PROFILE ?= cpu
DATA_DIR ?= $(if $(EFFNB_DATA_DIR),$(EFFNB_DATA_DIR),$(wildcard ../shared/data/PetImages))
ARTIFACTS ?= artifacts
BIN := $(VENV)/bin

.PHONY: study test install notebooks lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch and torchvision first, pinned to a pair that works together (on x86_64 Linux this is the local copy);
# elsewhere pip picks a matching pair from the ranges in pyproject.toml.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	if [ "$$(uname -sm)" = "Linux x86_64" ]; then $(BIN)/pip install torch==2.14.1 torchvision==0.29.1; fi
	$(BIN)/pip install -e '.[dev,export]'
	touch $@

install: $(VENV)/.installed

study: install
	$(BIN)/effnb study --profile $(PROFILE) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) --artifacts-dir $(ARTIFACTS) --reports-dir reports --readme README.md

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

# re-pair the notebooks after editing either side (the .py files are the source of truth)
notebooks: install
	$(BIN)/jupytext --sync notebooks/*.py

# JupyterLab with the project's settings (jupyter/): on 127.0.0.1 with token authentication, a paired .py
# opens as a notebook, and the study's notebooks are saved without outputs. JupyterLab refuses to run as root
# unless told: as root (e.g. in a container) this target adds --allow-root and says so. LAB_ARGS passes more options.
LAB_ARGS ?=
lab: install
	@if [ "$$(id -u)" = 0 ]; then echo "make lab: running as root, so JupyterLab is started with --allow-root"; fi
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter $(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

clean:
	rm -rf $(ARTIFACTS)
