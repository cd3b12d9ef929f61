"""
Deep belief nets: generative model and classifier
=================================================

A :class:`~neuroplug.estimators.DBN` stacks RBMs, each trained on the hidden
probabilities of the one below.  It generates digits by Gibbs sampling in the
top RBM and a directed pass down.  A
:class:`~neuroplug.estimators.DBNClassifier` uses the same greedy pretraining
to initialise a sigmoid network, then fine-tunes it with back-propagation.
"""

# %%
# A two-layer DBN
# ---------------
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_digits_images
from neuroplug.estimators import DBN, DBNClassifier
from neuroplug.plot import FilterDisplay, SampleDisplay

X, y, _ = load_digits_images()
X_bin = (X > 0.5).astype("float32")
X_train, X_test, y_train, y_test = train_test_split(
    X_bin, y, test_size=0.25, stratify=y, random_state=0
)

dbn = DBN(
    hidden_layer_sizes=(100, 50), learning_rate=0.02, max_iter=20, random_state=0
).fit(X_train)
print([rbm.components_.shape for rbm in dbn.rbms_])

# %%
# The weights of each layer
# -------------------------
# The first layer's units are drawn directly.  A second-layer unit is drawn
# as its weights multiplied by the first layer's, a linear picture of what
# it responds to in pixel space.
FilterDisplay.from_estimator(dbn, layer=0, max_filters=32, n_cols=8)

# %%
FilterDisplay.from_estimator(dbn, layer=1, max_filters=32, n_cols=8)

# %%
# Samples
# -------
# ``return_means=True`` draws the bottom layer's probabilities instead of
# binary pixels, which are easier to look at.
SampleDisplay.from_estimator(
    dbn, 16, sample_kwargs={"n_steps": 300, "return_means": True}
)

# %%
# Pretraining a classifier
# ------------------------
# ``pretrain_max_iter`` epochs of greedy RBM training per layer, then
# ``max_iter`` epochs of fine-tuning.  ``pretrain_max_iter=0`` trains the
# same network from a random start, for comparison: the pretrained network
# starts from a much lower loss.  (On data this small, both end up close.)
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 4))
for pretrain_epochs in (10, 0):
    clf = DBNClassifier(
        (100, 50), pretrain_max_iter=pretrain_epochs, max_iter=15, random_state=0
    ).fit(X_train, y_train)
    label = f"{pretrain_epochs} pretraining epochs per layer"
    ax.plot(range(1, clf.n_iter_ + 1), clf.loss_curve_, marker="o", label=label)
    print(f"{label}: test accuracy {clf.score(X_test, y_test):.3f}")
ax.set_xlabel("fine-tuning epoch")
ax.set_ylabel("training loss")
ax.legend()
