"""The top-level names: every estimator importable from ``neuroplug``, loaded lazily."""

import subprocess
import sys
import textwrap

import pytest

import neuroplug
import neuroplug.estimators

ESTIMATORS = sorted(neuroplug.estimators.__all__)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_is_a_top_level_name(name):
    assert getattr(neuroplug, name) is getattr(neuroplug.estimators, name)
    assert name in neuroplug.__all__
    assert name in dir(neuroplug)


def test_from_import_of_estimators_and_persistence():
    from neuroplug import CNNClassifier, ModelFormatError, load, save

    assert CNNClassifier is neuroplug.estimators.CNNClassifier
    assert save is neuroplug.persist.save and load is neuroplug.persist.load
    assert issubclass(ModelFormatError, Exception)


def test_all_names_resolve():
    assert set(neuroplug._LAZY) <= set(neuroplug.__all__)
    for name in neuroplug.__all__:
        assert getattr(neuroplug, name) is not None


def test_unknown_attribute_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no attribute 'CNNClasifier'"):
        neuroplug.CNNClasifier  # noqa: B018
    assert not hasattr(neuroplug, "not_a_name")


def test_import_neuroplug_does_not_load_estimators_or_sklearn_networks():
    # A fresh interpreter: this one has imported the estimators already.
    code = textwrap.dedent(
        """
        import sys
        import neuroplug
        eager = [m for m in ("neuroplug.estimators", "sklearn.neural_network", "neuroplug.network")
                 if m in sys.modules]
        print(",".join(eager))
        from neuroplug import CNNClassifier
        print(CNNClassifier.__module__, "neuroplug.estimators" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    eager, loaded = out.splitlines()
    assert eager == ""
    assert loaded == "neuroplug.estimators.cnn True"
