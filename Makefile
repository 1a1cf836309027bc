# make run: set up .venv, build the core, serve on 127.0.0.1:8080 with data in ./data.
# make test: the same set-up, then the whole test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data

.PHONY: all venv build sysdeps run test unit functional browser annotate bench locust clean

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

build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .

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

test: build sysdeps
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: build
	$(PY) -m pytest -q tests/unit

functional: build
	$(PY) -m pytest -q tests/functional

browser: build sysdeps
	$(PY) -m pytest -q tests/browser

annotate: $(STAMP)
	CHATSRV_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force
	@echo "see chatsrv/_core.html and chatsrv/store/**/*.html"

clean:
	rm -rf build *.egg-info
	find chatsrv -name '*.so' -o -name '*.c' -o -name '*.html' -not -path 'chatsrv/web/*' | xargs rm -f
