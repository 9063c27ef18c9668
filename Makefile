# MemexFS — the two commands: `make demo` and `make test` (both set up what is missing first).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := fuse3 libfuse3-dev pkg-config attr chromium librsvg2-bin

.PHONY: setup demo test lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard setup.py)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check memexfs embed query mount tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python bench/fs_bench.py
	$(BIN)/python bench/encoder_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/retrieval_eval.py
	$(BIN)/python bench/query_bench.py

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
