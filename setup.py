"""Builds chatsrv._core. CHATSRV_ANNOTATE=1 writes the Cython HTML annotation."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension("chatsrv._core", ["chatsrv/_core.pyx"], extra_compile_args=["-O2"])

setup(
    ext_modules=cythonize(
        [ext],
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
