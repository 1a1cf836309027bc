"""Builds the compiled modules: the core (chatsrv/_core.pyx) and the store's hot path
(chatsrv/store/message.pyx, chatsrv/store/lmdb/{layout,inbox}.pyx).
CHATSRV_ANNOTATE=1 writes the Cython HTML annotation."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

MODULES = ["chatsrv._core", "chatsrv.store.message", "chatsrv.store.lmdb.layout", "chatsrv.store.lmdb.inbox"]
exts = [Extension(m, [m.replace(".", "/") + ".pyx"], extra_compile_args=["-O2"]) for m in MODULES]

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
