# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
TOOLS  := .tools
CLAUDE := $(TOOLS)/node_modules/.bin/claude

.PHONY: demo test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml Makefile
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PIP) install -q -e ".[test,browser,dask]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The real Claude Code CLI (its Linux binary ships inside the npm package), for the runner tests.
$(CLAUDE):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @anthropic-ai/claude-code

demo: $(STAMP)
	$(PY) -m ralphnb.demo

test: $(STAMP) $(CLAUDE)
	$(VENV)/bin/ruff check ralphnb tests benchmarks
	$(VENV)/bin/ruff format --check ralphnb tests benchmarks
	RALPHNB_CLAUDE=$(abspath $(CLAUDE)) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not claude"

lint: $(STAMP)
	$(VENV)/bin/ruff check ralphnb tests benchmarks
	$(VENV)/bin/ruff format --check ralphnb tests benchmarks

bench: $(STAMP)   # each script records its figures and command in benchmarks/RESULTS.md
	$(PY) benchmarks/queue_bench.py --write
	$(PY) benchmarks/worker_bench.py --write
	$(PY) benchmarks/resources_bench.py --write
	$(PY) benchmarks/loop_bench.py --write
	$(PY) benchmarks/dashboard_bench.py --workers 50 --seconds 30 --write
	$(PY) benchmarks/dask_bench.py --write

clean:
	rm -rf $(VENV) $(TOOLS) demo-repo build *.egg-info
