# Everything runs inside .venv, which the first target that needs it creates.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo run test check fmt bench bench-multihost e2e binary selftest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group test --group lint
	touch $(STAMP)

demo: $(STAMP)       ## run a pool against the simulated upstreams (no credentials needed)
	$(PY) -m trio_pool demo

run: $(STAMP)        ## run the proxy with ./config.toml and ./pool
	$(PY) -m trio_pool serve

test: $(STAMP)       ## the test suite
	$(PY) -m pytest -q

check: $(STAMP)      ## lint and types
	$(VENV)/bin/ruff check trio_pool tests bench
	$(VENV)/bin/ruff format --check trio_pool tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format trio_pool tests bench
	$(VENV)/bin/ruff check --fix trio_pool tests bench

# py-spy (the `bench` group) is for `python -m bench --profile small|stream`.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --group bench
	touch $(BENCH_STAMP)

# BENCH_ARGS=--quick for a short run. Needs wrk (installed with apt-get when missing and
# root); claude-code-router comes from npm into bench/.cache/ccr, and is skipped without npm.
bench: $(BENCH_STAMP)  ## trio-pool vs direct, a bare relay and claude-code-router (ratios), the routing simulation, the long fault suite, multi-host figures
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.routing_sim
	TRIO_POOL_FAULT_ITERATIONS=$${TRIO_POOL_FAULT_ITERATIONS:-3000} $(PY) -m pytest -q -m faults tests/faults
	$(MAKE) bench-multihost

bench-multihost: $(STAMP)  ## multi-host: CPU/TTFB against single-host SQLite, and the 30 s engine cut (needs PostgreSQL)
	$(PY) -m bench.multihost
	TRIO_POOL_CUT_S=$${TRIO_POOL_CUT_S:-30} $(PY) -m pytest -q -s tests/multihost/test_engine_cut.py

e2e: $(STAMP)        ## the real Codex, Claude and Gemini CLIs (from npm) through `demo`, offline; not in CI
	bash e2e/run_real_clis.sh

selftest: $(STAMP)
	$(PY) -m trio_pool selftest

# PyInstaller (the `build` group) is installed only for this target.
BUILD_STAMP := $(VENV)/.installed-build
$(BUILD_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --group build
	touch $(BUILD_STAMP)

binary: $(BUILD_STAMP)  ## dist/trio-pool: one executable, no Python needed beside it
	bash build/build.sh $(PY)

clean:
	rm -rf $(VENV) build/.work dist .mypy_cache .ruff_cache .pytest_cache
