"""Sphinx configuration of the neuroplug documentation.

The gallery scripts in ``examples/`` are executed by sphinx-gallery on every
build (an example that raises fails the build); the guides' code blocks are
doctests run by ``sphinx-build -b doctest`` (see ``docs/build.sh``).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Build from the source tree (compiled in place) when neuroplug is not installed.
sys.path.insert(0, str(ROOT))

import neuroplug  # noqa: E402

project = "neuroplug"
author = "The neuroplug team"
copyright = "the neuroplug team, BSD-3-Clause"  # noqa: A001
version = release = neuroplug.__version__

# docs/build.sh runs two builds: "html" (which executes the gallery) and
# "doctest" (the guides' and docstrings' examples), the latter with
# NEUROPLUG_DOCS_DOCTEST=1 so that it neither runs the gallery again nor
# rewrites its generated pages.
DOCTEST_ONLY = os.environ.get("NEUROPLUG_DOCS_DOCTEST") == "1"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
if not DOCTEST_ONLY:
    extensions.append("sphinx_gallery.gen_gallery")

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
if DOCTEST_ONLY:
    exclude_patterns.append("auto_examples")
    suppress_warnings_doctest = [
        "toc.not_readable"
    ]  # the gallery's index, left out on purpose
else:
    suppress_warnings_doctest = []
templates_path = ["_templates"]

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "show-inheritance": True,
}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False  # autosummary lists members; no duplicate tables
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Links to scikit-learn, NumPy, SciPy, PyTorch and Matplotlib --------------
# The build runs offline: the inventories are written from the installed
# packages (docs/intersphinx_offline.py), never downloaded.
sys.path.insert(0, str(DOCS))
from intersphinx_offline import write_inventories  # noqa: E402

intersphinx_mapping = write_inventories(DOCS / "_build" / "intersphinx")

# -- From each API page back to the user guide ----------------------------------
#: Most specific first: a full name, else its module or a parent package.
GUIDE_PAGES = {
    "neuroplug.estimators.CNNClassifier": "guide/cnn",
    "neuroplug.estimators.CNNRegressor": "guide/cnn",
    "neuroplug.estimators": "guide/pretraining",
    "neuroplug.layers": "guide/cnn",
    "neuroplug.network": "guide/cnn",
    "neuroplug.optimizers": "guide/cnn",
    "neuroplug.augment": "guide/cnn",
    "neuroplug.pretrain": "guide/pretraining",
    "neuroplug.likelihood": "guide/pretraining",
    "neuroplug.plot": "guide/plotting",
    "neuroplug.persist": "guide/persistence",
    "neuroplug.datasets": "tour",
    "neuroplug.backends": "guide/backends",
    "neuroplug.ops": "guide/backends",
    "neuroplug.plugins": "plugins",
    "neuroplug.registry": "plugins",
    "neuroplug.testing": "plugins",
}


# The templates (docs/_templates/autosummary) look a name up, then its parents.
autosummary_context = {"guide_pages": GUIDE_PAGES}

# -- Markdown (docs/plugins.md) ---------------------------------------------
myst_heading_anchors = 3
# The plugin guide links folders of the repository (../plugins/neuroplug-lrn),
# which are no pages of this site; they stay plain links.
suppress_warnings = ["myst.xref_missing", *suppress_warnings_doctest]
myst_enable_extensions = ["colon_fence"]

# -- The gallery --------------------------------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
# Dask's INFO logs (scheduler, nannies, workers) of the scaling example would
# flood the build's output; set before any example imports dask.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
warnings.filterwarnings(
    "ignore", message="Matplotlib is currently using agg", category=UserWarning
)
# The gallery's and the doctests' short demo fits stop at max_iter on purpose.
warnings.filterwarnings(
    "ignore", message=".*max_iter=.* reached and the optimization hasn't converged"
)

sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",  # every plot_*.py script is executed
    "ignore_pattern": r"__init__\.py|/_",
    # "Getting started" (examples/tour) first, then the rest by topic.
    "subsection_order": [
        "../examples/tour",
        "../examples/cnn",
        "../examples/pretraining",
        "../examples/scaling",
    ],
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
    "min_reported_time": 1,
    "reset_modules": ("matplotlib", "seaborn"),
    # An example that raises fails the build (listed at the end of it).
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
    # Gallery links from the API reference: "Examples using CNNClassifier".
    "doc_module": ("neuroplug",),
    "backreferences_dir": "api/backreferences",
    # A display object or a fitted figure as the last line of a cell is drawn,
    # not printed as "<... object at 0x...>".
    "ignore_repr_types": r"matplotlib\.|neuroplug\.plot\.|sklearn\.metrics\._plot|sklearn\.utils\._plotting|mpl_toolkits",
}

# -- Doctests of the guides ---------------------------------------------------
doctest_global_setup = """
import matplotlib
matplotlib.use("Agg")
import numpy as np
np.set_printoptions(precision=4, suppress=True)
"""
doctest_global_cleanup = """
import matplotlib.pyplot as plt
plt.close("all")
"""

# -- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"neuroplug {release}"
html_static_path: list[str] = []
nitpicky = False

# Exception messages in the guides are checked too (Sphinx ignores their
# detail by default); ``...`` stands for the parts that vary.
import doctest as _doctest  # noqa: E402

doctest_default_flags = (
    _doctest.ELLIPSIS | _doctest.DONT_ACCEPT_TRUE_FOR_1 | _doctest.NORMALIZE_WHITESPACE
)


def _skip_metadata_request_setters(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_{fit,score,...}_request`` methods."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


class _PageWarnings(logging.Handler):
    """Collect the warnings about the pages themselves (guides, examples, API pages).

    They fail the HTML build (see ``_fail_on_page_warnings``): a broken
    link, a missing API name or a malformed table in ``docs/`` or
    ``examples/`` is a bug of these pages.  Formatting warnings inside the
    package's docstrings (location ``...py:docstring of ...``) are printed
    but do not fail the build; ``docs/build.sh --strict`` fails on those too.
    """

    def __init__(self, suppressed: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.suppressed = suppressed
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from docutils import nodes
        from sphinx.util.logging import get_node_location, is_suppressed_warning

        if is_suppressed_warning(
            getattr(record, "type", None),
            getattr(record, "subtype", None),
            self.suppressed,
        ):
            return
        location = getattr(record, "location", None)
        if isinstance(location, nodes.Node):
            location = get_node_location(location)
        elif isinstance(location, tuple):
            location = ":".join(str(part) for part in location if part is not None)
        location = str(location or "")
        if ":docstring of " in location:
            return
        message = (
            f"{location}: {record.getMessage()}" if location else record.getMessage()
        )
        # Sphinx re-emits warnings it held back (pending_warnings): count each once.
        if message not in self.messages:
            self.messages.append(message)


def _install_page_warnings(app) -> None:
    handler = _PageWarnings(list(app.config.suppress_warnings))
    logging.getLogger("sphinx").addHandler(handler)
    app._neuroplug_page_warnings = handler


def _fail_on_page_warnings(app, exception) -> None:
    handler = getattr(app, "_neuroplug_page_warnings", None)
    if handler is None:
        return
    logging.getLogger("sphinx").removeHandler(handler)
    if exception is None and handler.messages:
        from sphinx.errors import SphinxError

        listing = "\n  ".join(handler.messages)
        raise SphinxError(
            f"{len(handler.messages)} warning(s) about the documentation pages:\n  {listing}"
        )


def setup(app):  # noqa: D103 - Sphinx entry point
    app.connect("autodoc-skip-member", _skip_metadata_request_setters)
    if not DOCTEST_ONLY:
        app.connect("builder-inited", _install_page_warnings)
        app.connect("build-finished", _fail_on_page_warnings)
    if DOCTEST_ONLY:
        # The API pages' "Examples using ..." galleries come from
        # sphinx-gallery, which the doctest build leaves out.
        from docutils.parsers.rst import Directive, directives

        class _NoGallery(Directive):
            optional_arguments = 1
            final_argument_whitespace = True
            has_content = True
            option_spec = {"add-heading": directives.unchanged}

            def run(self):
                return []

        app.add_directive("minigallery", _NoGallery)
