"""The picows shim checks, at import, the version whose internals it reads; that version
is the one pyproject.toml pins for building and for running."""
import tomllib
from pathlib import Path

import picows

from chatsrv.core import wsshim

ROOT = Path(__file__).resolve().parents[3]


def test_the_shim_version_is_the_pinned_and_installed_picows():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [r for r in project["build-system"]["requires"] + project["project"]["dependencies"]
            if r.startswith("picows")]
    assert pins == [f"picows=={wsshim.PICOWS_VERSION}"] * 2
    assert picows.__version__ == wsshim.PICOWS_VERSION
