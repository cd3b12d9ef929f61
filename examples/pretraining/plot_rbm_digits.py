"""
Restricted Boltzmann machine on the digits
==========================================

An :class:`~neuroplug.estimators.RBM` learns binary hidden features of the
digit images without labels.  We look at its weights (one image per hidden
unit), draw new digits from it by Gibbs sampling, measure its likelihood, and
use its features for a classifier, as scikit-learn's ``BernoulliRBM``
example does.
"""

# %%
# Fit the RBM
# -----------
# The RBM models binary pixels, so the images are thresholded at 0.5.  It is
# trained with persistent contrastive divergence (PCD-1).  A small learning
# rate keeps the model's energy landscape smooth enough for its Gibbs chains
# to move between digits (with larger steps the samples collapse onto one or
# two digits).
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import RBM
from neuroplug.plot import FilterDisplay, LossCurveDisplay, SampleDisplay

X, y, _ = load_digits_images()
X_bin = (X > 0.5).astype("float32")
X_train, X_test, y_train, y_test = train_test_split(
    X_bin, y, test_size=0.25, stratify=y, random_state=0
)
rbm = RBM(n_components=64, learning_rate=0.02, max_iter=20, random_state=0).fit(X_train)

# %%
# The weights of the hidden units
# -------------------------------
# ``components_`` has one row of 64 weights per hidden unit; drawn as 8x8
# images they show the strokes each unit responds to.
FilterDisplay.from_estimator(rbm, n_cols=8)

# %%
# The reconstruction error per epoch
# ----------------------------------
LossCurveDisplay.from_estimator(rbm)

# %%
# Samples
# -------
# :meth:`~neuroplug.estimators.RBM.sample` starts Gibbs chains from the
# visible biases and runs ``n_steps`` steps of block Gibbs sampling.
SampleDisplay.from_estimator(rbm, 16, sample_kwargs={"n_steps": 500})

# %%
# Likelihood
# ----------
# ``score_samples`` returns the exact pseudo-log-likelihood per image (what
# scikit-learn's ``BernoulliRBM.score_samples`` estimates from one random
# pixel).  The true log-likelihood ``-F(v) - log Z`` needs the partition
# function ``Z``.  Computing it exactly means enumerating the states of the
# smaller layer, here 2**64 of them, so
# :meth:`~neuroplug.estimators.RBM.log_partition` estimates it by annealed
# importance sampling (AIS) and reports its standard error.  (With 20 units
# or fewer in the smaller layer it is exact.)
print(
    f"mean pseudo-log-likelihood on test images: {rbm.score_samples(X_test).mean():.2f} nats"
)
rbm.set_params(ais_runs=50, ais_betas=2000)
log_z, log_z_std = rbm.log_partition("ais", return_std=True)
print(f"log Z = {log_z:.2f} +/- {log_z_std:.2f} (AIS)")
print(f"mean log-likelihood of the test images: {rbm.score(X_test):.2f} nats")

# %%
# RBM features for a classifier
# -----------------------------
# :meth:`~neuroplug.estimators.RBM.transform` gives the hidden
# probabilities; a logistic regression on them classifies the digits.  For
# features, a larger learning rate and more epochs than above do better (a
# grid search over the pipeline would find them).
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

clf = make_pipeline(
    RBM(
        n_components=64, learning_rate=0.05, max_iter=30, batch_size=10, random_state=0
    ),
    LogisticRegression(C=10.0, max_iter=1000),
)
clf.fit(X_train, y_train)
print(
    f"RBM features + logistic regression: test accuracy {clf.score(X_test, y_test):.3f}"
)
raw = LogisticRegression(C=10.0, max_iter=1000).fit(X_train, y_train)
print(f"logistic regression on the raw pixels: {raw.score(X_test, y_test):.3f}")
