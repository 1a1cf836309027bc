# make run: set up .venv, build the core, serve on 127.0.0.1:8080 with data in ./data.
# make test: the same set-up, then the whole test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data

.PHONY: all venv build sysdeps autobahn run test unit functional browser annotate bench locust clean

# Debian packages the tests use (promtool from prometheus, chromium for tests/browser); installed only when missing.
SYSDEPS_CMDS := promtool chromium
SYSDEPS_PKGS := prometheus chromium

all: build

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(STAMP)

chatsrv/_core.cpython%.so: chatsrv/_core.pyx $(STAMP)
	$(PY) setup.py -q build_ext --inplace

build: $(STAMP) chatsrv/_core.pyx
	$(PY) setup.py -q build_ext --inplace
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .

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
	@missing=""; for c in $(SYSDEPS_CMDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSDEPS_PKGS); \
	fi

test: build sysdeps autobahn
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: build
	$(PY) -m pytest -q tests/unit

functional: build autobahn
	$(PY) -m pytest -q tests/functional

browser: build sysdeps
	$(PY) -m pytest -q tests/browser

annotate: $(STAMP)
	CHATSRV_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "see chatsrv/_core.html"

clean:
	rm -rf build chatsrv/*.so chatsrv/_core.c chatsrv/_core.html *.egg-info
