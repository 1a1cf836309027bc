"""The atheris target for the protocol parser (tests/fuzz/fuzz_proto.py), run for a bounded
time: no input may make the parser raise anything but ProtocolError, or answer wrongly."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "tests" / "fuzz" / "fuzz_proto.py"
SECONDS = int(os.environ.get("CHATSRV_FUZZ_SECONDS", "15"))


@pytest.mark.timeout(SECONDS + 180)
def test_protocol_parser_survives_coverage_guided_fuzzing(tmp_path):
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(TARGET), "--seeds", str(corpus)], check=True, env=env)
    run = subprocess.run(
        [sys.executable, str(TARGET), str(corpus), f"-max_total_time={SECONDS}", "-rss_limit_mb=2048",
         "-timeout=10", f"-dict={ROOT / 'tests' / 'fuzz' / 'proto.dict'}", "-print_final_stats=1",
         f"-artifact_prefix={tmp_path}/"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SECONDS + 120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"the fuzzer found an input that breaks the parser:\n{out[-4000:]}"
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", out).group(1))
    assert runs > 10000, f"only {runs} inputs tried in {SECONDS}s:\n{out[-2000:]}"
    print(f"atheris: {runs} inputs in {SECONDS}s, no finding")
