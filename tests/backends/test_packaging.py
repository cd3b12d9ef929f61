"""The compiled core's sources: C in headers that ship, one copy of each shared helper.

These read the source tree (no compiler needed); the wheel built from it is
checked by hand and by cibuildwheel (see pyproject.toml).
"""

from __future__ import annotations

import glob
import os
import re

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "neuroplug_core")
SRC = os.path.join(CORE, "src")

pytestmark = pytest.mark.skipif(
    not os.path.isdir(SRC), reason="needs the source tree (neuroplug_core/src)"
)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _sources(*patterns: str) -> dict[str, str]:
    files = sorted(f for p in patterns for f in glob.glob(os.path.join(ROOT, p)))
    return {os.path.relpath(f, ROOT): _read(f) for f in files}


def test_no_c_in_cython_strings():
    for name, text in _sources("neuroplug_core/*.pyx", "neuroplug_core/*.pxd").items():
        assert not re.search(r"cdef extern from \*", text), (
            f"{name} still holds inline C"
        )


def test_every_included_header_exists_and_ships():
    headers = {os.path.basename(h) for h in glob.glob(os.path.join(SRC, "*.h"))}
    assert "np_cpu.h" in headers
    for name, text in _sources("neuroplug_core/*.pyx", "neuroplug_core/*.pxd").items():
        for header in re.findall(r'cdef extern from "([^"]+)"', text):
            assert header in headers, (
                f"{name} includes {header}, which is not in neuroplug_core/src"
            )
    for name, text in _sources("neuroplug_core/src/*.h").items():
        for header in re.findall(r'#include "([^"]+)"', text):
            assert header in headers, (
                f"{name} includes {header}, which is not in neuroplug_core/src"
            )
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"][
            "neuroplug_core"
        ]
    shipped = {
        os.path.basename(f)
        for pattern in package_data
        for f in glob.glob(os.path.join(CORE, pattern))
    }
    assert headers <= shipped, (
        f"headers missing from the package data: {sorted(headers - shipped)}"
    )
    assert "src" in _read(
        os.path.join(ROOT, "setup.py")
    )  # the include directory of every module


@pytest.mark.parametrize(
    "pattern,home",
    [
        (r"__builtin_cpu_supports\(", "neuroplug_core/src/np_cpu.h"),
        (r"PyCapsule_GetPointer", "neuroplug_core/_random.pxd"),
        (r"\.next_uint32\(", "neuroplug_core/_random.pxd"),
        (r"\b[sd]gemm\(", "neuroplug_core/_blas.pxd"),
        (r"cdef inline floating _?sigmoid\(", "neuroplug_core/_math.pxd"),
    ],
)
def test_shared_helpers_have_one_home(pattern, home):
    found = sorted(
        name
        for name, text in _sources(
            "neuroplug_core/*.pyx", "neuroplug_core/*.pxd", "neuroplug_core/src/*.h"
        ).items()
        if re.search(pattern, text)
    )
    assert found == [home]


def test_backend_has_one_bit_generator_helper():
    text = _read(os.path.join(ROOT, "neuroplug", "backends", "cython_ops.py"))
    assert len(re.findall(r"def _\w*bit_generator\(", text)) == 1
