"""Estimators on ``backend="torch"``: same results as the reference where training is deterministic,
reproducible with ``random_state``, clone- and grid-search-safe, and models trained on torch that
pickle and predict in a process without torch on the default backend."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)

import neuroplug_torch  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import neuroplug  # noqa: E402
from neuroplug.backends import DEFAULT_BACKEND  # noqa: E402
from neuroplug.estimators import RBM, CNNClassifier, ConvRBM, SigmoidBeliefNet  # noqa: E402

SMALL_CNN = ("conv:4x3x3,padding=same", "relu", "maxpool:2", "dense:16", "relu")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _cnn(backend, **kw):
    params = dict(
        input_shape=(1, 8, 8),
        max_iter=1,
        batch_size=64,
        random_state=0,
        backend=backend,
    )
    params.update(kw)
    return CNNClassifier(SMALL_CNN, **params)


def test_cnn_on_torch_matches_the_reference(digits):
    # No dropout: the same initial weights and shuffles give the same training, up to float32 rounding.
    X, y = digits
    ours = _cnn("torch:cpu").fit(X[:256], y[:256])
    ref = _cnn("numpy").fit(X[:256], y[:256])
    np.testing.assert_allclose(
        ours.predict_proba(X[256:320]), ref.predict_proba(X[256:320]), atol=1e-4
    )
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-4)
    for layer_ours, layer_ref in zip(ours.network_weights_, ref.network_weights_):
        for key in layer_ref:
            assert isinstance(layer_ours[key], np.ndarray)  # fitted state is NumPy only
            np.testing.assert_allclose(layer_ours[key], layer_ref[key], atol=1e-4)


def test_cnn_backend_is_clone_safe_and_grid_searchable(digits):
    X, y = digits
    est = _cnn("torch:cpu")
    assert clone(est).get_params()["backend"] == "torch:cpu"
    search = GridSearchCV(_cnn("numpy"), {"backend": ["numpy", "torch:cpu"]}, cv=2).fit(
        X[:200], y[:200]
    )
    scores = search.cv_results_["mean_test_score"]
    assert search.cv_results_["param_backend"].tolist() == ["numpy", "torch:cpu"]
    assert scores[0] == pytest.approx(scores[1], abs=0.02)  # same model on two backends


def test_cnn_on_torch_is_reproducible(digits):
    # Dropout draws from the torch generator: the same random_state gives the same model.
    X, y = digits
    est = CNNClassifier(
        SMALL_CNN + ("dropout:0.3",),
        input_shape=(1, 8, 8),
        max_iter=1,
        batch_size=64,
        random_state=3,
        backend="torch:cpu",
    )
    a = clone(est).fit(X[:200], y[:200]).predict_proba(X[200:240])
    b = clone(est).fit(X[:200], y[:200]).predict_proba(X[200:240])
    np.testing.assert_array_equal(a, b)


def test_rbm_on_torch(digits):
    X, _ = digits
    kw = dict(
        n_components=16, max_iter=2, batch_size=32, random_state=0, backend="torch:cpu"
    )
    a = RBM(**kw).fit(X[:300])
    b = RBM(**kw).fit(X[:300])
    assert isinstance(a.components_, np.ndarray)
    np.testing.assert_array_equal(
        a.components_, b.components_
    )  # reproducible on a given device
    features = a.transform(X[:20])
    assert features.shape == (20, 16) and np.isfinite(features).all()
    # Transform is deterministic, so the reference computes the same from the fitted NumPy weights.
    a_ref = pickle.loads(pickle.dumps(a)).set_params(backend="numpy")
    np.testing.assert_allclose(a_ref.transform(X[:20]), features, atol=1e-5)
    assert np.isfinite(a.score_samples(X[:5])).all()
    assert a.gibbs(X[:4], n_steps=2, random_state=1).shape == (4, 64)


def test_sigmoid_belief_net_and_conv_rbm_on_torch(digits):
    X, _ = digits
    Xb = (X[:200] > 0.5).astype(np.float32)
    kw = dict(max_iter=2, random_state=0, backend="torch:cpu")
    s1 = SigmoidBeliefNet((12,), **kw).fit(Xb)
    s2 = SigmoidBeliefNet((12,), **kw).fit(Xb)
    np.testing.assert_array_equal(s1.score_samples(Xb[:10]), s2.score_samples(Xb[:10]))
    assert np.isfinite(s1.score_samples(Xb[:10])).all()
    crbm = ConvRBM(
        3, kernel_size=3, max_iter=1, random_state=0, backend="torch:cpu"
    ).fit(X[:100].reshape(-1, 1, 8, 8))
    feats = crbm.transform(X[:5].reshape(-1, 1, 8, 8))
    assert np.isfinite(feats).all() and feats.shape[0] == 5


BLOCK_TORCH = """
import sys
class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _BlockTorch())
"""


def test_models_trained_on_torch_predict_without_torch(digits, tmp_path):
    X, y = digits
    cnn = _cnn("torch:cpu").fit(X[:256], y[:256])
    rbm = RBM(n_components=8, max_iter=1, random_state=0, backend="torch:cpu").fit(
        X[:256]
    )
    (tmp_path / "models.pkl").write_bytes(pickle.dumps((cnn, rbm)))
    np.save(tmp_path / "X.npy", X[256:300])
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import pickle, numpy as np
        from neuroplug.backends import DEFAULT_BACKEND
        cnn, rbm = pickle.loads(open({str(tmp_path / "models.pkl")!r}, "rb").read())
        X = np.load({str(tmp_path / "X.npy")!r})
        cnn.set_params(backend=DEFAULT_BACKEND)
        rbm.set_params(backend=DEFAULT_BACKEND)
        np.savez({str(tmp_path / "out.npz")!r}, proba=cnn.predict_proba(X), features=rbm.transform(X))
        assert "torch" not in sys.modules
        print("ok", DEFAULT_BACKEND)
    """)
    paths = [
        os.path.dirname(os.path.dirname(neuroplug.__file__)),
        os.path.dirname(os.path.dirname(neuroplug_torch.__file__)),
    ]
    env = dict(
        os.environ,
        NEUROPLUG_DISABLE_PLUGINS="torch",
        PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]),
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"ok {DEFAULT_BACKEND}" in result.stdout
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["proba"], cnn.predict_proba(X[256:300]), atol=1e-5)
    np.testing.assert_allclose(out["features"], rbm.transform(X[256:300]), atol=1e-5)
