"""
Convolutional RBMs and pretraining a CNN
========================================

A :class:`~neuroplug.estimators.ConvRBM` shares its weights across the image
like a convolution, and its probabilistic max-pooling makes the features
invariant to small shifts (Lee et al., 2009).  Its filters have exactly the
shape of a :class:`~neuroplug.layers.Conv2D` layer's weights, so the
``"cdbn"`` pretrainer uses ConvRBMs to initialise the convolutions of a
:class:`~neuroplug.estimators.CNNClassifier` before supervised training.
"""

# %%
# A ConvRBM on the digits
# -----------------------
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier, ConvRBM
from neuroplug.plot import FilterDisplay, LossCurveDisplay

X, y, input_shape = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

crbm = ConvRBM(
    16, kernel_size=3, pool_size=2, max_iter=10, input_shape=input_shape, random_state=0
).fit(X_train)
print(
    "filters:",
    crbm.components_.shape,
    "features per image:",
    crbm.transform(X_test[:1]).shape[1],
)
FilterDisplay.from_estimator(crbm, n_cols=8)

# %%
LossCurveDisplay.from_estimator(crbm)

# %%
# Pretraining the convolution of a CNN
# ------------------------------------
# ``pretrainer="cdbn"`` trains one ConvRBM per leading convolution (matched
# to the max pooling that follows it) on the training images, labels unused,
# and copies its filters and hidden biases into the layer.  A pretrainer
# object sets its hyper-parameters.  The RBM's hidden units are logistic, so
# the convolution is followed by a sigmoid: its biases are negative (the
# sparsity target), and a ReLU would start out silent.
#
# On 1,300 labelled 8x8 digits pretraining changes little; it pays when
# images are plentiful and labels scarce.
from neuroplug.pretrain.cdbn import CDBNPretrainer

layers = ("conv:16x3x3", "sigmoid", "maxpool:2", "dense:64", "relu")
for pretrainer in (CDBNPretrainer(max_iter=5), None):
    clf = CNNClassifier(
        layers,
        input_shape=input_shape,
        pretrainer=pretrainer,
        learning_rate=5e-3,
        max_iter=8,
        random_state=0,
    )
    clf.fit(X_train, y_train)
    name = "cdbn-pretrained" if pretrainer is not None else "random start"
    print(
        f"{name}: test accuracy after {clf.n_iter_} epochs {clf.score(X_test, y_test):.3f}"
    )
    if pretrainer is not None:
        FilterDisplay.from_estimator(
            clf, title="CNN filters after cdbn pretraining and 8 epochs", n_cols=8
        )
