"""
Backends and threads
====================

Every estimator computes through a *backend*, an
:class:`~neuroplug.ops.Ops` object chosen by name with ``backend=``:
``"cpu"`` (the default: compiled Cython kernels, OpenMP threads),
``"numpy"`` (the pure-NumPy reference every other backend is tested
against) and, with the ``neuroplug-torch`` plugin installed, ``"torch"``
(``"torch:cuda:0"`` on a GPU).  ``n_threads`` limits the threads of the
kernels.  The fitted model is NumPy arrays whatever trained it, so it
predicts on any backend.
"""

# %%
# Which backends are installed
# ----------------------------
from neuroplug.plugins import get_plugin_manager

backends = get_plugin_manager().backends.names()
print("installed backends:", backends)

# %%
# The same network on each backend
# --------------------------------
# One fit of a few epochs per backend and thread count, timed.  Figures on
# the machine that built this page; on a 2-core machine the ``cpu`` backend
# is several times faster than the NumPy reference.
import time

import matplotlib.pyplot as plt
import numpy as np

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier

X, y, input_shape = load_digits_images()
layers = ("conv:16x3x3,padding=same", "relu", "maxpool:2", "dense:64", "relu")
runs = [("numpy", None), ("cpu", 1), ("cpu", 2)] + (
    [("torch", None)] if "torch" in backends else []
)

timings, predictions = {}, {}
for backend, n_threads in runs:
    clf = CNNClassifier(
        layers,
        input_shape=input_shape,
        max_iter=2,
        tol=0.0,
        backend=backend,
        n_threads=n_threads,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X, y)
    label = (
        backend
        if n_threads is None
        else f"{backend}, {n_threads} thread{'s' if n_threads > 1 else ''}"
    )
    timings[label] = (time.perf_counter() - start) / clf.n_iter_
    predictions[label] = clf.predict_proba(X[:200])
    print(
        f"{label:18s} {timings[label] * 1000:7.1f} ms per epoch, final loss {clf.loss_curve_[-1]:.4f}"
    )

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(timings), [t * 1000 for t in timings.values()])
ax.set_xlabel("ms per epoch (1,797 images 8x8)")
ax.invert_yaxis()
fig.tight_layout()

# %%
# The backends agree
# ------------------
# Backends differ only in rounding (float32), so the same seed gives the
# same network up to small differences in the probabilities.
reference = predictions["numpy"]
for label, proba in predictions.items():
    print(
        f"{label:18s} largest difference from numpy: {np.abs(proba - reference).max():.2e}"
    )

# %%
# A fitted model predicts on another backend
# ------------------------------------------
# ``backend`` is read again at prediction time, so a model trained with
# ``"torch:cuda:0"`` predicts on a machine without a GPU after
# ``set_params(backend="cpu")``.
clf.set_params(backend="numpy")
print(
    "accuracy on the training images, predicted with the NumPy backend:",
    round(clf.score(X, y), 3),
)
