"""The plugin as users meet it: registered, listed, and usable by name in estimators."""

import importlib.metadata

import neuroplug_lrn.plugin
import numpy as np
import pytest
from neuroplug_lrn import ELU, GaussianNoise, LocalResponseNorm

from neuroplug.cli import format_plugins
from neuroplug.plugins import ENTRY_POINT_GROUP, PluginManager, get_plugin_manager

NAMES = ["elu", "gaussian_noise", "lrn"]


def test_the_hook_registers_the_three_layers(register_plugin, neuroplug_manager):
    assert (
        "lrn" not in neuroplug_manager.layers
    )  # the fixture's manager has built-ins only
    register_plugin(neuroplug_lrn.plugin, "lrn")
    assert neuroplug_manager.layers.by_plugin("lrn") == NAMES
    assert neuroplug_manager.layers.get("lrn") is LocalResponseNorm
    assert neuroplug_manager.layers.get("elu") is ELU
    assert neuroplug_manager.layers.get("gaussian_noise") is GaussianNoise


def test_names_do_not_clash_with_the_core():
    core = PluginManager(autoload=False)
    assert not set(NAMES) & set(core.layers.names())


def test_the_installed_entry_point_is_found():
    (ep,) = [
        e
        for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if e.name == "lrn"
    ]
    assert ep.value == "neuroplug_lrn.plugin" and ep.dist.name == "neuroplug-lrn"
    manager = PluginManager(disabled=())
    assert manager.layers.by_plugin("lrn") == NAMES
    assert not [e for e in manager.errors if e.plugin == "lrn"]


def test_listed_by_neuroplug_plugins():
    text, ok = format_plugins(PluginManager(disabled=()))
    assert ok, text
    assert "lrn  [entry point neuroplug_lrn.plugin in neuroplug-lrn 0.1.0]" in text
    assert "layers: elu, gaussian_noise, lrn" in text


def test_can_be_blocked_by_name(monkeypatch):
    monkeypatch.setenv("NEUROPLUG_DISABLE_PLUGINS", "lrn")
    manager = PluginManager()
    assert "lrn" not in manager.layers and "relu" in manager.layers
    assert "blocked by NEUROPLUG_DISABLE_PLUGINS" in format_plugins(manager)[0]


# -- by name inside estimators ----------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:120] / 16.0, y[:120]


def test_layers_by_name_in_a_cnn_classifier(digits):
    from neuroplug.estimators import CNNClassifier

    X, y = digits
    layers = (
        "conv:4x3x3,padding=same",
        "lrn:3,alpha=0.5",
        "elu",
        "maxpool:2",
        "gaussian_noise:0.05",
    )
    clf = CNNClassifier(
        layers, input_shape=(1, 8, 8), max_iter=3, learning_rate=0.01, random_state=0
    )
    clf.fit(X, y)
    kinds = [type(layer) for layer in clf.layers_]
    assert kinds[1:3] == [LocalResponseNorm, ELU] and GaussianNoise in kinds
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 10) and np.allclose(proba.sum(axis=1), 1)
    # The same seed gives the same model: the noise layer draws from the estimator's generator.
    again = CNNClassifier(
        layers, input_shape=(1, 8, 8), max_iter=3, learning_rate=0.01, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), proba)


def test_layers_in_a_grid_search(digits):
    from sklearn.model_selection import GridSearchCV

    from neuroplug.estimators import CNNClassifier

    X, y = digits
    grid = {
        "layers": [
            ("conv:4x3x3", "lrn:3", "relu", "dense:10"),
            ("conv:4x3x3", "elu:0.5", "dense:10"),
        ],
    }
    search = GridSearchCV(
        CNNClassifier(input_shape=(1, 8, 8), max_iter=2, random_state=0), grid, cv=2
    )
    search.fit(X, y)
    assert [p["layers"][1] for p in search.cv_results_["params"]] == [
        "lrn:3",
        "elu:0.5",
    ]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.layers_[1].__class__ in (LocalResponseNorm, ELU)


def test_uses_the_process_wide_manager():
    # Estimators look layers up in the process-wide manager, which loads the entry point by itself.
    assert get_plugin_manager().layers.entry("lrn").plugin == "lrn"


def test_a_model_with_plugin_layers_round_trips_through_the_safe_format(
    digits, tmp_path
):
    from neuroplug import persist
    from neuroplug.estimators import CNNClassifier
    from neuroplug.plugins import reset_plugin_manager

    X, y = digits
    layers = (
        "conv:4x3x3,padding=same",
        LocalResponseNorm(3, alpha=0.5),
        "elu:0.5",
        "maxpool:2",
    )
    clf = CNNClassifier(layers, input_shape=(1, 8, 8), max_iter=2, random_state=0).fit(
        X, y
    )
    path = persist.save(clf, tmp_path / "model")
    loaded = persist.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert (
        isinstance(loaded.layers[1], LocalResponseNorm)
        and loaded.layers[1].alpha == 0.5
    )
    # Where the plugin is not installed, loading names it and where the model got it from.
    previous = reset_plugin_manager(PluginManager(autoload=False))
    try:
        with pytest.raises(
            persist.ModelFormatError,
            match=r"layer '(elu|lrn)'.*plugin lrn \(entry point neuroplug_lrn",
        ):
            persist.load(path)
    finally:
        reset_plugin_manager(previous)


def test_the_plugin_registers_a_callback_estimators_find_by_name():
    """A third-party callback through the neuroplug_register_callbacks hook, by name and as an object."""
    import warnings

    import numpy as np
    from neuroplug_lrn.callbacks import StopAtLoss
    from sklearn.datasets import load_digits

    from neuroplug.estimators import CNNClassifier
    from neuroplug.plugins import get_callback

    assert get_callback("stop_at_loss") is StopAtLoss
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_name = CNNClassifier(
            ("dense:32", "relu"),
            max_iter=3,
            random_state=0,
            callbacks=("stop_at_loss",),
        ).fit(X / 16, y)
        by_object = CNNClassifier(
            ("dense:32", "relu"),
            max_iter=50,
            random_state=0,
            callbacks=(StopAtLoss(threshold=1.0),),
        ).fit(X / 16, y)
    assert (
        by_name.n_iter_ == 3
    )  # the name resolved to the plugin's class; its threshold is not reached
    assert by_object.stop_reason_ == "callback" and by_object.loss_curve_[-1] < 1.0
    assert np.all(np.array(by_object.loss_curve_[:-1]) >= 1.0)
