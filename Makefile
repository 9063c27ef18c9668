# MemexFS — the two commands: `make demo` and `make test` (both set up what is missing first).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_PKGS := fuse3 libfuse3-dev pkg-config attr chromium librsvg2-bin

.PHONY: setup demo test lint typecheck bench clean install

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard setup.py)
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "setting up $(VENV) (log: $(VENV)/setup.log)"
	@$(BIN)/pip install -q --upgrade pip > $(VENV)/setup.log 2>&1 \
	  && $(BIN)/pip install -q torch==2.13.0 >> $(VENV)/setup.log 2>&1 \
	  && $(BIN)/pip install -q -e '.[dev]' >> $(VENV)/setup.log 2>&1 \
	  || { cat $(VENV)/setup.log; exit 1; }
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

# memexfs on PATH, mount(8)/fstab helpers, man page and bash completion. mount(8) runs helpers
# with a fixed PATH, so fstab lines need memexfs in /usr/local/bin (PREFIX), not ~/.local/bin.
PREFIX ?= /usr/local
install: setup
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/memexfs
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/mount.memexfs
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/mount.fuse.memexfs
	$(BIN)/python scripts/gen_cli_docs.py
	install -m644 docs/memexfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/memexfs.1
	install -m644 docs/memexfs.bash-completion \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/memexfs

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
