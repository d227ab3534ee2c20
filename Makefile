# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
TOOLS  := .tools
CLAUDE := $(TOOLS)/node_modules/.bin/claude
# The agent CLIs the runner tests drive, at the versions they were verified with.
NPM_CLIS := @anthropic-ai/claude-code@^2.1.197 @openai/codex@0.171.0 @google/gemini-cli@0.61.0 \
            opencode-ai@1.18.33 @mariozechner/pi-coding-agent@0.73.1
NPM_STAMP := $(TOOLS)/.npm-clis
# kimi-cli from PyPI, in its own venv: 1.52 is a stub; 1.51 needs a Python >= 3.12 that is newer
# than 3.12.1 (whose dataclasses break it), so the probe runs what breaks.
KIMI_VERSION := 1.51.0
KIMI       := $(TOOLS)/kimi/bin/kimi
KIMI_PROBE := from dataclasses import dataclass as d; exec("@d(frozen=True, slots=True)\nclass S[F]:\n  x: int\nS[int](x=1)")

.PHONY: demo test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml Makefile
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PIP) install -q -e ".[test,browser,dask]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The real agent CLIs (their Linux binaries ship inside the npm packages), for the runner tests.
$(NPM_STAMP): Makefile
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) $(NPM_CLIS)
	echo "$(NPM_CLIS)" > $@

$(CLAUDE): $(NPM_STAMP)

# kimi into .tools/kimi when a suitable Python is on the machine; else nothing (its tests say why).
$(TOOLS)/.kimi-$(KIMI_VERSION):
	@mkdir -p $(TOOLS)
	@py=""; for c in python3.14 python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c '$(KIMI_PROBE)' >/dev/null 2>&1; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "kimi-cli not installed: no Python >= 3.12 (newer than 3.12.1) found"; \
	else echo "kimi-cli $(KIMI_VERSION) with $$py"; rm -rf $(TOOLS)/kimi && $$py -m venv $(TOOLS)/kimi && \
	  $(TOOLS)/kimi/bin/pip install -q kimi-cli==$(KIMI_VERSION) && touch $@; fi

demo: $(STAMP)
	$(PY) -m ralphnb.demo

test: $(STAMP) $(NPM_STAMP) $(TOOLS)/.kimi-$(KIMI_VERSION)
	$(VENV)/bin/ruff check ralphnb tests benchmarks
	$(VENV)/bin/ruff format --check ralphnb tests benchmarks
	RALPHNB_CLAUDE=$(abspath $(CLAUDE)) $(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not claude and not codex and not gemini and not opencode and not pi and not kimi"

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
	$(PY) benchmarks/review_bench.py --write
	$(PY) benchmarks/transcript_bench.py --events 10000 --rounds 5 --write
	$(PY) benchmarks/long_run_bench.py --workers 8 --seconds 60 --label after --write
	$(PY) benchmarks/attach_bench.py --workers 50 --seconds 20 --step 0.5 --attaches 10 --write
	$(PY) benchmarks/sweep_bench.py --runs 200 --parallel 8 --write

clean:
	rm -rf $(VENV) $(TOOLS) demo-repo build *.egg-info
