"""
Pipelines and grid search
=========================

neuroplug's estimators are scikit-learn estimators: they sit in a
:class:`~sklearn.pipeline.Pipeline` after a scaler, and
:class:`~sklearn.model_selection.GridSearchCV` tunes them like any other
model.  The layer stack is an ordinary hyper-parameter, so the search can
compare architectures too.
"""

# %%
# A pipeline
# ----------
# The digits come as rows of 64 pixel values from 0 to 16.  A
# :class:`~sklearn.preprocessing.MinMaxScaler` maps them to [0, 1]; the
# network reads each row as a 1x8x8 image (``input_shape``).
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from neuroplug.estimators import CNNClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=600, stratify=y, random_state=0
)

pipe = make_pipeline(
    MinMaxScaler(),
    CNNClassifier(
        ("conv:8x3x3", "relu", "dense:32", "relu"),
        input_shape=(1, 8, 8),
        max_iter=15,
        random_state=0,
    ),
)
pipe.fit(X_train, y_train)
print(f"pipeline test accuracy: {pipe.score(X_test, y_test):.3f}")

# %%
# A grid search over architectures and learning rates
# ----------------------------------------------------
# Parameters of a step are addressed as ``<step>__<parameter>``.  Each
# candidate of ``layers`` is a tuple of spec strings; here: one
# convolution, or a convolution followed by max pooling.
param_grid = {
    "cnnclassifier__layers": [
        ("conv:8x3x3", "relu", "dense:32", "relu"),
        ("conv:8x3x3,padding=same", "relu", "maxpool:2", "dense:32", "relu"),
    ],
    "cnnclassifier__learning_rate": [1e-3, 3e-3],
}
search = GridSearchCV(pipe, param_grid, cv=3)
search.fit(X_train, y_train)

for params, mean, std in zip(
    search.cv_results_["params"],
    search.cv_results_["mean_test_score"],
    search.cv_results_["std_test_score"],
):
    print(f"{mean:.3f} +/- {std:.3f}  {params}")
print("best:", search.best_params_)
print(
    f"test accuracy of the refitted best pipeline: {search.score(X_test, y_test):.3f}"
)

# %%
# The scores as a picture
# -----------------------
import matplotlib.pyplot as plt
import numpy as np

scores = search.cv_results_["mean_test_score"].reshape(2, 2)
fig, ax = plt.subplots(figsize=(5, 3))
im = ax.imshow(scores, cmap="viridis")
ax.set_xticks([0, 1], labels=["lr 1e-3", "lr 3e-3"])
ax.set_yticks([0, 1], labels=["conv", "conv + maxpool"])
for (i, j), s in np.ndenumerate(scores):
    ax.text(j, i, f"{s:.3f}", ha="center", va="center", color="w")
ax.set_title("mean cross-validated accuracy")
fig.colorbar(im)
fig.tight_layout()
