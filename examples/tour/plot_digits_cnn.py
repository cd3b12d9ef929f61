"""
A convolutional network on the digits
=====================================

Train a small convolutional network on scikit-learn's 8x8 digits, measure it
on held-out images, and look at what it learned: the training curve, the
confusion matrix and the filters of its first convolution.

The same job runs from the command line with ``neuroplug train --plot DIR``.
"""

# %%
# The data
# --------
# :func:`neuroplug.datasets.load_digits_images` returns the digits as rows
# of 64 pixels scaled to [0, 1], the labels, and the shape of one image,
# ``(channels, height, width)``.  Rows are the scikit-learn form of the
# data; the estimator reshapes them to images with ``input_shape``.
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images

X, y, input_shape = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
print(X_train.shape, input_shape)

# %%
# The network
# -----------
# The layer stack is a tuple of short spec strings: 16 filters of 3x3 that
# keep the image size, ReLU, 2x2 max pooling, then a dense layer of 64 units.
# The estimator adds the output layer (one unit per class).  Early stopping
# holds out 10% of the training images and keeps the best weights.
from neuroplug.estimators import CNNClassifier

clf = CNNClassifier(
    (
        "conv:16x3x3,padding=same",
        "relu",
        "maxpool:2",
        "dense:64",
        "relu",
        "dropout:0.2",
    ),
    input_shape=input_shape,
    max_iter=30,
    early_stopping=True,
    n_iter_no_change=5,
    random_state=0,
)
clf.fit(X_train, y_train)
print(f"{clf.n_iter_} epochs, test accuracy {clf.score(X_test, y_test):.3f}")

# %%
# The training curve
# ------------------
# ``loss_curve_`` holds the mean training loss of each epoch and
# ``validation_scores_`` the accuracy on the held-out tenth.
from neuroplug.plot import FilterDisplay, LossCurveDisplay, plot_confusion_matrix

LossCurveDisplay.from_estimator(clf)

# %%
# The confusion matrix
# --------------------
# Rows are the true digits, columns the predictions, on the test images.
plot_confusion_matrix(clf, X_test, y_test)

# %%
# The filters of the first convolution
# ------------------------------------
# Each 3x3 filter is drawn on its own grey scale.  Even on 8x8 images they
# become small edge and stroke detectors.
FilterDisplay.from_estimator(clf)
