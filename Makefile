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

# bench/fs_bench.py's baseline: pyfuse3's own examples/passthroughfs.py, unmodified, from the
# 3.5.0 sdist (checksum pinned). Only pyfuse3 comes as source: `--no-binary :all:` would also
# build its build backend from source, which is slow and yields the same archive.
ANCHORS := $(VENV)/anchors
PYFUSE3_SDIST := pyfuse3-3.5.0
PYFUSE3_SHA256 := 88399a9494b88603230bba300f4ba9ad63fece5ed514ca3633d555a0c6a42b24
.PHONY: bench-anchor
bench-anchor: $(ANCHORS)/$(PYFUSE3_SDIST)/examples/passthroughfs.py

$(ANCHORS)/$(PYFUSE3_SDIST)/examples/passthroughfs.py: | $(STAMP)
	@mkdir -p $(ANCHORS)
	$(BIN)/pip download -q --no-deps --no-binary pyfuse3 --dest $(ANCHORS) pyfuse3==3.5.0
	echo "$(PYFUSE3_SHA256)  $(ANCHORS)/$(PYFUSE3_SDIST).tar.gz" | sha256sum -c --quiet
	tar -xzf $(ANCHORS)/$(PYFUSE3_SDIST).tar.gz --no-same-owner -C $(ANCHORS) \
	  $(PYFUSE3_SDIST)/examples/passthroughfs.py
	@touch $@

# memexfs on PATH, mount(8)/fstab helpers, man page and bash/zsh/fish completion. mount(8) runs
# helpers with a fixed PATH, so fstab lines need memexfs in /usr/local/bin (PREFIX), not
# ~/.local/bin. fish reads PREFIX/share/fish/vendor_completions.d only when $XDG_DATA_DIRS
# names PREFIX/share (desktop sessions do); every fish reads FISHDIR=/etc/fish/completions.
PREFIX ?= /usr/local
SHARE := $(DESTDIR)$(PREFIX)/share
FISHDIR ?= $(PREFIX)/share/fish/vendor_completions.d
install: setup
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/man/man1 $(SHARE)/bash-completion/completions \
	  $(SHARE)/zsh/site-functions $(DESTDIR)$(FISHDIR)
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/memexfs
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/mount.memexfs
	ln -sf $(CURDIR)/$(BIN)/memexfs $(DESTDIR)$(PREFIX)/bin/mount.fuse.memexfs
	$(BIN)/python scripts/gen_cli_docs.py
	install -m644 docs/memexfs.1 $(SHARE)/man/man1/memexfs.1
	install -m644 docs/memexfs.bash-completion $(SHARE)/bash-completion/completions/memexfs
	install -m644 docs/_memexfs $(SHARE)/zsh/site-functions/_memexfs
	install -m644 docs/memexfs.fish $(DESTDIR)$(FISHDIR)/memexfs.fish

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
