"""On-the-fly training augmentation: small random shifts, rotations and scalings.

Augmentation runs on the host in NumPy, on each training mini-batch before it
is sent to the backend, and draws from a generator seeded by the
estimator's ``random_state``, so an augmented fit stays reproducible.
Prediction never augments.

Estimators take ``augment=None`` (off, the default), ``True`` (a
:class:`RandomAffine` with its defaults), a spec string such as
``"shift=2,rotate=10,scale=0.1"``, or a :class:`RandomAffine` object.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

__all__ = ["RandomAffine", "get_augmenter"]


class RandomAffine(BaseEstimator):
    """Random affine jitter of image batches (bilinear, zero outside the image).

    Each image gets its own transform about its centre: a rotation by an
    angle drawn uniformly in ``[-rotate, rotate]`` degrees, a scaling by a
    factor in ``[1 - scale, 1 + scale]`` and a shift by up to ``shift``
    pixels along each axis.  All channels of an image share the transform.

    Parameters
    ----------
    shift : float, default=2.0
        Largest translation in pixels, smaller than the images.
    rotate : float, default=10.0
        Largest rotation in degrees.
    scale : float, default=0.1
        Largest relative change of size, in ``[0, 1)``.
    p : float, default=1.0
        Probability that an image is transformed at all.
    """

    def __init__(
        self,
        shift: float = 2.0,
        rotate: float = 10.0,
        scale: float = 0.1,
        p: float = 1.0,
    ) -> None:
        self.shift = shift
        self.rotate = rotate
        self.scale = scale
        self.p = p

    def _check(self) -> tuple[float, float, float, float]:
        values = []
        for name, low, high in (
            ("shift", 0.0, np.inf),
            ("rotate", 0.0, 180.0),
            ("scale", 0.0, 0.999),
            ("p", 0.0, 1.0),
        ):
            v = getattr(self, name)
            if (
                not isinstance(v, numbers.Real)
                or isinstance(v, bool)
                or not low <= v <= high
                or not np.isfinite(v)
            ):
                bound = (
                    "a finite number >= 0"
                    if high == np.inf
                    else f"a number in [{low}, {high}]"
                )
                raise ValueError(f"{name} must be {bound}. Received: {name}={v!r}")
            values.append(float(v))
        return tuple(values)  # type: ignore[return-value]

    def check_image_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless the shift is smaller than a ``height`` x ``width`` image.

        A shift as large as the image moves it out of the frame entirely, so
        the network would train on blank images.
        """
        shift = self._check()[0]
        if shift >= min(height, width):
            raise ValueError(
                f"augment shift must be smaller than the images ({height}x{width} pixels): a shift of {shift:g} "
                f"pixels moves them out of the frame. Received: shift={self.shift!r}"
            )

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return a transformed copy of the NumPy image batch ``X`` of shape ``(n, c, h, w)``."""
        shift, rotate, scale, p = self._check()
        X = np.asarray(X)
        if X.ndim != 4:
            raise ValueError(
                "Augmentation needs image batches of shape (n, channels, height, width); set input_shape "
                f"to an image shape (c, h, w). Received: X.shape={X.shape}"
            )
        n, c, h, w = X.shape
        self.check_image_size(h, w)
        angle = np.deg2rad(rng.uniform(-rotate, rotate, n))
        zoom = rng.uniform(1.0 - scale, 1.0 + scale, n)
        ty, tx = rng.uniform(-shift, shift, (2, n))
        keep = rng.random(n) >= p  # images left as they are
        angle[keep], zoom[keep], ty[keep], tx[keep] = 0.0, 1.0, 0.0, 0.0
        # Inverse map: output pixel (r, q) samples the input at
        # centre + R(-angle) / zoom @ ((r, q) - centre - shift).
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        # float32 coordinates are exact to well under a pixel for any image size used here.
        f32 = np.float32
        rr, qq = np.meshgrid(
            np.arange(h, dtype=f32), np.arange(w, dtype=f32), indexing="ij"
        )
        dy = rr[None] - f32(cy) - ty.astype(f32)[:, None, None]
        dx = qq[None] - f32(cx) - tx.astype(f32)[:, None, None]
        cos = (np.cos(angle) / zoom).astype(f32)[:, None, None]
        sin = (np.sin(angle) / zoom).astype(f32)[:, None, None]
        src_y = cy + cos * dy - sin * dx
        src_x = cx + sin * dy + cos * dx
        return _bilinear(X, src_y, src_x)


def _bilinear(X: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """Sample every channel of image ``i`` at ``(src_y[i], src_x[i])``; zero outside."""
    n, c, h, w = X.shape
    wp = w + 2
    # A one-pixel zero border: clipping the coordinates into it makes every
    # sample outside the image read zeros, with no masks.
    padded = np.zeros((n, c, h + 2, wp), dtype=X.dtype)
    padded[:, :, 1:-1, 1:-1] = X
    flat = padded.reshape(n, c, (h + 2) * wp)
    sy = np.clip(src_y + 1.0, 0.0, h + 1.0)
    sx = np.clip(src_x + 1.0, 0.0, w + 1.0)
    y0 = np.minimum(sy.astype(np.int64), h)  # floor for non-negative values
    x0 = np.minimum(sx.astype(np.int64), w)
    fy = (sy - y0).astype(X.dtype).reshape(n, 1, h * w)
    fx = (sx - x0).astype(X.dtype).reshape(n, 1, h * w)
    base = (y0 * wp + x0).reshape(n, 1, h * w)

    def gather(offset: int) -> np.ndarray:
        return np.take_along_axis(
            flat, np.broadcast_to(base + offset, (n, c, h * w)), axis=2
        )

    top = gather(0) * (1 - fx) + gather(1) * fx
    bottom = gather(wp) * (1 - fx) + gather(wp + 1) * fx
    return (top * (1 - fy) + bottom * fy).reshape(n, c, h, w)


def _parse_augment_spec(spec: str) -> RandomAffine:
    names = {
        "shift": "shift",
        "rotate": "rotate",
        "rotation": "rotate",
        "scale": "scale",
        "p": "p",
    }
    kwargs: dict[str, float] = {}
    for token in (t.strip() for t in spec.split(",")):
        key, eq, value = token.partition("=")
        key = key.strip().lower()
        if not eq or key not in names:
            raise ValueError(
                "augment spec must be comma-separated key=value items with keys shift, rotate, scale, p "
                f"(e.g. 'shift=2,rotate=10,scale=0.1'). Received: augment={spec!r}"
            )
        try:
            kwargs[names[key]] = float(value)
        except ValueError:
            raise ValueError(
                f"augment value for {key!r} must be a number. Received: augment={spec!r}"
            ) from None
    aug = RandomAffine(**kwargs)
    aug._check()
    return aug


def get_augmenter(augment: Any) -> RandomAffine | None:
    """Resolve an estimator's ``augment`` parameter to an augmenter (or ``None`` when off)."""
    if augment is None or augment is False:
        return None
    if augment is True:
        return RandomAffine()
    if isinstance(augment, str):
        return _parse_augment_spec(augment)
    if callable(augment) and isinstance(augment, BaseEstimator):
        return clone(augment)
    raise ValueError(
        "augment must be None, True, a spec string such as 'shift=2,rotate=10,scale=0.1' or a "
        f"neuroplug.augment.RandomAffine object. Received: augment={augment!r}"
    )
