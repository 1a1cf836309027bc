"""Builds chatsrv's compiled modules: every .pyx under chatsrv/ (each with its .pxd
surface) becomes the extension of the same dotted name. CHATSRV_ANNOTATE=1 writes the
Cython HTML annotation beside each .pyx."""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
exts = [Extension(".".join(p.with_suffix("").relative_to(ROOT).parts), [str(p.relative_to(ROOT))],
                  extra_compile_args=["-O2"])
        for p in sorted((ROOT / "chatsrv").rglob("*.pyx"))]

setup(
    ext_modules=cythonize(
        exts,
        language_level=3,
        annotate=bool(os.environ.get("CHATSRV_ANNOTATE")),
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "nonecheck": False,
            "cdivision": True,
        },
    )
)
