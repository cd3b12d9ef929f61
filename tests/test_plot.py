"""neuroplug.plot: image grids of filters, samples and feature maps, training curves,
confusion matrices (Agg backend, tiny fitted models), and ``neuroplug train --plot``."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.signal import correlate2d  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

from neuroplug.estimators import DBN, RBM, CNNClassifier, CNNRegressor, SigmoidBeliefNet  # noqa: E402
from neuroplug.plot import (  # noqa: E402
    FeatureMapDisplay,
    FilterDisplay,
    ImageGridDisplay,
    LossCurveDisplay,
    MisclassifiedDisplay,
    SampleDisplay,
    plot_confusion_matrix,
    plot_feature_maps,
    plot_filters,
    plot_loss_curve,
    plot_misclassified,
    plot_samples,
)

TINY_CNN = (
    "conv:4x3x3,padding=same",
    "relu",
    "maxpool:2",
    "conv:6x3x3",
    "relu",
    "dense:16",
    "relu",
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0), y


@pytest.fixture(scope="module")
def cnn(digits):
    X, y = digits
    return CNNClassifier(
        TINY_CNN,
        input_shape=(1, 8, 8),
        max_iter=3,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=5,
        random_state=0,
        dtype="float64",
    ).fit(X[:240], y[:240])


@pytest.fixture(scope="module")
def sbn(digits):
    X, _ = digits
    return SigmoidBeliefNet(hidden_layer_sizes=(12, 5), max_iter=2, random_state=0).fit(
        X[:150]
    )


@pytest.fixture(scope="module")
def rbm(digits):
    X, _ = digits
    return RBM(n_components=9, max_iter=2, random_state=0).fit(X[:150] > 0.5)


@pytest.fixture(scope="module")
def dbn(digits):
    X, _ = digits
    return DBN(hidden_layer_sizes=(9, 4), max_iter=2, random_state=0).fit(X[:150] > 0.5)


def _pixels(image):
    return np.asarray(image.get_array())


# --------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, n_cols, shape",
    [
        (10, None, (3, 4)),
        (9, None, (3, 3)),
        (1, None, (1, 1)),
        (10, 5, (2, 5)),
        (3, 8, (1, 3)),
    ],
)
def test_grid_shape(n, n_cols, shape):
    images = np.random.default_rng(0).random((n, 5, 4))
    d = ImageGridDisplay(images).plot(n_cols=n_cols)
    assert d.axes_.shape == shape
    assert len(d.images_) == n
    # Cells past the last image are switched off; the others show their image.
    assert [ax.axison for ax in d.axes_.flat] == [True] * n + [False] * (
        shape[0] * shape[1] - n
    )
    for i, im in enumerate(d.images_):
        np.testing.assert_allclose(_pixels(im), images[i])


def test_grid_draws_into_a_given_figure_and_saves_png(tmp_path):
    fig = Figure()  # no pyplot: what the CLI does
    d = ImageGridDisplay(np.zeros((6, 3, 3)), titles=list("abcdef"), title="six").plot(
        fig=fig
    )
    assert d.figure_ is fig and d.axes_.shape == (2, 3)
    assert [ax.get_title() for ax in d.axes_.flat] == list("abcdef")
    assert fig.get_suptitle() == "six"
    fig.savefig(tmp_path / "grid.png")
    png = matplotlib.image.imread(tmp_path / "grid.png")
    assert png.ndim == 3 and png.shape[0] > 50 and png.shape[1] > 50


def test_grid_shared_scale():
    images = np.stack([np.zeros((2, 2)), np.full((2, 2), 3.0)])
    images[0, 0, 0] = 1.0
    own = ImageGridDisplay(images).plot()
    assert own.images_[0].get_clim() == (0.0, 1.0)
    shared = ImageGridDisplay(images).plot(shared_scale=True)
    assert shared.images_[0].get_clim() == shared.images_[1].get_clim() == (0.0, 3.0)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((0, 3, 3)), "empty"),
        (np.zeros((3, 3)), "images must have shape"),
        (np.zeros((2, 3, 3, 2)), "images must have shape"),
    ],
)
def test_grid_rejects_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        ImageGridDisplay(images).plot()


def test_grid_rejects_bad_titles_and_n_cols():
    with pytest.raises(ValueError, match="one title per image"):
        ImageGridDisplay(np.zeros((3, 2, 2)), titles=["a"]).plot()
    with pytest.raises(ValueError, match="Received: n_cols=0"):
        ImageGridDisplay(np.zeros((3, 2, 2))).plot(n_cols=0)


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------
def test_filters_from_conv_weights():
    W = np.random.default_rng(1).normal(size=(6, 1, 5, 5))
    d = FilterDisplay.from_weights(W)
    assert d.axes_.shape == (2, 3) and len(d.images_) == 6
    for i in range(6):
        np.testing.assert_allclose(_pixels(d.images_[i]), W[i, 0])


def test_filters_with_several_input_channels():
    W = np.random.default_rng(2).normal(size=(4, 3, 2, 2))
    every = FilterDisplay.from_weights(
        W
    )  # one row per filter, one column per input channel
    assert every.axes_.shape == (4, 3)
    np.testing.assert_allclose(_pixels(every.images_[5]), W[1, 2])
    one = FilterDisplay.from_weights(W, in_channel=1)
    assert len(one.images_) == 4
    np.testing.assert_allclose(_pixels(one.images_[3]), W[3, 1])
    mean = FilterDisplay.from_weights(W, in_channel="mean")
    np.testing.assert_allclose(_pixels(mean.images_[0]), W[0].mean(axis=0))
    rgb = FilterDisplay.from_weights(W, in_channel="rgb")
    rgb0 = _pixels(rgb.images_[0])
    assert rgb0.shape == (2, 2, 3)
    assert rgb0.min() == pytest.approx(0.0) and rgb0.max() == pytest.approx(1.0)
    capped = FilterDisplay.from_weights(W, max_filters=2, max_channels=2)
    assert capped.axes_.shape == (2, 2)
    np.testing.assert_allclose(_pixels(capped.images_[3]), W[1, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_channel": 3}, "in_channel must be in"),
        ({"in_channel": "red"}, "in_channel must be None"),
        ({"max_filters": 0}, "max_filters"),
        ({"max_channels": 0}, "max_channels"),
    ],
)
def test_filters_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FilterDisplay.from_weights(np.zeros((4, 3, 2, 2)), **kwargs)


def test_filters_rgb_needs_three_channels():
    with pytest.raises(ValueError, match="needs 3 channels"):
        FilterDisplay.from_weights(np.zeros((4, 2, 2, 2)), in_channel="rgb")


def test_filters_from_rows_and_image_shape():
    W = np.arange(3 * 12, dtype=float).reshape(3, 12)
    d = FilterDisplay.from_weights(W, image_shape=(3, 4))
    np.testing.assert_allclose(_pixels(d.images_[2]), W[2].reshape(3, 4))
    square = FilterDisplay.from_weights(np.ones((2, 16)))
    assert _pixels(square.images_[0]).shape == (4, 4)
    with pytest.raises(ValueError, match="image_shape"):
        FilterDisplay.from_weights(W)  # 12 features: not a square
    with pytest.raises(ValueError, match="holds 10 values"):
        FilterDisplay.from_weights(W, image_shape=(2, 5))
    with pytest.raises(TypeError, match="image_shape must be a tuple"):
        FilterDisplay.from_weights(W, image_shape="3x4")
    with pytest.raises(ValueError, match="weights must be"):
        FilterDisplay.from_weights(np.zeros(5))


def test_filters_of_a_fitted_cnn(cnn):
    first = plot_filters(cnn)
    W0 = cnn.network_weights_[0]["W"]
    assert first.axes_.shape == (2, 2)
    for i in range(4):
        np.testing.assert_allclose(_pixels(first.images_[i]), W0[i, 0])
    assert "layer 0" in first.figure_.get_suptitle()
    second = FilterDisplay.from_estimator(
        cnn, layer=1
    )  # the second convolution, layer 3 of the stack
    W1 = cnn.network_weights_[3]["W"]
    assert W1.shape == (6, 4, 3, 3)
    assert second.axes_.shape == (6, 4) and len(second.images_) == 24
    np.testing.assert_allclose(_pixels(second.images_[4 * 5 + 3]), W1[5, 3])
    assert (
        FilterDisplay.from_estimator(cnn, layer=-1, title="x").figure_.get_suptitle()
        == "x"
    )
    with pytest.raises(
        ValueError, match=r"the model has 2 convolution layers. Received: layer=2"
    ):
        FilterDisplay.from_estimator(cnn, layer=2)
    with pytest.raises(TypeError, match="layer must be an int"):
        FilterDisplay.from_estimator(cnn, layer="first")


def test_filters_need_a_fitted_model_with_weights(digits):
    with pytest.raises(NotFittedError):
        FilterDisplay.from_estimator(CNNClassifier())
    X, y = digits
    not_images = CNNRegressor(("dense:4",), max_iter=1, random_state=0).fit(
        X[:50, :10], y[:50]
    )
    with pytest.raises(
        ValueError, match="10 features out as a square image; pass image_shape"
    ):
        FilterDisplay.from_estimator(not_images)
    assert FilterDisplay.from_estimator(not_images, image_shape=(2, 5)).axes_.shape == (
        2,
        2,
    )
    from sklearn.linear_model import LinearRegression

    with pytest.raises(TypeError, match="Received: estimator of type LinearRegression"):
        FilterDisplay.from_estimator(LinearRegression().fit(X[:20], y[:20]))


def test_filters_of_a_network_without_convolutions(digits):
    X, y = digits
    clf = CNNClassifier(
        ("dense:6", "sigmoid", "dense:3", "sigmoid"),
        input_shape=(8, 8),
        max_iter=1,
        random_state=0,
    ).fit(X[:80], y[:80])
    W0, W1 = (
        clf.network_weights_[0]["W"],
        clf.network_weights_[2]["W"],
    )  # (64, 6), (6, 3)
    first = FilterDisplay.from_estimator(clf)
    assert first.axes_.shape == (2, 3)
    np.testing.assert_allclose(_pixels(first.images_[5]), W0[:, 5].reshape(8, 8))
    second = FilterDisplay.from_estimator(clf, layer=1)  # projected into the data space
    np.testing.assert_allclose(
        _pixels(second.images_[2]), (W0 @ W1)[:, 2].reshape(8, 8)
    )
    with pytest.raises(
        ValueError, match="the model has 3 dense layers"
    ):  # the output layer counts
        FilterDisplay.from_estimator(clf, layer=3)


def test_filters_of_rbm_and_dbn(rbm, dbn):
    d = FilterDisplay.from_estimator(rbm)
    assert d.axes_.shape == (3, 3) and len(d.images_) == 9
    np.testing.assert_allclose(_pixels(d.images_[8]), rbm.components_[8].reshape(8, 8))
    with pytest.raises(ValueError, match="the model has 1 layers"):
        FilterDisplay.from_estimator(rbm, layer=1)
    bottom = FilterDisplay.from_estimator(dbn)
    np.testing.assert_allclose(
        _pixels(bottom.images_[0]), dbn.rbms_[0].components_[0].reshape(8, 8)
    )
    top = FilterDisplay.from_estimator(dbn, layer=1)
    assert len(top.images_) == 4 and "projected" in top.figure_.get_suptitle()
    projected = dbn.rbms_[1].components_ @ dbn.rbms_[0].components_
    np.testing.assert_allclose(
        _pixels(top.images_[3]), projected[3].reshape(8, 8), rtol=1e-5
    )


def test_filters_of_a_sigmoid_belief_net(sbn):
    bottom = FilterDisplay.from_estimator(sbn)
    R0 = sbn.recognition_weights_[0]  # (64, 12)
    assert len(bottom.images_) == 12 and bottom.axes_.shape == (3, 4)
    np.testing.assert_allclose(_pixels(bottom.images_[7]), R0[:, 7].reshape(8, 8))
    top = FilterDisplay.from_estimator(sbn, layer=1)  # projected into the data space
    projected = (sbn.recognition_weights_[1].T @ R0.T).reshape(5, 8, 8)
    assert len(top.images_) == 5
    np.testing.assert_allclose(_pixels(top.images_[4]), projected[4], rtol=1e-5)


def test_filters_of_conv_rbm_and_conv_dbn(digits):
    from neuroplug.estimators.crbm import ConvDBN, ConvRBM

    X, _ = digits
    rbm = ConvRBM(5, kernel_size=3, max_iter=1, random_state=0, backend="numpy").fit(
        X[:40]
    )
    d = FilterDisplay.from_estimator(rbm)
    assert d.axes_.shape == (2, 3) and len(d.images_) == 5
    np.testing.assert_allclose(_pixels(d.images_[4]), rbm.components_[4, 0])
    dbn = ConvDBN(
        filters=(3, 4),
        kernel_size=(3, 2),
        pool_size=(1, 1),
        max_iter=1,
        random_state=0,
        backend="numpy",
    ).fit(X[:40])
    top = FilterDisplay.from_estimator(dbn, layer=1)
    assert top.axes_.shape == (4, 3)  # 4 filters, one row each, 3 input channels
    np.testing.assert_allclose(_pixels(top.images_[-1]), dbn.rbms_[1].components_[3, 2])


# --------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------
def test_samples_of_a_sigmoid_belief_net(sbn):
    d = plot_samples(sbn, 10)
    assert d.axes_.shape == (3, 4) and len(d.images_) == 10
    assert d.samples_.shape == (10, 64)
    np.testing.assert_array_equal(
        d.samples_, sbn.sample(10)
    )  # an int random_state: the same draws
    for i in (0, 9):
        np.testing.assert_array_equal(
            _pixels(d.images_[i]), d.samples_[i].reshape(8, 8)
        )
    assert d.images_[0].get_cmap().name == "gray_r"


def test_samples_of_rbm_and_dbn(rbm, dbn):
    d = SampleDisplay.from_estimator(rbm, 6, sample_kwargs={"n_steps": 5})
    assert d.axes_.shape == (2, 3)
    np.testing.assert_array_equal(d.samples_, rbm.sample(6, n_steps=5))
    np.testing.assert_array_equal(_pixels(d.images_[5]), d.samples_[5].reshape(8, 8))
    means = SampleDisplay.from_estimator(
        dbn, 4, sample_kwargs={"n_steps": 3, "return_means": True}
    )
    assert means.axes_.shape == (2, 2)
    assert np.all(
        (means.samples_ > 0) & (means.samples_ < 1)
    )  # probabilities, not binary samples


def test_samples_use_image_shape_and_sample_kwargs():
    class Generator:
        """A generative model of 2x3 images whose sample() takes a keyword."""

        def sample(self, n_samples, *, level=0.0):
            return np.full((n_samples, 6), level) + np.arange(6)

    d = SampleDisplay.from_estimator(
        Generator(),
        4,
        image_shape=(2, 3),
        sample_kwargs={"level": 1.0},
        n_cols=4,
        title="",
    )
    assert d.axes_.shape == (1, 4)
    np.testing.assert_array_equal(
        _pixels(d.images_[1]), (np.arange(6) + 1.0).reshape(2, 3)
    )
    assert d.figure_.get_suptitle() == ""
    with pytest.raises(ValueError, match="image_shape"):
        SampleDisplay.from_estimator(Generator(), 2)  # 6 features are no square


def test_samples_reject_bad_arguments(sbn, cnn):
    with pytest.raises(
        TypeError,
        match=r"sample\(\) method \(RBM.*Received: estimator of type CNNClassifier",
    ):
        SampleDisplay.from_estimator(cnn)
    with pytest.raises(
        ValueError, match="n_samples must be an int >= 1. Received: n_samples=0"
    ):
        SampleDisplay.from_estimator(sbn, 0)


# --------------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------------
def test_feature_maps_match_a_direct_computation(cnn, digits):
    X, _ = digits
    d = plot_feature_maps(cnn, X[5])
    assert d.layer_ == 1  # the ReLU after the first convolution
    assert d.feature_maps_.shape == (4, 8, 8) and d.axes_.shape == (2, 2)
    W, b = cnn.network_weights_[0]["W"], cnn.network_weights_[0]["b"]
    image = np.pad(X[5].reshape(8, 8), 1)  # padding="same" for a 3x3 kernel
    for c in range(4):
        expected = np.maximum(correlate2d(image, W[c, 0], mode="valid") + b[c], 0.0)
        np.testing.assert_allclose(d.feature_maps_[c], expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(
            _pixels(d.images_[c]), expected, rtol=1e-6, atol=1e-9
        )


def test_feature_maps_of_a_chosen_layer(cnn, digits):
    X, _ = digits
    pooled = FeatureMapDisplay.from_estimator(
        cnn, X[0].reshape(1, 1, 8, 8), layer=2, max_maps=3
    )
    assert pooled.feature_maps_.shape == (4, 4, 4) and len(pooled.images_) == 3
    second = FeatureMapDisplay.from_estimator(cnn, X[0].reshape(8, 8), layer=3)
    assert second.feature_maps_.shape == (6, 2, 2)
    with pytest.raises(ValueError, match="not feature maps"):
        FeatureMapDisplay.from_estimator(cnn, X[0], layer=-1)
    with pytest.raises(ValueError, match=r"one sample of shape \(1, 8, 8\)"):
        FeatureMapDisplay.from_estimator(cnn, X[:2])
    with pytest.raises(ValueError, match="Received: layer=10"):
        FeatureMapDisplay.from_estimator(cnn, X[0], layer=10)
    with pytest.raises(NotFittedError):
        FeatureMapDisplay.from_estimator(CNNClassifier(), X[0])


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------
def test_loss_curve_with_validation_scores(cnn):
    d = plot_loss_curve(cnn)
    n = len(cnn.loss_curve_)
    assert n == cnn.n_iter_
    np.testing.assert_allclose(d.line_.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_allclose(d.line_.get_ydata(), cnn.loss_curve_)
    np.testing.assert_allclose(d.line_validation_.get_ydata(), cnn.validation_scores_)
    assert d.ax_validation_.get_ylabel() == "validation score"
    assert d.ax_.get_title() == "CNNClassifier"


def test_loss_curve_without_validation_and_of_other_models(sbn, rbm):
    d = LossCurveDisplay([3.0, 2.0, 1.5]).plot(log_scale=True)
    assert d.ax_validation_ is None and d.line_validation_ is None
    assert d.ax_.get_yscale() == "log"
    r = LossCurveDisplay.from_estimator(rbm)
    np.testing.assert_allclose(r.line_.get_ydata(), rbm.reconstruction_errors_)
    assert r.ax_.get_ylabel() == "reconstruction error"
    s = LossCurveDisplay.from_estimator(sbn)
    np.testing.assert_allclose(s.line_.get_ydata(), sbn.bound_curve_)
    assert "bound" in s.ax_.get_ylabel()
    fig = Figure()
    ax = fig.add_subplot()
    assert LossCurveDisplay.from_estimator(sbn, ax=ax).figure_ is fig


def test_loss_curve_rejects_bad_input(cnn):
    with pytest.raises(ValueError, match="one score per epoch \\(2\\)"):
        LossCurveDisplay([1.0, 2.0], validation_scores=[0.5]).plot()
    with pytest.raises(ValueError, match="empty"):
        LossCurveDisplay([]).plot()
    with pytest.raises(ValueError, match="log_scale"):
        LossCurveDisplay([1.0, -1.0]).plot(log_scale=True)
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(CNNClassifier())


def test_confusion_matrix(cnn, digits, tmp_path):
    X, y = digits
    d = plot_confusion_matrix(cnn, X[300:500], y[300:500])
    np.testing.assert_array_equal(
        d.confusion_matrix, confusion_matrix(y[300:500], cnn.predict(X[300:500]))
    )
    assert d.confusion_matrix.shape == (10, 10)
    normalized = plot_confusion_matrix(cnn, X[300:500], y[300:500], normalize="true")
    np.testing.assert_allclose(normalized.confusion_matrix.sum(axis=1), 1.0)
    d.figure_.savefig(tmp_path / "cm.png")
    assert matplotlib.image.imread(tmp_path / "cm.png").shape[0] > 100


def test_confusion_matrix_title_gives_the_accuracy(cnn, digits):
    X, y = digits
    accuracy = cnn.score(X[300:500], y[300:500])
    d = plot_confusion_matrix(cnn, X[300:500], y[300:500])
    assert d.accuracy_ == pytest.approx(accuracy)
    assert d.ax_.get_title() == f"CNNClassifier: accuracy {accuracy:.1%} on 200 samples"
    assert plot_confusion_matrix(cnn, X[:50], y[:50], title="").ax_.get_title() == ""
    assert (
        plot_confusion_matrix(cnn, X[:50], y[:50], title="mine").ax_.get_title()
        == "mine"
    )


def test_misclassified_display(cnn, digits):
    X, y = digits
    X_test, y_test = X[300:500], y[300:500]
    y_pred = cnn.predict(X_test)
    wrong = np.flatnonzero(y_pred != y_test)
    assert wrong.size > 3  # a 3-epoch network makes mistakes to show
    d = plot_misclassified(cnn, X_test, y_test, max_images=3)
    np.testing.assert_array_equal(d.indices_, wrong[:3])
    np.testing.assert_array_equal(d.y_true_, y_test[wrong[:3]])
    np.testing.assert_array_equal(d.y_pred_, y_pred[wrong[:3]])
    assert d.n_errors_ == wrong.size and len(d.images_) == 3
    titles = [ax.get_title() for ax in d.axes_.flat if ax.get_images()]
    assert titles == [
        f"{t} → {p}" for t, p in zip(y_test[wrong[:3]], y_pred[wrong[:3]])
    ]
    assert (
        d.figure_._suptitle.get_text()
        == f"Misclassified: {wrong.size} of 200 (true → predicted), the first 3 shown"
    )
    # The images are the rows of X, as 8x8 pictures (the estimator's input shape).
    np.testing.assert_allclose(d.images_[0].get_array(), X_test[wrong[0]].reshape(8, 8))


def test_misclassified_display_of_a_pipeline_and_4d_input(cnn, digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = digits
    pipe = make_pipeline(FunctionTransformer(lambda Z: Z.reshape(len(Z), -1)), cnn)
    d = MisclassifiedDisplay.from_estimator(
        pipe, X[300:400].reshape(-1, 1, 8, 8), y[300:400]
    )
    assert d.images_[0].get_array().shape == (8, 8)


def test_misclassified_display_errors(cnn, digits):
    X, y = digits
    with pytest.raises(ValueError, match="same number of samples"):
        MisclassifiedDisplay.from_estimator(cnn, X[:10], y[:9])
    right = cnn.predict(X[:40]) == y[:40]
    with pytest.raises(
        ValueError, match="classified right: there is no misclassified image"
    ):
        MisclassifiedDisplay.from_estimator(cnn, X[:40][right], y[:40][right])


def test_filter_display_shared_scale_is_centred_on_zero():
    W = np.random.default_rng(0).normal(size=(6, 1, 3, 3))
    W[0] *= 10  # one strong filter: the others must look weak next to it
    own = FilterDisplay.from_weights(W)
    assert own.colorbar_ is None
    assert own.images_[1].get_clim() == (
        W[1].min(),
        W[1].max(),
    )  # each filter scaled alone
    shared = FilterDisplay.from_weights(W, shared_scale=True)
    m = np.abs(W).max()
    assert all(im.get_clim() == (-m, m) for im in shared.images_)
    assert shared.images_[0].get_cmap().name == "RdBu_r"
    assert (
        shared.colorbar_ is not None
        and shared.colorbar_.vmin == -m
        and shared.colorbar_.vmax == m
    )
    grey = FilterDisplay.from_weights(W, shared_scale=True, cmap="gray", colorbar=False)
    assert grey.colorbar_ is None and grey.images_[0].get_cmap().name == "gray"


def test_save_training_plots_of_generative_models(digits, tmp_path):
    from neuroplug.plot import save_training_plots

    X, _ = digits
    rbm = RBM(n_components=4, max_iter=2, random_state=0).fit(X[:100] > 0.5)
    paths = save_training_plots(rbm, directory=tmp_path / "rbm", dpi=40)
    assert [p.name for p in paths] == ["loss-curve.png", "filters.png", "samples.png"]
    sbn = SigmoidBeliefNet(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(
        X[:100] > 0.5
    )
    assert "samples.png" in [
        p.name for p in save_training_plots(sbn, directory=tmp_path / "sbn", dpi=40)
    ]
    assert plt.get_fignums() == []


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import neuroplug.plot as plot_module

    monkeypatch.setitem(
        sys.modules, "matplotlib", None
    )  # "import matplotlib" now fails
    module = importlib.reload(
        plot_module
    )  # importing neuroplug.plot itself needs no matplotlib
    try:
        with pytest.raises(ImportError, match=r'pip install "neuroplug\[plot\]"'):
            module.LossCurveDisplay([1.0]).plot()
    finally:
        monkeypatch.undo()
        importlib.reload(plot_module)


# --------------------------------------------------------------------------------------------
# PNG files: save_training_plots and ``neuroplug train --plot DIR``
# --------------------------------------------------------------------------------------------
def _png_size(path):
    return matplotlib.image.imread(path).shape[:2]


def test_save_training_plots(cnn, digits, tmp_path):
    from neuroplug.plot import save_training_plots

    X, y = digits
    paths = save_training_plots(
        cnn, X[300:400], y[300:400], tmp_path / "new" / "dir", dpi=50
    )
    assert [p.name for p in paths] == [
        "loss-curve.png",
        "filters.png",
        "confusion-matrix.png",
        "misclassified.png",
    ]
    for p in paths:
        height, width = _png_size(p)
        assert height > 100 and width > 100
    assert plt.get_fignums() == []  # every figure closed once saved
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="must be a directory"):
        save_training_plots(cnn, X[:10], y[:10], tmp_path / "file")


def test_save_training_plots_of_a_dense_network(digits, tmp_path):
    from neuroplug.plot import save_training_plots

    X, y = digits
    reg = CNNRegressor(
        ("dense:6",), input_shape=(8, 8), max_iter=1, random_state=0
    ).fit(X[:60], y[:60])
    paths = save_training_plots(reg, X[:10], y[:10], tmp_path)
    # A regressor has no confusion matrix; a first dense layer on pixels has image-like weights.
    assert [p.name for p in paths] == ["loss-curve.png", "filters.png"]


def test_train_plot_option(tmp_path, capsys):
    from neuroplug.cli import main

    plots = tmp_path / "plots"
    status = main(
        [
            "train",
            "-q",
            "--layers",
            "conv:3x3x3",
            "relu",
            "maxpool:2",
            "dense:8",
            "relu",
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "model.npz"),
            "--plot",
            str(plots),
        ]
    )
    assert status == 0
    assert sorted(p.name for p in plots.iterdir()) == [
        "confusion-matrix.png",
        "filters.png",
        "loss-curve.png",
        "misclassified.png",
    ]
    out = capsys.readouterr().out
    assert out.count("Plot written to") == 4
    # The filters picture has one cell per filter of the first convolution: 3 filters in one row.
    height, width = _png_size(plots / "filters.png")
    assert width > height


def test_train_plot_option_refuses_a_file_before_training(tmp_path, capsys):
    from neuroplug.cli import main

    target = tmp_path / "taken"
    target.write_text("")
    status = main(
        [
            "train",
            "-q",
            "--epochs",
            "1",
            "--output",
            str(tmp_path / "m.npz"),
            "--plot",
            str(target),
        ]
    )
    assert status == 2
    assert "--plot must name a directory" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_loss_curve_marks_the_kept_epoch_and_draws_the_validation_loss():
    import warnings

    from sklearn.datasets import load_digits

    from neuroplug.estimators import CNNClassifier

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CNNClassifier(
            ("dense:16", "relu"), early_stopping=True, max_iter=6, random_state=0
        ).fit(X[:300] / 16, y[:300])
    d = LossCurveDisplay.from_estimator(clf)
    np.testing.assert_allclose(
        d.line_validation_loss_.get_ydata(), [r["val_loss"] for r in clf.history_]
    )
    assert d.kept_marker_.get_xdata()[0] == clf.best_epoch_
    assert f"epoch {clf.best_epoch_}" in d.kept_marker_.get_label()
    with pytest.raises(ValueError, match="kept_epoch must be an epoch in \\[1, 2\\]"):
        LossCurveDisplay([1.0, 0.5], kept_epoch=5).plot()
