"""
What the network sees: feature maps
===================================

A convolution turns an image into one *feature map* per filter: where in the
image the filter's pattern occurs.  :class:`neuroplug.plot.FeatureMapDisplay`
passes one image through a fitted network and draws the output of any layer
that is still an image (before the network is flattened).
"""

# %%
# A small two-convolution network
# -------------------------------
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier
from neuroplug.plot import FeatureMapDisplay, FilterDisplay, ImageGridDisplay

X, y, input_shape = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
clf = CNNClassifier(
    (
        "conv:8x3x3,padding=same",
        "relu",
        "conv:12x3x3,padding=same",
        "relu",
        "maxpool:2",
        "dense:32",
        "relu",
    ),
    input_shape=input_shape,
    max_iter=20,
    random_state=0,
).fit(X_train, y_train)
print(f"test accuracy {clf.score(X_test, y_test):.3f}")
for i, layer in enumerate(clf.layers_):
    print(i, layer)

# %%
# The image
# ---------
image = X_test[0]
ImageGridDisplay(image.reshape(1, 8, 8), titles=[f"label {y_test[0]}"]).plot(
    cmap="gray_r"
)

# %%
# The first convolution
# ---------------------
# By default the display shows the first convolution after its activation
# (layer 1, the ReLU).  Bright pixels are where a filter responds.
FeatureMapDisplay.from_estimator(clf, image)

# %%
# Its filters, for comparison.
FilterDisplay.from_estimator(clf)

# %%
# Deeper: after the second convolution and the pooling
# ----------------------------------------------------
# ``layer`` indexes ``clf.layers_`` (printed above).  After 2x2 pooling the
# maps are 4x4.
FeatureMapDisplay.from_estimator(clf, image, layer=4)
