"""
Optimisers, schedules and early stopping
========================================

Three optimisers on the same network and data, then early stopping with its
validation curve.  ``loss_curve_`` records the mean training loss of every
epoch; with ``early_stopping=True``, ``validation_scores_`` records the
accuracy on the held-out part of the training data, and the best weights
are kept.
"""

# %%
# Adam, SGD with momentum and Nesterov momentum
# ---------------------------------------------
# ``optimizer`` takes a name (``"adam"``, ``"sgd"``, ``"nesterov"``, the
# latter two with momentum 0.9) or an optimiser object such as
# ``neuroplug.optimizers.SGD(momentum=0.5)``.  ``lr_schedule="step:5,0.5"``
# halves the learning rate every five epochs.
import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier
from neuroplug.plot import LossCurveDisplay

X, y, input_shape = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
layers = ("conv:8x3x3,padding=same", "relu", "maxpool:2", "dense:32", "relu")

settings = {
    "adam, lr 1e-3": dict(optimizer="adam", learning_rate=1e-3),
    "sgd, lr 0.02": dict(optimizer="sgd", learning_rate=0.02),
    "nesterov, lr 0.02, halved every 5 epochs": dict(
        optimizer="nesterov", learning_rate=0.02, lr_schedule="step:5,0.5"
    ),
}
fig, ax = plt.subplots(figsize=(6, 4))
for label, params in settings.items():
    clf = CNNClassifier(
        layers, input_shape=input_shape, max_iter=15, tol=0.0, random_state=0, **params
    )
    clf.fit(X_train, y_train)
    ax.plot(range(1, clf.n_iter_ + 1), clf.loss_curve_, marker="o", label=label)
    print(f"{label}: test accuracy {clf.score(X_test, y_test):.3f}")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.set_yscale("log")
ax.legend()

# %%
# Early stopping
# --------------
# ``validation_fraction=0.2`` holds out a fifth of the training images
# (stratified).  Training stops once the validation accuracy has not improved
# by ``tol`` for ``n_iter_no_change`` epochs, and the estimator keeps the
# weights of the best epoch.
clf = CNNClassifier(
    layers,
    input_shape=input_shape,
    max_iter=60,
    early_stopping=True,
    validation_fraction=0.2,
    n_iter_no_change=4,
    random_state=0,
).fit(X_train, y_train)
print(
    f"stopped after {clf.n_iter_} epochs; best validation accuracy {clf.best_validation_score_:.3f}"
)
print(f"test accuracy {clf.score(X_test, y_test):.3f}")
LossCurveDisplay.from_estimator(clf)
