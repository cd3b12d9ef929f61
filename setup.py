"""Build script for the Cython core (``neuroplug_core``).

Everything declarative lives in ``pyproject.toml``; this file holds only what
must be computed at build time: the one list of extension modules, the one
dict of Cython compiler directives, and the OpenMP probe.

Environment switches
--------------------
NEUROPLUG_DEBUG=1
    Turn Cython bounds checking, wraparound and initialized checks back on and
    compile with ``-O0 -g``.  Use it to hunt an out-of-bounds access.
NEUROPLUG_NO_OPENMP=1
    Build without OpenMP even if the compiler supports it.
NEUROPLUG_BUILD_JOBS=N
    Translate and compile N extension modules at a time (default: one per
    CPU, ``os.cpu_count()``).  ``python setup.py build_ext -j N`` overrides it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("NEUROPLUG_DEBUG", "0") not in ("", "0")

# One dict of directives for every module.  Bounds checks are off because the
# Python wrappers validate shapes before calling into the kernels (DESIGN rule 4).
COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

# The one list of extension modules: every .pyx file in neuroplug_core/.
EXTENSION_SOURCES = sorted(glob.glob(os.path.join("neuroplug_core", "*.pyx")))

# The C kernels the modules include (``cdef extern from "name.h"``).
C_INCLUDE_DIR = os.path.join("neuroplug_core", "src")
C_HEADERS = sorted(glob.glob(os.path.join(C_INCLUDE_DIR, "*.h")))


def _build_jobs() -> int:
    """Modules translated and compiled at a time: NEUROPLUG_BUILD_JOBS, else one per CPU."""
    value = os.environ.get("NEUROPLUG_BUILD_JOBS", "").strip()
    if value:
        try:
            jobs = int(value)
        except ValueError:
            raise SystemExit(
                f"NEUROPLUG_BUILD_JOBS must be a positive integer. Received: {value!r}"
            ) from None
        if jobs < 1:
            raise SystemExit(
                f"NEUROPLUG_BUILD_JOBS must be a positive integer. Received: {value!r}"
            )
        return jobs
    return os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """``build_ext`` compiling the extension modules side by side, with a note that it runs.

    Without ``-j`` the modules would compile one after another on one core.
    """

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = _build_jobs()

    def run(self) -> None:
        jobs = os.cpu_count() if self.parallel is True else self.parallel
        print(
            f"neuroplug: compiling the Cython core ({len(self.extensions)} modules, "
            f"{jobs} at a time); this takes a few minutes on a small machine",
            file=sys.stderr,
            flush=True,
        )
        super().run()


def _openmp_flags() -> tuple[list[str], list[str]]:
    """Return (compile, link) flags for OpenMP, or empty lists if unsupported."""
    if os.environ.get("NEUROPLUG_NO_OPENMP", "0") not in ("", "0"):
        warnings.warn(
            "NEUROPLUG_NO_OPENMP is set: building neuroplug_core without OpenMP",
            stacklevel=2,
        )
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        warnings.warn(
            f"C compiler {cc!r} not found for the OpenMP probe; building without OpenMP",
            stacklevel=2,
        )
        return [], []
    code = (
        "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write(code)
        result = subprocess.run(
            cc.split() + flags + [src, "-o", os.path.join(tmp, "probe")],
            capture_output=True,
        )
    if result.returncode != 0:
        warnings.warn(
            "The C compiler does not support OpenMP; neuroplug_core will be built "
            "single-threaded. Install a compiler with OpenMP (gcc, or clang with "
            "libomp) for parallel kernels.",
            stacklevel=2,
        )
        return [], []
    return flags, flags


def _extensions() -> list[Extension]:
    omp_compile, omp_link = _openmp_flags()
    if sys.platform == "win32":
        opt = ["/Od"] if DEBUG else ["/O2"]
    else:
        opt = ["-O0", "-g"] if DEBUG else ["-O3"]
    extensions = []
    for source in EXTENSION_SOURCES:
        module = os.path.splitext(source)[0].replace(os.sep, ".")
        extensions.append(
            Extension(
                module,
                [source],
                include_dirs=[C_INCLUDE_DIR, numpy.get_include()],
                depends=C_HEADERS,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=opt + omp_compile,
                extra_link_args=omp_link,
            )
        )
    return cythonize(
        extensions,
        compiler_directives=COMPILER_DIRECTIVES,
        compile_time_env={"NEUROPLUG_DEBUG": DEBUG},
        nthreads=_build_jobs(),
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": ParallelBuildExt})
