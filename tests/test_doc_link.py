"""The "?" documentation link of the estimators' HTML representation."""

from sklearn.base import BaseEstimator

from neuroplug._doc_link import DOCS_URL, DocLinkMixin


def _estimator_class(module):
    return type("CNNClassifier", (DocLinkMixin, BaseEstimator), {"__module__": module})


def test_link_to_the_api_page_of_the_public_name():
    est = _estimator_class("neuroplug.estimators.cnn")()
    expected = (
        DOCS_URL.rstrip("/") + "/api/generated/neuroplug.estimators.CNNClassifier.html"
    )
    assert est._get_doc_link() == expected
    html = est._repr_html_()
    assert f'href="{expected}"' in html


def test_no_link_for_classes_outside_neuroplug():
    assert _estimator_class("my_package.models")()._get_doc_link() == ""
