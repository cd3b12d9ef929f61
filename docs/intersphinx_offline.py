"""Intersphinx inventories written from the installed packages, so the docs build offline.

The documentation is built without network access (``.ci/run``), so
intersphinx cannot download ``objects.inv`` from scikit-learn, NumPy, SciPy,
PyTorch and Matplotlib.  Instead, :func:`write_inventories` writes an
inventory (Sphinx's version 2 format) for each of them, listing the public
names of the installed package under the URL its published documentation
gives every name: scikit-learn puts each class and function on
``modules/generated/<name>.html``, NumPy and SciPy on
``reference/generated/<name>.html``; the few PyTorch and Matplotlib names
the pages use are listed by hand.  ``docs/conf.py`` points intersphinx at
these files, so a reference such as ``:class:`sklearn.pipeline.Pipeline```
becomes a link to scikit-learn's page, and no build ever reaches the network.
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from pathlib import Path

#: project -> (base URL, inventory name).
PROJECTS = {
    "sklearn": ("https://scikit-learn.org/stable/", "scikit-learn"),
    "numpy": ("https://numpy.org/doc/stable/", "NumPy"),
    "scipy": ("https://docs.scipy.org/doc/scipy/", "SciPy"),
    "torch": ("https://pytorch.org/docs/stable/", "PyTorch"),
    "matplotlib": ("https://matplotlib.org/stable/", "Matplotlib"),
}

# The PyTorch and Matplotlib pages of the names these docs use: name -> (role, page).
_TORCH = {
    "torch.Tensor": ("class", "tensors.html"),
    "torch.device": ("class", "tensor_attributes.html"),
    "torch.dtype": ("class", "tensor_attributes.html"),
    "torch.Generator": ("class", "generated/torch.Generator.html"),
    "torch.nn.Module": ("class", "generated/torch.nn.Module.html"),
    "torch.optim.Adam": ("class", "generated/torch.optim.Adam.html"),
    "torch.bernoulli": ("function", "generated/torch.bernoulli.html"),
    "torch.set_num_threads": ("function", "generated/torch.set_num_threads.html"),
    "torch.use_deterministic_algorithms": (
        "function",
        "generated/torch.use_deterministic_algorithms.html",
    ),
    "torch.cuda.is_available": ("function", "generated/torch.cuda.is_available.html"),
}
_MATPLOTLIB = {
    "matplotlib.figure.Figure": ("class", "api/_as_gen/matplotlib.figure.Figure.html"),
    "matplotlib.axes.Axes": ("class", "api/_as_gen/matplotlib.axes.Axes.html"),
    "matplotlib.lines.Line2D": ("class", "api/_as_gen/matplotlib.lines.Line2D.html"),
    "matplotlib.image.AxesImage": (
        "class",
        "api/_as_gen/matplotlib.image.AxesImage.html",
    ),
    "matplotlib.colorbar.Colorbar": ("class", "api/colorbar_api.html"),
    "matplotlib.colors.Colormap": (
        "class",
        "api/_as_gen/matplotlib.colors.Colormap.html",
    ),
    "matplotlib.pyplot": ("module", "api/pyplot_summary.html"),
    "matplotlib.pyplot.figure": (
        "function",
        "api/_as_gen/matplotlib.pyplot.figure.html",
    ),
}

_SKLEARN_MODULES = (
    "base",
    "datasets",
    "decomposition",
    "dummy",
    "exceptions",
    "linear_model",
    "metrics",
    "model_selection",
    "neural_network",
    "pipeline",
    "preprocessing",
    "svm",
    "utils",
    "utils.validation",
)
_SCIPY_MODULES = ("linalg", "signal", "special", "sparse", "stats", "optimize")


def _role(obj: object) -> str | None:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return None


def _public(module_name: str) -> list[tuple[str, str]]:
    """``(name, role)`` of the public classes and functions of an installed module."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    names = getattr(module, "__all__", None) or [
        n for n in dir(module) if not n.startswith("_")
    ]
    out = []
    for name in names:
        try:
            role = _role(getattr(module, name, None))
        except ImportError:  # experimental names that need an explicit enable_* import
            continue
        if role is not None:
            out.append((f"{module_name}.{name}", role))
    return out


def _sklearn_entries() -> list[tuple[str, str, str]]:
    entries = []
    for sub in _SKLEARN_MODULES:
        module = f"sklearn.{sub}"
        entries.append((module, "module", f"api/{module}.html"))
        for name, role in _public(module):
            page = f"modules/generated/{name}.html"
            entries.append((name, role, page))
            if role == "class":
                cls = importlib.import_module(module).__dict__[name.rsplit(".", 1)[1]]
                for attr in dir(cls):
                    if not attr.startswith("_") and callable(getattr(cls, attr, None)):
                        entries.append((f"{name}.{attr}", "method", page))
    return entries


def _numpy_entries() -> list[tuple[str, str, str]]:
    entries = [
        (name, role, f"reference/generated/{name}.html")
        for name, role in _public("numpy")
    ]
    entries += [
        ("numpy.random.Generator", "class", "reference/random/generator.html"),
        ("numpy.random.default_rng", "function", "reference/random/generator.html"),
        ("numpy.random.RandomState", "class", "reference/random/legacy.html"),
    ]
    return entries


def _scipy_entries() -> list[tuple[str, str, str]]:
    entries = []
    for sub in _SCIPY_MODULES:
        entries += [
            (name, role, f"reference/generated/{name}.html")
            for name, role in _public(f"scipy.{sub}")
        ]
    return entries


def _inventory(
    project: str, version: str, entries: list[tuple[str, str, str]]
) -> bytes:
    seen = set()
    lines = []
    for name, role, page in entries:
        if (name, role) in seen:
            continue
        seen.add((name, role))
        anchor = "" if role == "module" and page.endswith(f"{name}.html") else "#$"
        lines.append(f"{name} py:{role} 1 {page}{anchor} -")
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    return header + zlib.compress(("\n".join(lines) + "\n").encode())


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-learn" if distribution == "sklearn" else distribution)
    except PackageNotFoundError:
        return ""


def write_inventories(directory: Path) -> dict[str, tuple[str, str]]:
    """Write one inventory per project into ``directory``; return Sphinx's ``intersphinx_mapping``."""
    directory.mkdir(parents=True, exist_ok=True)
    builders = {
        "sklearn": _sklearn_entries,
        "numpy": _numpy_entries,
        "scipy": _scipy_entries,
        "torch": lambda: [(n, r, p) for n, (r, p) in _TORCH.items()],
        "matplotlib": lambda: [(n, r, p) for n, (r, p) in _MATPLOTLIB.items()],
    }
    mapping = {}
    for key, build in builders.items():
        url, title = PROJECTS[key]
        path = directory / f"{key}.inv"
        path.write_bytes(_inventory(title, _version(key), build()))
        mapping[key] = (url, str(path))
    return mapping
