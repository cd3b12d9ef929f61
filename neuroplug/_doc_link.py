"""The "?" link of the estimators' HTML representation, to their page of the API reference.

scikit-learn's HTML representation of an estimator (in Jupyter and in the
example gallery) draws a "?" that links to the estimator's documentation; it
asks the estimator for the URL through ``_doc_link_module``,
``_doc_link_template`` and ``_doc_link_url_param_generator``.
:class:`DocLinkMixin` answers with neuroplug's API page of the class.
"""

from __future__ import annotations

import os

__all__ = ["DOCS_URL", "DocLinkMixin"]

#: Root of the published documentation (``NEUROPLUG_DOCS_URL`` overrides it, e.g. for a local build).
DOCS_URL = os.environ.get(
    "NEUROPLUG_DOCS_URL", "https://neuroplug.readthedocs.io/en/latest/"
)


class DocLinkMixin:
    """Give an estimator scikit-learn's "?" documentation link in its HTML representation.

    Put it before :class:`sklearn.base.BaseEstimator` among the bases.  The
    link goes to ``{DOCS_URL}api/generated/neuroplug.estimators.<Class>.html``,
    the page ``docs/api.rst`` generates for every estimator (they are all
    public in :mod:`neuroplug.estimators`, whatever module defines them).
    Subclasses defined outside neuroplug get no link, as in scikit-learn.
    """

    _doc_link_module = "neuroplug"
    _doc_link_template = (
        DOCS_URL.rstrip("/") + "/api/generated/{estimator_module}.{estimator_name}.html"
    )

    def _doc_link_url_param_generator(self) -> dict[str, str]:
        return {
            "estimator_module": "neuroplug.estimators",
            "estimator_name": type(self).__name__,
        }
