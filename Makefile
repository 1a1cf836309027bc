# make run: set up .venv with what running needs, build the core, serve on 127.0.0.1:8080 with data in ./data.
# make test: the same set-up plus the test packages and Debian tools, then the whole test suite.
# Each step leaves a stamp in .venv: nothing is reinstalled or rebuilt unless its inputs changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
BUILD_STAMP := $(VENV)/.built
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data
# the Cython sources, wherever they live under chatsrv/
CORE_SRC := $(shell find chatsrv -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi')
# pyproject's [build-system] requires, pinned there (the core is built without isolation)
BUILD_REQS = $(shell $(PYTHON) -c 'import tomllib; print(" ".join(repr(r) for r in tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')

.PHONY: screenshots all venv build sysdeps autobahn chaos fuzz run test unit functional browser annotate bench locust clean

# Debian packages the tests use (promtool from prometheus, chromium for tests/browser, nginx and caddy in
# front of the server, systemd-analyze for the units in deploy/, npm for axe-core, haproxy in front of
# several nodes); each installed only when its command is missing (a machine whose Node.js
# ships npm must not be given Debian's npm, which conflicts with it).
SYSDEPS_CMDS := promtool chromium nginx caddy systemd-analyze npm haproxy
SYSDEPS_PKGS := prometheus chromium nginx caddy systemd npm haproxy
# axe-core checks the web client's accessibility in tests/browser; served to the page by the tests only
AXE_VERSION := 4.14.1
AXE := tests/browser/node_modules/axe-core/axe.min.js

all: build

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# what running needs: the runtime dependencies of pyproject.toml and chatsrv itself (editable: it
# compiles the core once); no test or bench package
$(RUN_STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q $(BUILD_REQS)
	$(PY) -m pip install -q --no-build-isolation -e .
	touch $@

# the test packages, on top
$(STAMP): requirements-dev.txt $(RUN_STAMP)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(STAMP)

$(BUILD_STAMP): $(RUN_STAMP) $(CORE_SRC) setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@

build: $(BUILD_STAMP)

# Autobahn|Testsuite runs on CPython 2.7 only (pyenv's 2.7.18 here): installed with that
# interpreter's pip into .venv/autobahn, which tests/functional/test_ws_conformance.py uses.
PYTHON2 ?= $(shell pyenv root 2>/dev/null)/versions/2.7.18/bin/python
AUTOBAHN_DIR := $(VENV)/autobahn
AUTOBAHN := $(AUTOBAHN_DIR)/.installed
$(AUTOBAHN): requirements-autobahn.txt
	@test -x "$(PYTHON2)" || { echo "make autobahn: no CPython 2.7 at '$(PYTHON2)' (set PYTHON2=/path/to/python2.7)" >&2; exit 1; }
	rm -rf $(AUTOBAHN_DIR)
	$(PYTHON2) -m pip install -q --disable-pip-version-check --no-warn-script-location \
	  --target $(AUTOBAHN_DIR) -r requirements-autobahn.txt
	ln -sf "$$(readlink -f $(PYTHON2))" $(AUTOBAHN_DIR)/python2
	touch $@

autobahn: $(AUTOBAHN)

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-bench.txt
	touch $@

# every workload at its default scale, with the bare limits measured in the same run
bench: build $(BENCH_STAMP)
	$(PY) -m bench all

LOCUST_USERS ?= 50
LOCUST_TIME ?= 60s
# against a running server (make run in another shell)
locust: build $(BENCH_STAMP)
	mkdir -p bench/results
	$(VENV)/bin/locust -f bench/locustfile.py --headless -u $(LOCUST_USERS) -r 10 -t $(LOCUST_TIME) \
	  --host ws://$(HOST):$(PORT) --csv bench/results/locust --html bench/results/locust.html \
	  --only-summary --exit-code-on-error 0

run: build
	$(VENV)/bin/chatsrv serve --host $(HOST) --port $(PORT) --data $(DATA)

sysdeps:
	@set -- $(SYSDEPS_PKGS); pkgs=""; for c in $(SYSDEPS_CMDS); do \
		command -v $$c >/dev/null || pkgs="$$pkgs $$1"; shift; \
	done; \
	if [ -n "$$pkgs" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$pkgs; \
	fi

$(AXE): | sysdeps
	npm install --silent --no-audit --no-fund --no-save --no-package-lock --prefix tests/browser axe-core@$(AXE_VERSION)

test: build $(STAMP) sysdeps $(AXE) autobahn
	$(PY) -m pytest -q -p no:cacheprovider tests

# the fault scenarios at scale (docs/reliability.md), each bounded in time; not in make test
CHAOS_REPORT ?= $(VENV)/chaos-report.txt
chaos: build $(STAMP)
	rm -f $(CHAOS_REPORT)
	CHATSRV_CHAOS=1 CHATSRV_CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) $(PY) -m pytest -q -s -p no:cacheprovider tests/chaos
	@cat $(CHAOS_REPORT)

# longer fuzzing than make test: the delivery state machine and the atheris parser target
FUZZ_EXAMPLES ?= 40
FUZZ_STEPS ?= 60
FUZZ_SECONDS ?= 600
fuzz: build $(STAMP)
	CHATSRV_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CHATSRV_FUZZ_STEPS=$(FUZZ_STEPS) CHATSRV_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  $(PY) -m pytest -q -s -p no:cacheprovider tests/functional/test_fuzz_delivery.py tests/unit/test_fuzz_proto.py

unit: build $(STAMP)
	$(PY) -m pytest -q tests/unit

functional: build $(STAMP) autobahn
	$(PY) -m pytest -q tests/functional

browser: build $(STAMP) sysdeps $(AXE)
	$(PY) -m pytest -q tests/browser

# the screenshots in docs/screenshots (README), taken by the browser tests at both sizes
screenshots: build $(STAMP) sysdeps $(AXE)
	CHATSRV_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/browser/test_browser_screens.py

annotate: $(RUN_STAMP)
	CHATSRV_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "see the .html beside each .pyx under chatsrv/"

# what Cython and the compiler make: every .c, .html and .so under chatsrv/ except the web client's
clean:
	rm -rf build *.egg-info $(BUILD_STAMP)
	find chatsrv -path chatsrv/web -prune -o \( -name '*.so' -o -name '*.c' -o -name '*.html' \) -print -delete
