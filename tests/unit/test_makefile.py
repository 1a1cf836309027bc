"""`make run` restarts fast: once built, it only starts the server; it installs only what
running needs; a change to any Cython source (wherever it lives) rebuilds the core and
reinstalls nothing. Checked with make's dry run (-n), which executes nothing."""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVE = ".venv/bin/chatsrv serve --host 127.0.0.1 --port 8080 --data ./data"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def dry_run(*args):
    # run by make test: the outer make's flags must not leak in
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES")}
    r = subprocess.run(["make", "--no-print-directory", "-n", *args, "run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line.strip()]


def test_built_tree_runs_at_once():
    # make test builds before running the tests, so here everything is up to date
    assert dry_run() == [SERVE]


def test_run_installs_no_test_or_bench_package():
    steps = dry_run("-B")             # as on a fresh checkout: every step
    assert steps[-1] == SERVE
    assert any("pip install" in s and "-e ." in s for s in steps)
    assert not [s for s in steps if "requirements-" in s or "pytest" in s], steps


@pytest.mark.parametrize("src", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("chatsrv/**/*.p[yx][xd]")))
def test_a_changed_cython_source_rebuilds_only_the_core(src):
    steps = dry_run("-W", src)        # as if src had just been edited
    assert any("build_ext --inplace" in s for s in steps), steps
    assert not [s for s in steps if "pip install" in s], steps
    assert steps[-1] == SERVE


def test_a_changed_test_requirement_does_not_touch_run():
    assert dry_run("-W", "requirements-dev.txt") == [SERVE]
