"""Pictures of fitted models, in scikit-learn's Display style (needs matplotlib).

Install the optional dependency with ``pip install "neuroplug[plot]"``.

Every display follows scikit-learn's pattern (as
:class:`sklearn.metrics.ConfusionMatrixDisplay` does): a class method
``from_estimator`` (or ``from_weights``) computes what to draw from a fitted
estimator and calls :meth:`plot`, which draws it and stores the matplotlib
objects in attributes ending in ``_`` (``figure_``, ``axes_`` or ``ax_``).
Each display can be drawn again into another figure with ``plot``.

==============================  ==============================================
:class:`FilterDisplay`          learned convolution filters (CNN, ConvRBM,
                                ConvDBN) and RBM/DBN weights, as an image grid
:class:`SampleDisplay`          samples drawn from a generative model (RBM,
                                DBN, sigmoid belief net), as an image grid
:class:`FeatureMapDisplay`      the feature maps of one image inside a fitted
                                CNN
:class:`LossCurveDisplay`       ``loss_curve_`` and ``validation_scores_`` per
                                epoch (or the training curve of a pretrainer)
:class:`MisclassifiedDisplay`   the test images a classifier gets wrong, with
                                their true and predicted labels
==============================  ==============================================

:func:`plot_confusion_matrix` draws scikit-learn's
:class:`~sklearn.metrics.ConfusionMatrixDisplay` for a fitted classifier,
titled with its accuracy.
The ``plot_*`` functions are shorthands for the ``from_estimator`` methods,
and :func:`save_training_plots` writes the pictures of a fitted CNN to PNG
files (``neuroplug train --plot DIR``).

When neither ``ax`` nor ``fig`` is given, the figure is made with
:mod:`matplotlib.pyplot` (so it shows in notebooks and in
``plt.show()``); pass a :class:`matplotlib.figure.Figure` made without pyplot
to draw off-screen, as ``neuroplug train --plot`` does.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ImageGridDisplay",
    "FilterDisplay",
    "SampleDisplay",
    "FeatureMapDisplay",
    "LossCurveDisplay",
    "MisclassifiedDisplay",
    "plot_filters",
    "plot_samples",
    "plot_feature_maps",
    "plot_loss_curve",
    "plot_confusion_matrix",
    "plot_misclassified",
    "save_training_plots",
]

# Side of one cell of an image grid, in inches, and the widest figure made
# when the caller gives none (a grid of 100 filters still fits a page).
_CELL_INCHES = 1.0
_MAX_FIG_WIDTH = 10.0
_MIN_FIG_WIDTH = 4.0


def _require_matplotlib(caller: str) -> Any:
    """Import matplotlib or raise an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            f'{caller} needs matplotlib; install it with: pip install "neuroplug[plot]"'
        ) from exc
    return matplotlib


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"{name} must be an int >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def _check_fitted(estimator: Any, attributes: Sequence[str], what: str) -> None:
    from sklearn.utils.validation import check_is_fitted

    if not any(hasattr(estimator, a) for a in attributes):
        # Tell apart an unfitted estimator of the right kind from an
        # estimator that never has such an attribute.
        check_is_fitted(estimator)
        raise TypeError(
            f"{what} needs a fitted estimator with one of the attributes {', '.join(attributes)}. "
            f"Received: estimator of type {type(estimator).__name__}"
        )


def _grid_shape(n: int, n_cols: int | None) -> tuple[int, int]:
    """Rows and columns of a grid for ``n`` images: nearly square unless ``n_cols`` is given."""
    if n_cols is None:
        n_cols = max(1, math.ceil(math.sqrt(n)))
    else:
        n_cols = _check_int(n_cols, "n_cols")
    n_cols = min(n_cols, n)
    return math.ceil(n / n_cols), n_cols


def _square_side(n_features: int, name: str) -> int:
    side = int(round(math.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(
            f"Cannot lay {n_features} features out as a square image; pass image_shape=(height, width). "
            f"Received: {name} with {n_features} features"
        )
    return side


def _as_image_shape(image_shape: Any, n_features: int) -> tuple[int, ...]:
    """Normalise ``image_shape`` to ``(h, w)`` or ``(c, h, w)`` and check it holds ``n_features``."""
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise TypeError(
            f"image_shape must be a tuple of ints such as (8, 8) or (1, 28, 28). Received: image_shape={image_shape!r}"
        ) from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width) or (channels, height, width). Received: image_shape={image_shape!r}"
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape {shape} holds {int(np.prod(shape))} values but each row has {n_features}. "
            f"Received: image_shape={image_shape!r}"
        )
    return shape


def _rows_to_images(
    rows: np.ndarray, image_shape: Any, estimator: Any = None, name: str = "X"
) -> np.ndarray:
    """Reshape ``(n, n_features)`` rows to ``(n, h, w)`` or ``(n, c, h, w)`` images.

    The shape comes from ``image_shape``, else from the estimator's
    ``input_shape_`` (or ``input_shape``) when it is an image shape, else a
    square one-channel image.
    """
    n_features = rows.shape[1]
    if image_shape is None and estimator is not None:
        for attr in ("input_shape_", "input_shape"):
            candidate = getattr(estimator, attr, None)
            if (
                candidate is not None
                and len(tuple(candidate)) in (2, 3)
                and int(np.prod(candidate)) == n_features
            ):
                image_shape = tuple(candidate)
                break
    if image_shape is None:
        side = _square_side(n_features, name)
        image_shape = (side, side)
    shape = _as_image_shape(image_shape, n_features)
    return rows.reshape(rows.shape[0], *shape)


def _images_for_display(
    images: np.ndarray,
    in_channel: Any = None,
    name: str = "images",
    max_channels: int | None = None,
) -> tuple[np.ndarray, int]:
    """Turn ``(n, h, w)``, ``(n, 1, h, w)``, ``(n, 3, h, w)`` or ``(n, c, h, w)`` into drawable images.

    Returns ``(images, n_channels_shown)``: ``(n, h, w)`` grey images, or
    ``(n, h, w, 3)`` colour images when ``in_channel="rgb"``.  For ``c``
    channels with ``in_channel=None`` the channels are laid side by side,
    ``n * c`` images in row-major order (one grid row per filter), at most
    ``max_channels`` per filter.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:
        return images, 1
    if images.ndim != 4:
        raise ValueError(
            f"{name} must have shape (n, height, width) or (n, channels, height, width). "
            f"Received: {name}.shape={images.shape}"
        )
    n, c = images.shape[:2]
    if in_channel is None:
        if max_channels is not None:
            c = min(c, _check_int(max_channels, "max_channels"))
            images = images[:, :c]
        return images.reshape(n * c, *images.shape[2:]), c
    if in_channel == "rgb":
        if c != 3:
            raise ValueError(
                f"in_channel='rgb' needs 3 channels. Received: {name} with {c} channels"
            )
        return np.moveaxis(images, 1, -1), 1
    if in_channel == "mean":
        return images.mean(axis=1), 1
    if isinstance(in_channel, numbers.Integral) and not isinstance(in_channel, bool):
        if not -c <= in_channel < c:
            raise ValueError(
                f"in_channel must be in [0, {c}) for {c} channels. Received: in_channel={in_channel}"
            )
        return images[:, int(in_channel)], 1
    raise ValueError(
        f"in_channel must be None (every channel), an int, 'mean' or 'rgb'. Received: in_channel={in_channel!r}"
    )


def _rescale_rgb(images: np.ndarray) -> np.ndarray:
    """Map each colour image to [0, 1] (imshow clips RGB values outside it)."""
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - lo) / np.where(hi > lo, hi - lo, 1.0)


class ImageGridDisplay:
    """A grid of images, one matplotlib Axes each.

    The base of :class:`FilterDisplay`, :class:`SampleDisplay` and
    :class:`FeatureMapDisplay`; usable on its own for any stack of images.

    Parameters
    ----------
    images : array-like of shape (n, height, width) or (n, height, width, 3)
        Grey images, or colour images with values in [0, 1].
    titles : sequence of str, default=None
        One title per image.
    n_channels : int, default=1
        Number of consecutive images that belong to one item (the input
        channels of one filter); with ``plot(n_cols=None)`` each item gets
        its own row.
    title : str, default=None
        Title above the grid.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    axes_ : ndarray of matplotlib.axes.Axes of shape (n_rows, n_cols)
        The grid; Axes past the last image are switched off.
    images_ : list of matplotlib.image.AxesImage
        One per image, in row-major order.
    """

    _default_cmap = "gray"

    def __init__(
        self,
        images: Any,
        *,
        titles: Sequence[str] | None = None,
        n_channels: int = 1,
        title: str | None = None,
    ) -> None:
        self.images = images
        self.titles = titles
        self.n_channels = n_channels
        self.title = title

    def _checked_images(self) -> np.ndarray:
        images = np.asarray(self.images, dtype=np.float64)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(
                "images must have shape (n, height, width) or (n, height, width, 3). "
                f"Received: images.shape={images.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError(
                "images is empty: there is nothing to draw. Received: images.shape="
                f"{images.shape}"
            )
        if self.titles is not None and len(self.titles) != images.shape[0]:
            raise ValueError(
                f"titles must hold one title per image ({images.shape[0]}). Received: {len(self.titles)} titles"
            )
        return images

    def plot(
        self,
        *,
        n_cols: int | None = None,
        cmap: Any = None,
        shared_scale: bool = False,
        fig: Any = None,
        title: str | None = None,
    ) -> ImageGridDisplay:
        """Draw the images as a grid.

        Parameters
        ----------
        n_cols : int, default=None
            Number of columns.  ``None``: one row per item when items have
            several channels, else a nearly square grid.
        cmap : str or matplotlib Colormap, default=None
            Colour map of grey images (the display's default when ``None``).
        shared_scale : bool, default=False
            Use one grey scale for every image (the overall minimum and
            maximum), so that magnitudes compare across images; by default
            each image is scaled to its own range, which shows the shape of
            small filters best.
        fig : matplotlib.figure.Figure, default=None
            Figure to draw into (it should be empty).  ``None`` makes a new
            one with :func:`matplotlib.pyplot.figure`.
        title : str, default=None
            Title above the grid (``None``: the display's ``title``; ``""``
            for none).

        Returns
        -------
        display : ImageGridDisplay
            ``self``, with ``figure_``, ``axes_`` and ``images_`` set.
        """
        _require_matplotlib(f"{type(self).__name__}.plot")
        images = self._checked_images()
        n = images.shape[0]
        if n_cols is None and self.n_channels > 1:
            n_cols = self.n_channels
        n_rows, n_cols = _grid_shape(n, n_cols)
        if fig is None:
            import matplotlib.pyplot as plt

            # Cells of about an inch, but room for the title over a narrow grid.
            width = min(_MAX_FIG_WIDTH, max(_MIN_FIG_WIDTH, _CELL_INCHES * n_cols))
            cell = min(width / n_cols, 1.5 * _CELL_INCHES)
            fig = plt.figure(figsize=(width, cell * n_rows + 0.5), layout="constrained")
        axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
        vmin = vmax = None
        if shared_scale and images.ndim == 3:
            vmin, vmax = self._shared_limits(images)
        if images.ndim == 4:
            images = _rescale_rgb(images)
        cmap = self._default_cmap if cmap is None else cmap
        drawn = []
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= n:
                ax.set_axis_off()
                continue
            drawn.append(
                ax.imshow(
                    images[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
                )
            )
            if self.titles is not None:
                ax.set_title(self.titles[i], fontsize="small")
        title = self.title if title is None else title
        if title:
            fig.suptitle(title)
        self.figure_, self.axes_, self.images_ = fig, axes, drawn
        return self

    def _shared_limits(self, images: np.ndarray) -> tuple[float, float]:
        """The one colour scale of ``shared_scale=True``: the overall minimum and maximum."""
        return float(images.min()), float(images.max())


# ---------------------------------------------------------------------------
# Filters and weights
# ---------------------------------------------------------------------------
def _conv_layers(estimator: Any) -> list[tuple[int, np.ndarray]]:
    """``(index in layers_, W)`` of each convolution of a fitted CNN, in order."""
    from .layers.conv import Conv2D

    return [
        (i, np.asarray(w["W"]))
        for i, (layer, w) in enumerate(
            zip(estimator.layers_, estimator.network_weights_)
        )
        if isinstance(layer, Conv2D)
    ]


def _dense_weights(estimator: Any) -> list[np.ndarray]:
    """Each dense layer's ``W.T`` (one row per unit) of a fitted CNN, in order."""
    from .layers.dense import Dense

    return [
        np.asarray(w["W"], dtype=np.float64).T
        for layer, w in zip(estimator.layers_, estimator.network_weights_)
        if isinstance(layer, Dense)
    ]


def _pick(n_items: int, layer: Any, what: str) -> int:
    """Check ``layer`` as an index into ``n_items`` things (negative from the end); return it as >= 0."""
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
        raise TypeError(f"layer must be an int. Received: layer={layer!r}")
    if not -n_items <= layer < n_items:
        raise ValueError(
            f"layer must be in [0, {n_items}): the model has {n_items} {what}. Received: layer={layer}"
        )
    return int(layer) % n_items


def _filter_title(W: np.ndarray, where: str) -> str:
    return f"{where}: {W.shape[0]} filters {W.shape[2]}x{W.shape[3]}"


def _estimator_filters(
    estimator: Any, layer: int, image_shape: Any
) -> tuple[np.ndarray, str]:
    """The weights of ``layer`` as images ``(n, h, w)`` or ``(n, c, h, w)``, and a title."""
    if hasattr(estimator, "network_weights_") and hasattr(
        estimator, "layers_"
    ):  # CNN, DBNClassifier
        convs = _conv_layers(estimator)
        if convs:
            k = _pick(len(convs), layer, "convolution layers")
            index, W = convs[k]
            return W, _filter_title(W, f"Convolution {k} (layer {index})")
        # No convolution (a DBNClassifier, an MLP-like stack): the dense
        # layers' weights, one image per unit, deeper ones projected down.
        dense = _dense_weights(estimator)
        if not dense:
            raise ValueError(
                "The network has neither convolution nor dense layers, so it has no filters to show. "
                f"Received: estimator with layers {[type(l).__name__ for l in estimator.layers_]}"
            )
        k = _pick(len(dense), layer, "dense layers")
        W = dense[k]
        for lower in reversed(dense[:k]):
            W = W @ lower
        title = f"Dense layer {k}: weights of {W.shape[0]} units"
        if k:
            title += ", projected through the layers below"
        return _rows_to_images(W, image_shape, estimator, "the dense weights"), title
    if hasattr(estimator, "rbms_"):  # stacks of RBMs: DBN, ConvDBN
        rbms = estimator.rbms_
        k = _pick(len(rbms), layer, "layers")
        W = np.asarray(rbms[k].components_, dtype=np.float64)
        if W.ndim == 4:
            return W, _filter_title(W, f"Layer {k}")
        # Deeper dense layers are shown in the data space: the product of the
        # weights below, a linear view of what each unit responds to.
        for lower in reversed(rbms[:k]):
            W = W @ np.asarray(lower.components_, dtype=np.float64)
        title = f"Layer {k}: weights of {W.shape[0]} units"
        if k:
            title += ", projected through the layers below"
        return _rows_to_images(W, image_shape, estimator, "components_"), title
    if hasattr(estimator, "components_"):  # RBM, ConvRBM
        _pick(1, layer, "layers")
        W = np.asarray(estimator.components_, dtype=np.float64)
        if W.ndim == 4:
            return W, _filter_title(W, type(estimator).__name__)
        if W.ndim != 2:
            raise ValueError(
                f"components_ must be 2-D or 4-D. Received: components_.shape={W.shape}"
            )
        return _rows_to_images(
            W, image_shape, estimator, "components_"
        ), f"Weights of {W.shape[0]} hidden units"
    if hasattr(estimator, "recognition_weights_"):  # SigmoidBeliefNet
        Ws = estimator.recognition_weights_  # Ws[l]: (n_l, n_{l+1})
        k = _pick(len(Ws), layer, "layers")
        W = np.asarray(Ws[k], dtype=np.float64).T
        for lower in reversed(Ws[:k]):
            W = W @ np.asarray(lower, dtype=np.float64).T
        title = f"Layer {k}: recognition weights of {W.shape[0]} units"
        if k:
            title += ", projected through the layers below"
        return _rows_to_images(W, image_shape, estimator, "recognition_weights_"), title
    _check_fitted(
        estimator,
        ("network_weights_", "rbms_", "components_", "recognition_weights_"),
        "FilterDisplay",
    )
    raise AssertionError("unreachable")  # pragma: no cover


def _limit(images: np.ndarray, max_items: int | None, name: str) -> np.ndarray:
    if max_items is None:
        return images
    return images[: _check_int(max_items, name)]


class FilterDisplay(ImageGridDisplay):
    """Learned filters or weights as an image grid.

    Build it with :meth:`from_estimator` (fitted CNN, RBM, DBN, ConvRBM,
    ConvDBN, sigmoid belief net) or :meth:`from_weights` (any array).  Each
    image is scaled to its own range unless ``shared_scale=True``.

    Parameters
    ----------
    images : array-like of shape (n, height, width) or (n, height, width, 3)
        The filters as images.
    titles : sequence of str, default=None
        One title per image.
    n_channels : int, default=1
        Images per filter (its input channels, one grid row per filter).
    title : str, default=None
        Title above the grid.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    axes_ : ndarray of matplotlib.axes.Axes of shape (n_rows, n_cols)
        The grid.
    images_ : list of matplotlib.image.AxesImage
        One per image.

    See Also
    --------
    SampleDisplay : Samples of a generative model.
    FeatureMapDisplay : What the filters make of one image.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from neuroplug.plot import FilterDisplay
    >>> W = np.random.default_rng(0).normal(size=(6, 1, 5, 5))  # (out_c, in_c, kh, kw)
    >>> FilterDisplay.from_weights(W).axes_.shape
    (2, 3)
    >>> d = FilterDisplay.from_weights(W, shared_scale=True)  # one scale, centred on zero
    >>> d.colorbar_ is not None, d.images_[0].get_clim() == d.images_[5].get_clim()
    (True, True)
    """

    #: Colour map of ``shared_scale=True``: zero white, positive red, negative blue.
    _shared_cmap = "RdBu_r"

    def plot(  # type: ignore[override]
        self,
        *,
        shared_scale: bool = False,
        cmap: Any = None,
        colorbar: bool | None = None,
        **kwargs: Any,
    ) -> FilterDisplay:
        """Draw the filters; see :meth:`ImageGridDisplay.plot` for ``n_cols``, ``fig`` and ``title``.

        Parameters
        ----------
        shared_scale : bool, default=False
            One colour scale for every filter, centred on zero (``-m`` to
            ``m`` with ``m`` the largest absolute weight), drawn with a
            diverging colour map and one colour bar: the filters' signs and
            magnitudes compare across the grid, which small (3x3) filters
            need to read as more than noise.  By default each filter is
            scaled to its own range in grey, which shows the shape of large
            filters best.
        cmap : str or matplotlib Colormap, default=None
            Colour map (``None``: grey, or ``"RdBu_r"`` with
            ``shared_scale=True``).
        colorbar : bool, default=None
            Draw a colour bar (``None``: with ``shared_scale=True`` only).
        **kwargs
            Passed to :meth:`ImageGridDisplay.plot`.

        Returns
        -------
        display : FilterDisplay
            ``self``, with ``figure_``, ``axes_``, ``images_`` and
            ``colorbar_`` (``None`` when none is drawn) set.
        """
        if cmap is None and shared_scale:
            cmap = self._shared_cmap
        super().plot(shared_scale=shared_scale, cmap=cmap, **kwargs)
        self.colorbar_ = None
        if (
            (shared_scale if colorbar is None else colorbar)
            and self.images_
            and self.images_[0].get_array().ndim == 2
        ):
            self.colorbar_ = self.figure_.colorbar(
                self.images_[0], ax=self.axes_, shrink=0.8, label="weight"
            )
        return self

    def _shared_limits(self, images: np.ndarray) -> tuple[float, float]:
        """Symmetric around zero, so that white is a zero weight in every filter."""
        m = float(np.abs(images).max()) or 1.0
        return -m, m

    @classmethod
    def from_weights(
        cls,
        weights: Any,
        *,
        image_shape: tuple[int, ...] | None = None,
        in_channel: int | str | None = None,
        max_filters: int | None = 64,
        max_channels: int | None = 8,
        title: str | None = None,
        **plot_kwargs: Any,
    ) -> FilterDisplay:
        """Draw a weight array as filters.

        Parameters
        ----------
        weights : array-like
            ``(out_c, in_c, kh, kw)`` convolution weights, ``(n, h, w)``
            images, or ``(n, n_features)`` rows (an RBM's ``components_``)
            reshaped with ``image_shape``.
        image_shape : tuple of int, default=None
            ``(h, w)`` or ``(c, h, w)`` of one row of 2-D ``weights``
            (``None``: a square one-channel image).
        in_channel : None, int, "mean" or "rgb", default=None
            For filters with several input channels: ``None`` shows every
            channel (one row per filter), an int one channel, ``"mean"`` their
            mean, ``"rgb"`` three channels as one colour image.
        max_filters : int or None, default=64
            Show at most this many filters (the first ones).
        max_channels : int or None, default=8
            With ``in_channel=None``, show at most this many input channels
            of each filter (the first ones).
        title : str, default=None
            Title above the grid.
        **plot_kwargs
            Passed to :meth:`plot` (``n_cols``, ``cmap``, ``shared_scale``,
            ``fig``).

        Returns
        -------
        display : FilterDisplay
        """
        W = np.asarray(weights, dtype=np.float64)
        if W.ndim == 2:
            W = _rows_to_images(W, image_shape, None, "weights")
        elif W.ndim not in (3, 4):
            raise ValueError(
                "weights must be 2-D (n, n_features), 3-D (n, h, w) or 4-D (out_c, in_c, kh, kw). "
                f"Received: weights.shape={W.shape}"
            )
        W = _limit(W, max_filters, "max_filters")
        images, n_channels = _images_for_display(W, in_channel, "weights", max_channels)
        return cls(images, n_channels=n_channels, title=title).plot(**plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        *,
        layer: int = 0,
        image_shape: tuple[int, ...] | None = None,
        in_channel: int | str | None = None,
        max_filters: int | None = 64,
        max_channels: int | None = 8,
        title: str | None = None,
        **plot_kwargs: Any,
    ) -> FilterDisplay:
        """Draw the learned filters of a fitted estimator.

        Parameters
        ----------
        estimator : fitted estimator
            :class:`~neuroplug.estimators.CNNClassifier` or
            ``CNNRegressor`` (the filters of a convolution layer; for a
            network without convolutions, such as a
            :class:`~neuroplug.estimators.DBNClassifier`, the weights of a
            dense layer), an :class:`~neuroplug.estimators.RBM`
            (``components_``), a DBN, ConvRBM or ConvDBN (a layer's
            ``components_``), or a
            :class:`~neuroplug.estimators.SigmoidBeliefNet` (its recognition
            weights).  Dense weights above the first layer are multiplied
            by the weights below, which shows each unit in the data space
            (a linear view of what it responds to).
        layer : int, default=0
            Which convolution of a CNN (0 is the first convolution, whatever
            its position in the stack), which dense layer of a network
            without convolutions, or which layer of a stack.
        image_shape : tuple of int, default=None
            Shape of one data row for dense weights; ``None`` uses the
            estimator's input shape, else a square image.
        in_channel : None, int, "mean" or "rgb", default=None
            How to show filters with several input channels (see
            :meth:`from_weights`).
        max_filters : int or None, default=64
            Show at most this many filters.
        max_channels : int or None, default=8
            With ``in_channel=None``, show at most this many input channels
            of each filter.
        title : str, default=None
            Title above the grid (``None``: says which layer it is).
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : FilterDisplay
        """
        W, default_title = _estimator_filters(estimator, layer, image_shape)
        W = _limit(W, max_filters, "max_filters")
        images, n_channels = _images_for_display(
            W, in_channel, "the filters", max_channels
        )
        return cls(
            images,
            n_channels=n_channels,
            title=default_title if title is None else title,
        ).plot(**plot_kwargs)


# ---------------------------------------------------------------------------
# Samples of generative models
# ---------------------------------------------------------------------------
class SampleDisplay(ImageGridDisplay):
    """Samples drawn from a generative model, as an image grid.

    Parameters
    ----------
    images : array-like of shape (n, height, width)
        The samples as images.
    titles : sequence of str, default=None
        One title per image.
    n_channels : int, default=1
        Images per item (see :class:`ImageGridDisplay`).
    title : str, default=None
        Title above the grid.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    axes_ : ndarray of matplotlib.axes.Axes of shape (n_rows, n_cols)
        The grid.
    images_ : list of matplotlib.image.AxesImage
        One per sample.
    samples_ : ndarray of shape (n_samples, n_features)
        The samples as the estimator returned them (set by
        :meth:`from_estimator`).

    See Also
    --------
    FilterDisplay : The weights of the same models.
    """

    _default_cmap = "gray_r"

    def plot(self, *, shared_scale: bool = True, **kwargs: Any) -> SampleDisplay:  # type: ignore[override]
        """Draw the samples (on one grey scale by default); see :meth:`ImageGridDisplay.plot`.

        Returns
        -------
        display : SampleDisplay
        """
        super().plot(shared_scale=shared_scale, **kwargs)
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        n_samples: int = 16,
        *,
        image_shape: tuple[int, ...] | None = None,
        sample_kwargs: dict[str, Any] | None = None,
        title: str | None = None,
        **plot_kwargs: Any,
    ) -> SampleDisplay:
        """Draw ``n_samples`` samples of a fitted generative model.

        Parameters
        ----------
        estimator : fitted estimator with a ``sample(n_samples, ...)`` method
            An RBM, a DBN or a :class:`~neuroplug.estimators.SigmoidBeliefNet`.
        n_samples : int, default=16
            Number of samples.
        image_shape : tuple of int, default=None
            ``(h, w)`` or ``(c, h, w)`` of one sample; ``None`` uses the
            estimator's ``input_shape_`` when it has one, else a square image.
        sample_kwargs : dict, default=None
            Extra keyword arguments of ``estimator.sample`` (for example the
            number of Gibbs steps of an RBM).
        title : str, default=None
            Title above the grid.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : SampleDisplay
        """
        n_samples = _check_int(n_samples, "n_samples")
        if not callable(getattr(estimator, "sample", None)):
            raise TypeError(
                "SampleDisplay needs a generative model with a sample() method (RBM, DBN, SigmoidBeliefNet). "
                f"Received: estimator of type {type(estimator).__name__}"
            )
        samples = np.asarray(estimator.sample(n_samples, **(sample_kwargs or {})))
        if samples.ndim != 2:
            samples = samples.reshape(samples.shape[0], -1)
        images = _rows_to_images(samples, image_shape, estimator, "the samples")
        if images.ndim == 4:
            images, _ = _images_for_display(
                images, "rgb" if images.shape[1] == 3 else 0, "the samples"
            )
        name = type(estimator).__name__
        display = cls(
            images,
            title=f"{n_samples} samples from the {name}" if title is None else title,
        )
        display.samples_ = samples
        return display.plot(**plot_kwargs)


# ---------------------------------------------------------------------------
# Feature maps
# ---------------------------------------------------------------------------
def _default_feature_layer(layers: Sequence[Any]) -> int:
    """Index of the first convolution, or of the activation right after it."""
    from .layers.activations import Activation
    from .layers.conv import Conv2D

    for i, layer in enumerate(layers):
        if isinstance(layer, Conv2D):
            if i + 1 < len(layers) and isinstance(layers[i + 1], Activation):
                return i + 1
            return i
    raise ValueError(
        "The network has no convolution layer; pass layer= to choose the layer whose output to show. "
        f"Received: layers {[type(l).__name__ for l in layers]}"
    )


class FeatureMapDisplay(ImageGridDisplay):
    """The feature maps of one image at one layer of a fitted CNN.

    Parameters
    ----------
    images : array-like of shape (n_maps, height, width)
        The feature maps.
    titles : sequence of str, default=None
        One title per image.
    n_channels : int, default=1
        Images per item (see :class:`ImageGridDisplay`).
    title : str, default=None
        Title above the grid.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    axes_ : ndarray of matplotlib.axes.Axes of shape (n_rows, n_cols)
        The grid.
    images_ : list of matplotlib.image.AxesImage
        One per feature map.
    feature_maps_ : ndarray of shape (channels, height, width)
        Every feature map of the layer (set by :meth:`from_estimator`).
    layer_ : int
        Index in the estimator's ``layers_`` of the layer shown.

    See Also
    --------
    FilterDisplay : The filters that make these maps.
    """

    _default_cmap = "viridis"

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        image: Any,
        *,
        layer: int | None = None,
        max_maps: int | None = 64,
        title: str | None = None,
        **plot_kwargs: Any,
    ) -> FeatureMapDisplay:
        """Pass ``image`` through a fitted CNN and draw the output of ``layer``.

        Parameters
        ----------
        estimator : fitted CNNClassifier or CNNRegressor
            The network.
        image : array-like
            One sample, as ``fit`` accepted it: ``(n_features,)``, ``(h,
            w)``, ``(c, h, w)``, or a batch of one of these shapes.
        layer : int, default=None
            Index in ``estimator.layers_`` of the layer whose output to show
            (negative counts from the end).  ``None``: the first convolution,
            after its activation when one follows it.
        max_maps : int or None, default=64
            Show at most this many maps (the first channels).
        title : str, default=None
            Title above the grid (``None``: names the layer).
        **plot_kwargs
            Passed to :meth:`plot` (``n_cols``, ``cmap``, ``shared_scale``, ``fig``).

        Returns
        -------
        display : FeatureMapDisplay
        """
        from sklearn.base import clone
        from sklearn.utils.validation import check_is_fitted

        from .backends import get_ops
        from .network import Network

        if not hasattr(estimator, "layers_") and not hasattr(
            estimator, "network_weights_"
        ):
            check_is_fitted(estimator)
            raise TypeError(
                "FeatureMapDisplay needs a fitted CNNClassifier or CNNRegressor. "
                f"Received: estimator of type {type(estimator).__name__}"
            )
        check_is_fitted(estimator, "network_weights_")
        input_shape = tuple(estimator.input_shape_)
        x = np.asarray(image, dtype=estimator.dtype_)
        size = int(np.prod(input_shape))
        if x.size != size:
            raise ValueError(
                f"image must hold one sample of shape {input_shape} ({size} values). Received: image.shape={x.shape}"
            )
        layers = list(estimator.layers_)
        if layer is None:
            index = _default_feature_layer(layers)
        else:
            index = _pick(len(layers), layer, "layers")
        # A network of our own on the estimator's backend: the fitted model
        # is NumPy only, and this leaves the estimator's cached network alone.
        ops = get_ops(
            estimator.backend, n_threads=getattr(estimator, "n_threads", None)
        )
        network = Network(
            [clone(l) for l in layers], input_shape, ops, rng=0, dtype=estimator.dtype_
        )
        network.set_weights(estimator.network_weights_)
        out = ops.to_numpy(
            network.forward(ops.asarray(x.reshape(1, *input_shape)), stop=index + 1)
        )
        maps = np.asarray(out, dtype=np.float64)[0]
        if maps.ndim != 3:
            raise ValueError(
                f"layer {index} ({type(layers[index]).__name__}) outputs shape {maps.shape}, not feature maps "
                "(channels, height, width); choose a layer before the network is flattened. "
                f"Received: layer={layer!r}"
            )
        display = cls(
            _limit(maps, max_maps, "max_maps"),
            title=(
                f"Layer {index} ({type(layers[index]).__name__}): "
                f"{maps.shape[0]} maps {maps.shape[1]}x{maps.shape[2]}"
            )
            if title is None
            else title,
        )
        display.feature_maps_, display.layer_ = maps, index
        return display.plot(**plot_kwargs)


# ---------------------------------------------------------------------------
# Misclassified images
# ---------------------------------------------------------------------------
class MisclassifiedDisplay(ImageGridDisplay):
    """The test images a classifier gets wrong, each titled ``true -> predicted``.

    Parameters
    ----------
    images : array-like of shape (n, height, width) or (n, height, width, 3)
        The misclassified images.
    titles : sequence of str, default=None
        One title per image (``from_estimator``: ``"3 → 8"``, the true
        label, then the predicted one).
    n_channels : int, default=1
        Images per item (see :class:`ImageGridDisplay`).
    title : str, default=None
        Title above the grid.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    axes_ : ndarray of matplotlib.axes.Axes of shape (n_rows, n_cols)
        The grid.
    images_ : list of matplotlib.image.AxesImage
        One per image shown.
    indices_ : ndarray of int
        Row of ``X`` of each image shown (set by :meth:`from_estimator`).
    y_true_, y_pred_ : ndarray
        True and predicted label of each image shown.
    n_errors_ : int
        Number of misclassified samples in ``X`` (shown or not).

    See Also
    --------
    plot_confusion_matrix : Counts of every (true, predicted) pair.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from neuroplug.plot import MisclassifiedDisplay
    >>> X, y = np.random.default_rng(0).random((6, 16)), np.array([0, 1, 1, 0, 1, 1])
    >>> clf = DummyClassifier(strategy="most_frequent").fit(X, y)  # predicts 1
    >>> d = MisclassifiedDisplay.from_estimator(clf, X, y)
    >>> d.indices_.tolist(), [ax.get_title() for ax in d.axes_.flat]
    ([0, 3], ['0 → 1', '0 → 1'])
    """

    _default_cmap = "gray_r"

    def plot(self, *, shared_scale: bool = True, **kwargs: Any) -> MisclassifiedDisplay:  # type: ignore[override]
        """Draw the images (on one grey scale by default); see :meth:`ImageGridDisplay.plot`.

        Returns
        -------
        display : MisclassifiedDisplay
        """
        super().plot(shared_scale=shared_scale, **kwargs)
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        max_images: int | None = 25,
        image_shape: tuple[int, ...] | None = None,
        title: str | None = None,
        **plot_kwargs: Any,
    ) -> MisclassifiedDisplay:
        """Predict ``X`` and draw the images whose prediction differs from ``y``.

        Parameters
        ----------
        estimator : fitted classifier
            Any classifier (a pipeline included) whose ``predict`` takes ``X``.
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            The images, in a form ``predict`` accepts.
        y : array-like of shape (n_samples,)
            True labels.
        max_images : int or None, default=25
            Show at most this many (the first ones, in the order of ``X``).
        image_shape : tuple of int, default=None
            ``(h, w)`` or ``(c, h, w)`` of one row of 2-D ``X``; ``None``
            uses the estimator's ``input_shape_``, else a square image.
        title : str, default=None
            Title above the grid (``None``: how many of how many are wrong).
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : MisclassifiedDisplay

        Raises
        ------
        ValueError
            When ``X`` and ``y`` disagree in length, or every sample is
            classified right (there is no image to draw).
        """
        X_arr = np.asarray(X)
        y_true = np.asarray(y)
        if X_arr.shape[0] != y_true.shape[0] or y_true.ndim != 1:
            raise ValueError(
                f"X and y must hold the same number of samples, y one label each. "
                f"Received: X.shape={X_arr.shape}, y.shape={y_true.shape}"
            )
        y_pred = np.asarray(estimator.predict(X))
        wrong = np.flatnonzero(y_pred != y_true)
        if wrong.size == 0:
            raise ValueError(
                f"Every one of the {len(y_true)} samples is classified right: there is no misclassified image to draw."
            )
        shown = _limit(wrong, max_images, "max_images")
        rows = X_arr[shown].reshape(len(shown), -1).astype(np.float64)
        images = _rows_to_images(rows, image_shape, _final_step(estimator), "X")
        if images.ndim == 4:
            images, _ = _images_for_display(
                images, "rgb" if images.shape[1] == 3 else 0, "X"
            )
        titles = [f"{t} → {p}" for t, p in zip(y_true[shown], y_pred[shown])]
        if title is None:
            title = f"Misclassified: {wrong.size} of {len(y_true)} (true → predicted)"
            if shown.size < wrong.size:
                title += f", the first {shown.size} shown"
        display = cls(images, titles=titles, title=title)
        display.indices_, display.y_true_, display.y_pred_ = (
            shown,
            y_true[shown],
            y_pred[shown],
        )
        display.n_errors_ = int(wrong.size)
        return display.plot(**plot_kwargs)


def _final_step(estimator: Any) -> Any:
    """The last step of a pipeline (it knows the input shape), or the estimator itself."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------
#: Training curves of the estimators, in the order they are looked for:
#: (attribute, label of the curve).
_CURVES = (
    ("loss_curve_", "training loss"),
    ("bound_curve_", "training bound on log p(x) (nats)"),
    ("reconstruction_errors_", "reconstruction error"),
)


class LossCurveDisplay:
    """The training loss per epoch, and the validation score when there is one.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        One value per epoch.
    validation_loss : array-like of shape (n_epochs,), default=None
        Validation loss per epoch, drawn on the loss axes.
    kept_epoch : int, default=None
        The epoch whose weights the model kept (``best_epoch_``), marked
        with a vertical line.
    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score per epoch (drawn on a second y axis, on the right).
    loss_label : str, default="training loss"
        Label of the loss curve.
    estimator_name : str, default=None
        Shown in the title.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn into.
    ax_ : matplotlib.axes.Axes
        Axes of the loss curve.
    line_ : matplotlib.lines.Line2D
        The loss curve.
    ax_validation_ : matplotlib.axes.Axes or None
        Twin axes of the validation curve.
    line_validation_loss_ : matplotlib.lines.Line2D or None
        The validation loss (on the loss axes), when given.
    kept_marker_ : matplotlib.lines.Line2D or None
        The vertical line at the epoch whose weights the model kept.
    line_validation_ : matplotlib.lines.Line2D or None
        The validation curve.

    See Also
    --------
    sklearn.model_selection.LearningCurveDisplay : Scores against training set size.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from neuroplug.plot import LossCurveDisplay
    >>> d = LossCurveDisplay([1.0, 0.5, 0.4], validation_scores=[0.8, 0.9, 0.92]).plot()
    >>> d.line_.get_ydata().tolist(), d.ax_validation_ is not None
    ([1.0, 0.5, 0.4], True)
    """

    def __init__(
        self,
        loss_curve: Any,
        *,
        validation_scores: Any = None,
        loss_label: str = "training loss",
        estimator_name: str | None = None,
        validation_loss: Any = None,
        kept_epoch: int | None = None,
    ) -> None:
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.loss_label = loss_label
        self.estimator_name = estimator_name
        self.validation_loss = validation_loss
        self.kept_epoch = kept_epoch

    def plot(self, *, ax: Any = None, log_scale: bool = False) -> LossCurveDisplay:
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axes to draw into; ``None`` makes a new figure with pyplot.
        log_scale : bool, default=False
            Logarithmic y axis for the loss (positive losses only).

        Returns
        -------
        display : LossCurveDisplay
            ``self``, with ``figure_``, ``ax_`` and the lines set.
        """
        _require_matplotlib("LossCurveDisplay.plot")
        loss = np.asarray(self.loss_curve, dtype=np.float64).ravel()
        if loss.size == 0:
            raise ValueError(
                "loss_curve is empty: the estimator ran no epoch. Received: loss_curve=[]"
            )
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6.0, 4.0))
        epochs = np.arange(1, loss.size + 1)
        (self.line_,) = ax.plot(
            epochs,
            loss,
            marker="o" if loss.size < 30 else None,
            color="C0",
            label=self.loss_label,
        )
        ax.set_xlabel("epoch")
        ax.set_ylabel(self.loss_label)
        if log_scale:
            if np.any(loss <= 0):
                raise ValueError(
                    f"log_scale needs positive values; {self.loss_label} has some <= 0. Received: log_scale=True"
                )
            ax.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles = [self.line_]
        self.line_validation_loss_ = self.kept_marker_ = None
        if self.validation_loss is not None:
            vloss = np.asarray(
                [np.nan if v is None else v for v in self.validation_loss],
                dtype=np.float64,
            ).ravel()
            if vloss.size != loss.size:
                raise ValueError(
                    f"validation_loss must hold one value per epoch ({loss.size}). Received: {vloss.size} values"
                )
            (self.line_validation_loss_,) = ax.plot(
                epochs,
                vloss,
                marker="o" if vloss.size < 30 else None,
                color="C2",
                linestyle="--",
                label="validation loss",
            )
            handles.append(self.line_validation_loss_)
        if self.kept_epoch is not None:
            if not 1 <= int(self.kept_epoch) <= loss.size:
                raise ValueError(
                    f"kept_epoch must be an epoch in [1, {loss.size}]. Received: kept_epoch={self.kept_epoch!r}"
                )
            self.kept_marker_ = ax.axvline(
                int(self.kept_epoch),
                color="0.4",
                linestyle=":",
                label=f"kept weights (epoch {int(self.kept_epoch)})",
            )
            handles.append(self.kept_marker_)
        self.ax_validation_ = self.line_validation_ = None
        if self.validation_scores is not None:
            scores = np.asarray(self.validation_scores, dtype=np.float64).ravel()
            if scores.size != loss.size:
                raise ValueError(
                    f"validation_scores must hold one score per epoch ({loss.size}). "
                    f"Received: {scores.size} scores"
                )
            twin = ax.twinx()
            (self.line_validation_,) = twin.plot(
                epochs,
                scores,
                marker="s" if scores.size < 30 else None,
                color="C1",
                label="validation score",
            )
            twin.set_ylabel("validation score")
            handles.append(self.line_validation_)
            self.ax_validation_ = twin
        if len(handles) > 1:
            ax.legend(handles=handles, loc="center right")
        if self.estimator_name:
            ax.set_title(self.estimator_name)
        self.figure_, self.ax_ = ax.figure, ax
        return self

    @classmethod
    def from_estimator(
        cls, estimator: Any, *, ax: Any = None, log_scale: bool = False
    ) -> LossCurveDisplay:
        """Draw the training curve of a fitted estimator.

        Parameters
        ----------
        estimator : fitted estimator
            A CNN (``loss_curve_`` and, with early stopping,
            ``validation_scores_``), a sigmoid belief net (``bound_curve_``),
            an RBM or a ConvRBM (``reconstruction_errors_``).
        ax : matplotlib.axes.Axes, default=None
            Axes to draw into.
        log_scale : bool, default=False
            Logarithmic y axis.

        Returns
        -------
        display : LossCurveDisplay
        """
        # Every estimator records loss_curve_; its class says how the curve reads (label, sign).
        label, sign = getattr(type(estimator), "_curve_display", ("training loss", 1.0))
        curve = getattr(estimator, "loss_curve_", None)
        if curve is not None:
            curve = [sign * v for v in curve]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # old estimators' names
                for attr, old_label in _CURVES:
                    curve = getattr(estimator, attr, None)
                    if curve is not None:
                        label = old_label
                        break
                else:
                    _check_fitted(
                        estimator, [a for a, _ in _CURVES], "LossCurveDisplay"
                    )
                    raise AssertionError("unreachable")  # pragma: no cover
        history = getattr(estimator, "history_", None) or []
        val_loss = (
            [row.get("val_loss") for row in history]
            if len(history) == len(curve)
            else []
        )
        kept = getattr(estimator, "best_epoch_", None)
        display = cls(
            curve,
            validation_scores=getattr(estimator, "validation_scores_", None),
            loss_label=label,
            estimator_name=type(estimator).__name__,
            validation_loss=val_loss if any(v is not None for v in val_loss) else None,
            kept_epoch=kept if kept is not None and 1 <= kept <= len(curve) else None,
        )
        return display.plot(ax=ax, log_scale=log_scale)


# ---------------------------------------------------------------------------
# Shorthands
# ---------------------------------------------------------------------------
def plot_filters(estimator: Any, **kwargs: Any) -> FilterDisplay:
    """Draw the learned filters of a fitted estimator: :meth:`FilterDisplay.from_estimator`."""
    return FilterDisplay.from_estimator(estimator, **kwargs)


def plot_samples(estimator: Any, n_samples: int = 16, **kwargs: Any) -> SampleDisplay:
    """Draw samples of a fitted generative model: :meth:`SampleDisplay.from_estimator`."""
    return SampleDisplay.from_estimator(estimator, n_samples, **kwargs)


def plot_feature_maps(estimator: Any, image: Any, **kwargs: Any) -> FeatureMapDisplay:
    """Draw the feature maps of ``image`` in a fitted CNN: :meth:`FeatureMapDisplay.from_estimator`."""
    return FeatureMapDisplay.from_estimator(estimator, image, **kwargs)


def plot_loss_curve(estimator: Any, **kwargs: Any) -> LossCurveDisplay:
    """Draw the training curve of a fitted estimator: :meth:`LossCurveDisplay.from_estimator`."""
    return LossCurveDisplay.from_estimator(estimator, **kwargs)


def plot_misclassified(
    estimator: Any, X: Any, y: Any, **kwargs: Any
) -> MisclassifiedDisplay:
    """Draw the images a fitted classifier gets wrong: :meth:`MisclassifiedDisplay.from_estimator`."""
    return MisclassifiedDisplay.from_estimator(estimator, X, y, **kwargs)


def plot_confusion_matrix(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    ax: Any = None,
    normalize: str | None = None,
    cmap: Any = "Blues",
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw the confusion matrix of a fitted classifier on ``X``, ``y`` with scikit-learn's display.

    Parameters
    ----------
    estimator : fitted classifier
        Any classifier, a :class:`~neuroplug.estimators.CNNClassifier` or a
        pipeline ending in one included.
    X : array-like
        Inputs, in any form the classifier's ``predict`` accepts.
    y : array-like of shape (n_samples,)
        True labels.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw into.
    normalize : {"true", "pred", "all"} or None, default=None
        Normalise counts over the true labels (rows), the predictions
        (columns) or all samples.
    cmap : str or matplotlib Colormap, default="Blues"
        Colour map.
    title : str, default=None
        Title of the axes.  ``None``: the estimator's name, its accuracy
        on ``X``, ``y`` and the number of samples; ``""`` for none.
    **kwargs
        Passed to :meth:`sklearn.metrics.ConfusionMatrixDisplay.from_predictions`
        (``display_labels``, ``values_format``, ``colorbar``, ...).

    Returns
    -------
    display : sklearn.metrics.ConfusionMatrixDisplay
        With ``figure_``, ``ax_``, ``confusion_matrix`` and ``accuracy_``
        (the share of ``y`` predicted right) set.
    """
    _require_matplotlib("plot_confusion_matrix")
    from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score

    y_pred = estimator.predict(X)
    if ax is None:
        import matplotlib.pyplot as plt

        n_classes = len(getattr(estimator, "classes_", ())) or 10
        side = min(9.0, max(4.0, 0.4 * n_classes + 1.5))
        _, ax = plt.subplots(figsize=(side, side))
    display = ConfusionMatrixDisplay.from_predictions(
        y, y_pred, ax=ax, normalize=normalize, cmap=cmap, **kwargs
    )
    display.accuracy_ = float(accuracy_score(y, y_pred))
    if title is None:
        title = f"{type(_final_step(estimator)).__name__}: accuracy {display.accuracy_:.1%} on {len(y_pred)} samples"
    if title:
        display.ax_.set_title(title)
    return display


# ---------------------------------------------------------------------------
# PNG files for the command line
# ---------------------------------------------------------------------------
#: The files :func:`save_training_plots` writes.
TRAINING_PLOT_FILES = {
    "loss": "loss-curve.png",
    "filters": "filters.png",
    "confusion": "confusion-matrix.png",
    "misclassified": "misclassified.png",
    "samples": "samples.png",
}


def _first_layer_display(estimator: Any) -> FilterDisplay | None:
    """The first layer's filters (convolution, or dense weights on image input); ``None`` if they are no images."""
    try:
        return FilterDisplay.from_estimator(estimator, shared_scale=True)
    except ValueError:
        return None  # e.g. a dense network on input that is no image


def save_training_plots(
    estimator: Any,
    X_test: Any = None,
    y_test: Any = None,
    directory: str | Any = ".",
    *,
    dpi: int = 100,
) -> list[Any]:
    """Write the pictures of a fitted model to PNG files in ``directory``.

    ``loss-curve.png`` (the training curve, and the validation score with
    early stopping; left out for a model that records none),
    ``filters.png`` (the first layer's filters on one colour scale centred
    on zero, or the first dense layer's weights when the network has no
    convolution and takes images), and

    * for a classifier given ``X_test`` and ``y_test``:
      ``confusion-matrix.png`` (titled with the test accuracy) and
      ``misclassified.png`` (up to 25 wrongly classified test images with
      their true and predicted labels; left out when there is none);
    * for a generative model (RBM, DBN, sigmoid belief net: an estimator
      with a ``sample`` method): ``samples.png``, 16 samples drawn from it.

    The directory is created when missing.

    Parameters
    ----------
    estimator : fitted estimator
        A CNN, or a generative model (RBM, DBN, SigmoidBeliefNet).
    X_test, y_test : array-like, default=None
        Held-out data for a classifier's confusion matrix and misclassified
        images (ignored for other models).
    directory : str or path, default="."
        Where to write the files.
    dpi : int, default=100
        Resolution of the PNG files.

    Returns
    -------
    paths : list of pathlib.Path
        The files written, in the order above.
    """
    from pathlib import Path

    _require_matplotlib("save_training_plots")
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    generative = callable(getattr(estimator, "sample", None))
    if not generative:
        check_is_fitted(estimator, "network_weights_")
    else:
        check_is_fitted(estimator)
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"directory must be a directory; a file of that name exists. Received: directory={str(directory)!r}"
        )
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    written: list[Any] = []

    def save(display: Any, key: str) -> None:
        path = out / TRAINING_PLOT_FILES[key]
        display.figure_.savefig(path, dpi=dpi)
        plt.close(display.figure_)
        written.append(path)

    # Never shown: interactive mode off, and each figure closed once saved.
    with plt.ioff():
        if any(getattr(estimator, attr, None) is not None for attr, _ in _CURVES):
            save(LossCurveDisplay.from_estimator(estimator), "loss")
        filters = _first_layer_display(estimator)
        if filters is not None:
            save(filters, "filters")
        if is_classifier(estimator) and X_test is not None and y_test is not None:
            save(plot_confusion_matrix(estimator, X_test, y_test), "confusion")
            try:
                save(
                    MisclassifiedDisplay.from_estimator(estimator, X_test, y_test),
                    "misclassified",
                )
            except ValueError:
                pass  # every test image classified right: nothing to show
        if generative:
            save(SampleDisplay.from_estimator(estimator, 16), "samples")
    return written
