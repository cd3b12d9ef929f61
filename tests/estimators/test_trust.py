"""What every estimator promises (issues 20 and 21): one front door, and fits that can be trusted.

- a diverged fit raises and leaves the estimator as it was before the call;
- a loss that stays finite but explodes is divergence too;
- nested objects (pretrainers, optimizers, schedules) are validated once, before training;
- ``n_threads``, ``backend`` (name or Ops) and the missing-backend fallback follow one rule;
- the regressions of issue 20: partial_fit after early stopping, a validation set too small.
"""

import ast
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import neuroplug
from neuroplug.estimators import (
    DBN,
    RBM,
    CNNClassifier,
    CNNRegressor,
    ConvDBN,
    ConvRBM,
    DBNClassifier,
    SigmoidBeliefNet,
)
from neuroplug.estimators._base import BackendFallbackWarning
from neuroplug.models import ChanceLevelWarning, TrainingDivergedError
from neuroplug.ops import Ops
from neuroplug.optimizers import SGD, StepLR
from neuroplug.pretrain.dbn import DBNPretrainer
from neuroplug.pretrain.sbn import SBNPretrainer

ROOT = pathlib.Path(__file__).resolve().parents[2]
X_ALL, Y_ALL = load_digits(return_X_y=True)
X = X_ALL[:300] / 16
Y = Y_ALL[:300]
TARGETS = {"CNNClassifier": Y, "CNNRegressor": X[:, 10], "DBNClassifier": Y}


def _good(name):
    """Small, fast settings that train fine."""
    return {
        "RBM": lambda: RBM(8, max_iter=2, random_state=0),
        "DBN": lambda: DBN((8, 4), max_iter=2, random_state=0),
        "SigmoidBeliefNet": lambda: SigmoidBeliefNet(
            (6,), max_iter=2, n_eval_samples=4, random_state=0
        ),
        "ConvRBM": lambda: ConvRBM(3, kernel_size=3, max_iter=2, random_state=0),
        "ConvDBN": lambda: ConvDBN((3,), kernel_size=3, max_iter=2, random_state=0),
        "CNNClassifier": lambda: CNNClassifier(
            ("dense:16", "relu"), max_iter=3, random_state=0
        ),
        "CNNRegressor": lambda: CNNRegressor(
            ("dense:16", "relu"), max_iter=3, random_state=0
        ),
        "DBNClassifier": lambda: DBNClassifier(
            (16,), max_iter=3, pretrain_max_iter=1, random_state=0
        ),
    }[name]()


#: The setting that makes each estimator diverge on the digits.
DIVERGING = {
    "RBM": {"learning_rate": 1e6},
    "DBN": {"learning_rate": 1e6},
    "SigmoidBeliefNet": {"learning_rate": 1e30},
    "ConvRBM": {"learning_rate": 1e6},
    "ConvDBN": {"learning_rate": 1e6},
    "CNNClassifier": {"learning_rate": 1e6},
    "CNNRegressor": {"learning_rate": 1e6},
    "DBNClassifier": {"learning_rate": 1e6},
}
NAMES = sorted(DIVERGING)


def _fit(est, name, method="fit"):
    y = TARGETS.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(est, method)(X) if y is None else getattr(est, method)(X, y)


def _fitted_state(est):
    """Every fitted attribute, as plain comparable values."""
    out = {}
    for key, value in vars(est).items():
        if key.endswith("_") and not key.startswith("_"):
            out[key] = pickle.dumps(value)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_a_diverged_first_fit_leaves_the_estimator_unfitted(name):
    est = _good(name).set_params(**DIVERGING[name])
    with pytest.raises(TrainingDivergedError, match="diverged"):
        _fit(est, name)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    method = "predict" if name in TARGETS else "transform"
    with pytest.raises(NotFittedError):
        getattr(est, method)(X)
    # What save stores is the unfitted estimator (hyper-parameters only), never the diverged weights.


@pytest.mark.parametrize("name", NAMES)
def test_a_diverged_refit_keeps_the_previous_model(name):
    est = _fit(_good(name), name)
    before = _fitted_state(est)
    method = "predict" if name in TARGETS else "transform"
    out_before = getattr(est, method)(X)
    est.set_params(**DIVERGING[name])
    with pytest.raises(TrainingDivergedError):
        _fit(est, name)
    assert _fitted_state(est) == before
    np.testing.assert_array_equal(getattr(est, method)(X), out_before)


@pytest.mark.parametrize(
    "name", ["RBM", "SigmoidBeliefNet", "CNNClassifier", "CNNRegressor"]
)
def test_a_diverging_partial_fit_keeps_the_previous_model(name):
    est = _fit(_good(name), name)
    before = _fitted_state(est)
    est.set_params(**DIVERGING[name])
    with pytest.raises(TrainingDivergedError):
        _fit(est, name, "partial_fit")
    assert _fitted_state(est) == before


def test_issue_repro_rbm_divergence_on_digits():
    est = RBM(16, learning_rate=1e6, max_iter=5, batch_size=32)
    with pytest.raises(TrainingDivergedError, match="lower learning_rate"):
        est.fit(X_ALL[:1200] / 16)
    with pytest.raises(NotFittedError):
        est.transform(X)


def test_a_classifier_that_learns_nothing_says_so():
    rng = np.random.default_rng(0)
    Xr = rng.random((200, 8))
    yr = rng.integers(0, 4, 200)  # labels unrelated to X: nothing to learn
    with pytest.warns(ChanceLevelWarning, match="learned nothing"):
        CNNClassifier(
            ("dense:4", "relu"), max_iter=3, learning_rate=1e-6, random_state=0
        ).fit(Xr, yr)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        CNNClassifier(("dense:32", "relu"), max_iter=20, random_state=0).fit(X, Y)


# ------------------------------------------------------------------ issue 20's two regressions
def test_partial_fit_after_an_early_stopping_fit():
    rng = np.random.default_rng(0)
    Xs = rng.random((60, 4))
    ys = (Xs[:, 0] > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (
            CNNClassifier(
                ("dense:4", "relu"), early_stopping=True, max_iter=3, random_state=0
            ),
            DBNClassifier(
                (4,),
                early_stopping=True,
                max_iter=3,
                pretrain_max_iter=1,
                random_state=0,
            ),
        ):
            est.fit(Xs, ys).partial_fit(Xs, ys)
            assert est.n_iter_ == len(est.loss_curve_)
            est.set_params(warm_start=True, early_stopping=False).fit(Xs, ys)
        reg = CNNRegressor(
            ("dense:4", "relu"), early_stopping=True, max_iter=3, random_state=0
        )
        reg.fit(Xs, Xs[:, 0]).partial_fit(Xs, Xs[:, 0])
        restored = neuroplug.load(_saved(reg))
        restored.partial_fit(Xs, Xs[:, 0])
        assert restored.n_iter_ == reg.n_iter_ + 1


def _saved(est):
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "m.npz")
    neuroplug.save(est, path)
    return path


def test_a_validation_set_too_small_is_refused():
    rng = np.random.default_rng(0)
    Xs = rng.random((10, 4))
    est = CNNRegressor(("dense:4",), early_stopping=True)
    with pytest.raises(
        ValueError, match="validation set is too small.*validation_fraction"
    ):
        est.fit(Xs, Xs[:, 0])
    assert not hasattr(est, "network_weights_")
    # With 20 samples, 10% is 2 validation samples: enough for a score.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(max_iter=2).fit(rng.random((20, 4)), rng.random(20))
    assert all(np.isfinite(est.validation_scores_))


# ------------------------------------------------------------------ one owner for validation
@pytest.mark.parametrize(
    "pretrainer, message",
    [
        (
            DBNPretrainer(max_iter=-1),
            r"DBNPretrainer: max_iter must be an int >= 1. Received: max_iter=-1",
        ),
        (DBNPretrainer(momentum=1.5), r"momentum must be in \[0, 1\)"),
        (SBNPretrainer(batch_size=0), r"batch_size must be an int >= 1"),
    ],
)
def test_nested_pretrainer_parameters_are_checked_before_anything_trains(
    pretrainer, message, monkeypatch
):
    est = CNNClassifier(("dense:8", "sigmoid"), pretrainer=pretrainer, max_iter=1)
    monkeypatch.setattr(
        CNNClassifier, "_train_batch", lambda *a: pytest.fail("trained")
    )
    with pytest.raises(ValueError, match=message):
        est.fit(X, Y)
    assert not hasattr(est, "network_weights_")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"optimizer": SGD(momentum=1.5)}, r"SGD: momentum must be in \[0, 1\)"),
        ({"lr_schedule": StepLR(gamma=2.0)}, r"StepLR: gamma must be in \(0, 1\]"),
    ],
)
def test_nested_optimizer_and_schedule_are_checked_at_fit(kw, message):
    with pytest.raises(ValueError, match=message):
        CNNClassifier(("dense:8",), max_iter=1, **kw).fit(X, Y)


def test_estimator_errors_keep_scikit_learn_wording():
    with pytest.raises(
        ValueError,
        match=r"The 'k' parameter of RBM must be an int >= 1. Got 0 instead.",
    ):
        RBM(k=0).fit(X)


def test_imports_only_run_down_the_floors():
    """estimators -> pretrain -> models -> network/layers -> ops: no arrow back up, no sklearn in models."""
    package = ROOT / "neuroplug"
    rules = {
        "models": ("estimators", "pretrain", "sklearn"),
        "pretrain": ("estimators",),
    }
    for floor, forbidden in rules.items():
        for path in (package / floor).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    module = ("." * node.level) + (node.module or "")
                elif isinstance(node, ast.Import):
                    module = node.names[0].name
                else:
                    continue
                for name in forbidden:
                    assert not module.lstrip(".").startswith(name) or (
                        name == "sklearn" and node.level
                    ), f"{path.relative_to(ROOT)} imports {module}"


# ------------------------------------------------------------------ backend, n_threads, fallback
@pytest.mark.parametrize("name", NAMES)
def test_n_threads_minus_one_means_all_cpus_everywhere(name):
    _fit(_good(name).set_params(n_threads=-1), name)
    with pytest.raises(ValueError, match="n_threads"):
        _fit(_good(name).set_params(n_threads=0), name)


@pytest.mark.parametrize("name", NAMES)
def test_a_model_whose_backend_is_missing_predicts_on_cpu(name):
    est = _fit(_good(name), name)
    method = "predict" if name in TARGETS else "transform"
    expected = getattr(est, method)(X)
    # As after loading a model fitted with backend="torch" where torch is missing (layers included).
    for model in [est, *getattr(est, "rbms_", [])]:
        model.backend = "no-such-backend"
    with pytest.warns(
        BackendFallbackWarning, match="not available here; running on the 'cpu' backend"
    ):
        got = getattr(est, method)(X)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_an_ops_instance_as_backend_is_used_and_never_modified(name):
    ops = Ops()
    est = _fit(_good(name).set_params(backend=ops, n_threads=1), name)
    assert ops.n_threads is None and ops.check_finite is True
    method = "predict" if name in TARGETS else "transform"
    assert np.all(np.isfinite(getattr(est, method)(X)))


def test_prediction_is_safe_while_partial_fit_runs_in_another_thread():
    est = _fit(_good("CNNClassifier"), "CNNClassifier")
    errors = []

    def predict_loop():
        try:
            for _ in range(30):
                est.predict(X)
        except Exception as exc:  # pragma: no cover - the failure this test is for
            errors.append(exc)

    thread = threading.Thread(target=predict_loop)
    thread.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            est.partial_fit(X, Y)
    thread.join()
    assert not errors


def test_rbm_trains_a_large_input_in_chunks_identically(monkeypatch):
    """Big inputs go to the backend a chunk of whole batches at a time (no full copy), same result."""
    import neuroplug.models.rbm as rbm_model

    Xb = (X_ALL / 16 > 0.5).astype(np.float64)
    whole = RBM(8, max_iter=2, batch_size=10, random_state=0).fit(Xb)
    monkeypatch.setattr(rbm_model, "CHUNK_ROWS", 64)  # 60 rows (6 batches) per call
    chunked = RBM(8, max_iter=2, batch_size=10, random_state=0).fit(Xb)
    np.testing.assert_allclose(
        chunked.components_, whole.components_, rtol=1e-10, atol=1e-12
    )


def test_deprecated_names_keep_working_for_one_release():
    with pytest.warns(FutureWarning, match="alpha is deprecated.*weight_decay"):
        CNNClassifier(("dense:4",), max_iter=1, alpha=0.5, random_state=0).fit(X, Y)
    rbm = _fit(_good("RBM"), "RBM")
    with pytest.warns(FutureWarning, match="reconstruction_errors_ is deprecated"):
        assert rbm.reconstruction_errors_ == rbm.loss_curve_
    sbn = _fit(_good("SigmoidBeliefNet"), "SigmoidBeliefNet")
    with pytest.warns(FutureWarning, match="bound_curve_ is deprecated"):
        assert sbn.bound_curve_ == [-v for v in sbn.loss_curve_]


def test_every_estimator_records_history_and_a_stop_reason():
    for name in ("RBM", "SigmoidBeliefNet", "ConvRBM", "CNNClassifier"):
        est = _fit(_good(name), name)
        assert len(est.history_) == est.n_iter_ == len(est.loss_curve_)
        assert est.stop_reason_ == "max_iter"
        assert [row["epoch"] for row in est.history_] == list(range(1, est.n_iter_ + 1))


# ------------------------------------------------------------------ Ctrl-C in every phase
_CHILD = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    from sklearn.datasets import load_digits
    from neuroplug.estimators import *
    X, y = load_digits(return_X_y=True)
    X = X / 16
    est = {est}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y) if {supervised} else est.fit(X)
    print(json.dumps({{"n_iter": int(est.n_iter_), "stop": getattr(est, "stop_reason_", None),
                      "warned": [w.category.__name__ for w in caught]}}), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    "est, supervised",
    [
        ("RBM(64, max_iter=100000, batch_size=10, verbose=2, random_state=0)", False),
        ("SigmoidBeliefNet((32,), max_iter=100000, verbose=2, random_state=0)", False),
        (
            "ConvRBM(4, kernel_size=3, max_iter=100000, verbose=2, random_state=0)",
            False,
        ),
        ("DBN((32, 16), max_iter=100000, verbose=2, random_state=0)", False),
        (
            "CNNClassifier(('conv:4x3x3', 'relu', 'maxpool:2', 'dense:16', 'relu'), input_shape=(1, 8, 8), "
            "pretrainer=CDBNPretrainer(max_iter=100000) if False else 'cdbn', max_iter=5, verbose=2, random_state=0)",
            True,
        ),
    ],
)
def test_a_real_sigint_stops_any_fit_cleanly(est, supervised, tmp_path):
    if "cdbn" in est:
        est = est.replace(
            "pretrainer=CDBNPretrainer(max_iter=100000) if False else 'cdbn'",
            "pretrainer=__import__('neuroplug.pretrain.cdbn', fromlist=['x'])"
            ".CDBNPretrainer(max_iter=100000)",
        )
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(est=est, supervised=supervised))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    try:
        # The first table row (verbose=2) means an epoch has completed: interrupt now.
        for line in child.stdout:
            if line.strip() and line.split()[0].isdigit():
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=600)
    finally:
        child.kill()
    assert child.returncode == 0, err
    import json

    result = json.loads(out.strip().splitlines()[-1])
    assert result["n_iter"] >= 1 or "cdbn" in est.lower()
    assert "TrainingInterrupted" in result["warned"]
    assert result["warned"].count("TrainingInterrupted") == 1
    assert "Traceback" not in err
