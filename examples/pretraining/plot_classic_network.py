"""
The classic network: sigmoid units, mean pooling, with and without pretraining
==============================================================================

Before ReLUs, a convolutional network had logistic (sigmoid) units and
averaged its feature maps ("subsampling", mean pooling); it was initialised
either at random or from unsupervised models of its inputs.  Such a network
trains slowly with the settings that suit ReLU networks (Adam at 1e-3): the
sigmoid's slope is at most 1/4, so gradients shrink at every layer.  It
needs a larger step.  This example trains it with the settings the
pretraining guide documents for it:

plain SGD with Nesterov momentum at ``learning_rate=0.3`` on mini-batches
of 8, divided by about 3 every 40 epochs (``lr_schedule="step:40,0.3"``).

It is trained twice: from its random initialisation, and with its two
convolutions initialised by convolutional RBMs (``pretrainer="cdbn"``).
"""

# %%
# Data and network
# ----------------
import warnings

import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier

X, y, _ = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)

CLASSIC = (
    "conv:6x3x3,padding=same",
    "sigmoid",
    "meanpool:2",
    "conv:12x3x3,padding=same",
    "sigmoid",
    "meanpool:2",
    "dense:32",
    "sigmoid",
)
SETTINGS = {
    "optimizer": "nesterov",
    "learning_rate": 0.3,
    "batch_size": 8,
    "lr_schedule": "step:40,0.3",
    "max_iter": 100,
    "random_state": 0,
}

# %%
# Training with and without pretraining
# -------------------------------------
# ``pretrainer="cdbn"`` trains one convolutional RBM per convolution (the
# second on what the first computes) and copies its filters and hidden
# biases into the layer before supervised training starts.
fig, ax = plt.subplots(figsize=(6, 4))
for pretrainer in (None, "cdbn"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the convergence test may stop before max_iter
        clf = CNNClassifier(CLASSIC, pretrainer=pretrainer, **SETTINGS).fit(
            X_train, y_train
        )
    label = f"pretrainer={pretrainer!r}"
    ax.plot(range(1, clf.n_iter_ + 1), clf.loss_curve_, label=label)
    print(
        f"{label}: test accuracy {clf.score(X_test, y_test):.3f} after {clf.n_iter_} epochs"
    )
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_yscale("log")
ax.legend()

# %%
# :doc:`/guide/pretraining` has the figures for other seeds and settings,
# and the measured table for this network, the default ReLU network and a
# tanh LeNet, with every pretrainer.
