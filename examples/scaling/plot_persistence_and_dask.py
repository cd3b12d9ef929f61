"""
Saving models and scaling out
=============================

A fitted neuroplug estimator holds only NumPy arrays and plain values.  It
saves to neuroplug's safe model format (no pickle: loading runs no code from
the file), pickles for joblib, and runs in Dask workers, so a grid search can
spread its fits over a cluster through joblib's Dask backend.
"""

# %%
# Save and load
# -------------
# :func:`neuroplug.persist.save` writes one ``.npz`` file: a JSON header
# (class, hyper-parameters, the plugins that provided each layer, format
# version, checksum) and the weight arrays.  :func:`neuroplug.persist.load`
# checks all of it before rebuilding the estimator.
import tempfile
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier
from neuroplug.persist import load, save

X, y, input_shape = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
clf = CNNClassifier(
    ("conv:8x3x3,padding=same", "relu", "maxpool:2", "dense:32", "relu"),
    input_shape=input_shape,
    max_iter=10,
    random_state=0,
).fit(X_train, y_train)

with tempfile.TemporaryDirectory() as tmp:
    path = save(clf, Path(tmp) / "digits-cnn")
    print(f"{path.name}: {path.stat().st_size / 1024:.1f} KiB")
    restored = load(path)
print(type(restored).__name__, restored.n_iter_, "epochs")
print(
    "same predictions:",
    np.array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test)),
)

# %%
# A damaged file is refused, not half-loaded.
from neuroplug.persist import ModelFormatError

with tempfile.TemporaryDirectory() as tmp:
    path = save(clf, Path(tmp) / "model.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip the bits of one byte
    path.write_bytes(bytes(data))
    try:
        load(path)
    except ModelFormatError as exc:
        print("ModelFormatError:", exc)

# %%
# Pickle and joblib
# -----------------
# Pickling works too (for joblib, Dask and caches), but only unpickle files
# you trust.
import pickle

clone_ = pickle.loads(pickle.dumps(clf))
print(
    "pickled round trip, same predictions:",
    np.array_equal(clone_.predict(X_test), clf.predict(X_test)),
)

# %%
# A grid search on a Dask cluster
# -------------------------------
# Here the cluster is two local worker processes; on a real cluster,
# connect the :class:`~dask.distributed.Client` to the scheduler's address
# instead.  Every worker must have neuroplug (and the plugins the models
# use) installed; the estimators travel as pickles and each worker finds its
# plugins by itself.  ``n_threads=1`` keeps each fit on one core, since the
# workers already run in parallel.
import logging

import joblib
from dask.distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

search = GridSearchCV(
    CNNClassifier(input_shape=input_shape, max_iter=8, n_threads=1, random_state=0),
    {
        "layers": [("conv:8x3x3", "relu", "dense:32", "relu"), ("dense:64", "relu")],
        "learning_rate": [1e-3, 3e-3],
    },
    cv=3,
    n_jobs=-1,
)
with (
    LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster,
    Client(cluster) as client,
):
    with joblib.parallel_backend("dask"):
        search.fit(X_train, y_train)
    print("workers:", len(client.scheduler_info()["workers"]))
print("best:", search.best_params_, f"cv accuracy {search.best_score_:.3f}")
print(f"test accuracy {search.score(X_test, y_test):.3f}")
