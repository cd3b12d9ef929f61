"""
Sigmoid belief nets: samples and likelihood
===========================================

A :class:`~neuroplug.estimators.SigmoidBeliefNet` is a directed generative
model: binary hidden layers, each drawn from the layer above through
logistic units, down to the data.  It is trained by wake-sleep (reweighted
wake-sleep with ``n_importance_samples > 1``).  Sampling is exact ancestral
sampling, and the log-likelihood of held-out data is estimated by importance
sampling with the recognition network as the proposal.
"""

# %%
# Fit a two-layer net
# -------------------
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import SigmoidBeliefNet
from neuroplug.plot import FilterDisplay, LossCurveDisplay, SampleDisplay

X, y, _ = load_digits_images()
X_train, X_test = train_test_split(X, test_size=0.25, stratify=y, random_state=0)
sbn = SigmoidBeliefNet(
    hidden_layer_sizes=(40, 10),
    n_importance_samples=5,
    learning_rate=0.02,
    max_iter=30,
    random_state=0,
).fit(X_train)

# %%
# The training bound
# ------------------
# ``bound_curve_`` is the wake phase's estimate of ``log p(x)`` per epoch
# (a lower bound, in nats per image).
LossCurveDisplay.from_estimator(sbn)

# %%
# Samples and recognition weights
# -------------------------------
SampleDisplay.from_estimator(sbn, 25)

# %%
FilterDisplay.from_estimator(sbn, n_cols=8)

# %%
# Estimating the log-likelihood
# -----------------------------
# ``score_samples`` averages ``K = n_eval_samples`` importance weights per
# image.  Its expectation is a lower bound on ``log p(x)`` that tightens as
# ``K`` grows.  The estimate is random: with few samples, one draw of the
# test set's estimates can land above or below its expectation, so each
# ``K`` is repeated with five seeds (``random_state``) and the spread shown.
import matplotlib.pyplot as plt
import numpy as np

ks = [1, 10, 100, 1000]
seeds = range(5)
X_eval = X_test[:200]
estimates = np.array(
    [
        [
            sbn.set_params(n_eval_samples=k, random_state=seed)
            .score_samples(X_eval)
            .mean()
            for seed in seeds
        ]
        for k in ks
    ]
)
for k, row in zip(ks, estimates):
    print(
        f"K = {k:4d}: mean log p(x) >= {row.mean():.2f} nats (spread over seeds {row.std():.2f})"
    )

fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(
    ks, estimates.mean(axis=1), yerr=estimates.std(axis=1), marker="o", capsize=3
)
ax.set_xscale("log")
ax.set_xlabel("importance samples K")
ax.set_ylabel("estimate of log p(x), nats per image")

# %%
# ``return_std=True`` also gives each image's delta-method standard
# deviation, small when the importance weights are even.
log_px, std = sbn.set_params(n_eval_samples=1000, random_state=0).score_samples(
    X_eval, return_std=True
)
print(f"K = 1000: median per-image standard deviation {np.median(std):.3f} nats")
