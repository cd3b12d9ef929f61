"""Callbacks, checkpoints and resume (issue 23): the protocol, the built-ins, exact continuation."""

import csv
import os
import stat
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import neuroplug
from neuroplug.callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    ReduceLROnPlateau,
)
from neuroplug.estimators import RBM, CNNClassifier, ConvRBM, SigmoidBeliefNet
from neuroplug.registry import UnknownNameError

X_ALL, Y_ALL = load_digits(return_X_y=True)
X = X_ALL[:240] / 16
Y = Y_ALL[:240]
NET = (
    "conv:4x3x3,padding=same",
    "relu",
    "maxpool:2",
    "dense:16",
    "relu",
    "dropout:0.25",
)


def _clf(**kw):
    params = dict(
        input_shape=(1, 8, 8),
        max_iter=5,
        n_iter_no_change=None,
        random_state=0,
        batch_size=32,
    )
    params.update(kw)
    return CNNClassifier(NET, **params)


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_ten_epochs_equal_five_plus_save_load_plus_five(optimizer, tmp_path):
    """Optimizer moments, step count, schedule position and random streams all survive the file."""
    ten = _quiet(
        _clf(max_iter=10, optimizer=optimizer, lr_schedule="step:3,0.5").fit, X, Y
    )
    five = _quiet(
        _clf(max_iter=5, optimizer=optimizer, lr_schedule="step:3,0.5").fit, X, Y
    )
    path = neuroplug.save(five, tmp_path / "five.npz")
    resumed = neuroplug.load(path).set_params(warm_start=True)
    _quiet(resumed.fit, X, Y)
    assert resumed.n_iter_ == 10 and len(resumed.history_) == 10
    np.testing.assert_allclose(resumed.loss_curve_, ten.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(
        resumed.predict_proba(X), ten.predict_proba(X), rtol=1e-5, atol=1e-6
    )


def test_partial_fit_after_load_continues_exactly(tmp_path):
    ref = _clf()
    for _ in range(4):
        _quiet(ref.partial_fit, X, Y, classes=np.arange(10))
    half = _clf()
    for _ in range(2):
        _quiet(half.partial_fit, X, Y, classes=np.arange(10))
    resumed = neuroplug.load(neuroplug.save(half, tmp_path / "half"))
    for _ in range(2):
        _quiet(resumed.partial_fit, X, Y)
    np.testing.assert_allclose(
        resumed.predict_proba(X), ref.predict_proba(X), rtol=1e-5, atol=1e-6
    )


def test_rbm_resumes_exactly(tmp_path):
    Xb = (X > 0.5).astype(np.float64)
    ref = RBM(8, max_iter=1, random_state=0).fit(Xb)
    for _ in range(3):
        ref.partial_fit(Xb)
    half = RBM(8, max_iter=1, random_state=0).fit(Xb)
    half.partial_fit(Xb)
    resumed = neuroplug.load(neuroplug.save(half, tmp_path / "rbm"))
    for _ in range(2):
        resumed.partial_fit(Xb)
    np.testing.assert_allclose(resumed.components_, ref.components_, rtol=1e-10)


def test_checkpoint_every_epoch_keeps_the_last_k_and_resumes(tmp_path):
    ckpt = Checkpoint(str(tmp_path / "ckpt"), every=1, keep=2, save_best=True)
    clf = _quiet(_clf(max_iter=4, callbacks=(ckpt,)).fit, X, Y)
    names = sorted(os.listdir(tmp_path / "ckpt"))
    assert names == [
        "checkpoint-best.npz",
        "checkpoint-epoch0003.npz",
        "checkpoint-epoch0004.npz",
    ]
    last = neuroplug.load(tmp_path / "ckpt" / "checkpoint-epoch0004.npz")
    assert last.n_iter_ == 4 and last.stop_reason_ == "checkpoint"
    np.testing.assert_allclose(last.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    third = neuroplug.load(tmp_path / "ckpt" / "checkpoint-epoch0003.npz")
    assert third.n_iter_ == 3 and len(third.history_) == 3
    _quiet(third.partial_fit, X, Y)  # a checkpoint resumes like any saved model
    np.testing.assert_allclose(
        third.predict_proba(X), clf.predict_proba(X), rtol=1e-5, atol=1e-6
    )
    # The user's callback object is a parameter: it is cloned, never fitted itself.
    assert not hasattr(ckpt, "saved_")


@pytest.mark.parametrize(
    "make",
    [
        lambda cb: RBM(6, max_iter=2, random_state=0, callbacks=cb),
        lambda cb: SigmoidBeliefNet(
            (5,), max_iter=2, n_eval_samples=4, random_state=0, callbacks=cb
        ),
        lambda cb: ConvRBM(3, kernel_size=3, max_iter=2, random_state=0, callbacks=cb),
    ],
)
def test_every_model_family_checkpoints(make, tmp_path):
    est = _quiet(make((Checkpoint(str(tmp_path), every=1, keep=None),)).fit, X)
    saved = sorted(os.listdir(tmp_path))
    assert saved == ["checkpoint-epoch0001.npz", "checkpoint-epoch0002.npz"]
    last = neuroplug.load(tmp_path / saved[-1])
    np.testing.assert_allclose(last.transform(X), est.transform(X), rtol=1e-6)


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log" / "train.csv"
    _quiet(
        _clf(max_iter=3, early_stopping=True, callbacks=(CSVLogger(str(path)),)).fit,
        X,
        Y,
    )
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(
        float(r["val_score"]) >= 0 and float(r["val_loss"]) > 0 and float(r["loss"]) > 0
        for r in rows
    )


def test_reduce_lr_on_plateau_lowers_the_rate_and_a_resume_keeps_it(tmp_path):
    class Flat(Callback):
        """Report a plateau: rewrite the loss the other callbacks see as constant."""

        def on_epoch_end(self, info):
            info["stats"]["loss"] = 1.0

    cbs = (Flat(), ReduceLROnPlateau(factor=0.5, patience=1, tol=0.01))
    clf = _quiet(_clf(max_iter=5, learning_rate=1e-3, callbacks=cbs).fit, X, Y)
    rates = [row["learning_rate"] for row in clf.history_]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] < rates[0]
    # A test-local callback class cannot go into the safe format (it refuses, naming it): drop it first.
    with pytest.raises(
        neuroplug.persist.ModelFormatError, match="callbacks\\[0\\] of type"
    ):
        neuroplug.save(clf, tmp_path / "m")
    resumed = neuroplug.load(
        neuroplug.save(clf.set_params(callbacks=()), tmp_path / "m")
    )
    _quiet(resumed.partial_fit, X, Y)
    assert resumed.history_[-1]["learning_rate"] == pytest.approx(rates[-1] * 0.5)


def test_early_stopping_callback_stops_and_says_why():
    # patience=0: the first epoch that does not improve by tol (the second) stops training.
    clf = _quiet(
        _clf(
            max_iter=50,
            callbacks=(EarlyStopping(monitor="loss", patience=0, tol=10.0),),
        ).fit,
        X,
        Y,
    )
    assert clf.n_iter_ == 2 and clf.stop_reason_ == "callback"


def test_callbacks_by_name_and_unknown_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _quiet(_clf(max_iter=2, callbacks=("csv_logger",)).fit, X, Y)
    assert os.path.exists(tmp_path / "training_log.csv")
    with pytest.raises(UnknownNameError, match="checkpoint.*csv_logger"):
        _clf(callbacks=("chekpoint",)).fit(X, Y)
    with pytest.raises(
        TypeError, match=r"callbacks\[0\] must be a registered callback name"
    ):
        _clf(callbacks=(42,)).fit(X, Y)


def test_a_failing_callback_stops_the_fit_names_itself_and_keeps_the_model():
    class Broken(Callback):
        def on_epoch_end(self, info):
            if info["epoch"] == 3:
                raise OSError("disk full")

    clf = _quiet(_clf(max_iter=2).fit, X, Y)
    before = [dict(w) for w in clf.network_weights_]
    clf.set_params(warm_start=True, callbacks=(Broken(),))
    with pytest.raises(
        RuntimeError, match="Broken.on_epoch_end raised OSError: disk full"
    ):
        _quiet(clf.fit, X, Y)
    assert clf.n_iter_ == 2
    for a, b in zip(before, clf.network_weights_):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere"
)
def test_an_unwritable_checkpoint_directory_fails_before_training(
    tmp_path, monkeypatch
):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setattr(
        CNNClassifier, "_train_batch", lambda *a: pytest.fail("trained")
    )
    with pytest.raises(OSError, match="Checkpoint cannot write to its directory"):
        _clf(callbacks=(Checkpoint(str(locked / "ckpt")),)).fit(X, Y)


def test_a_checkpoint_path_that_is_a_file_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(
        CNNClassifier, "_train_batch", lambda *a: pytest.fail("trained")
    )
    with pytest.raises(OSError, match="Checkpoint cannot write to its directory"):
        _clf(callbacks=(Checkpoint(str(blocker / "ckpt")),)).fit(X, Y)


def test_callbacks_are_clone_safe_and_grid_searchable():
    est = _clf(max_iter=2, callbacks=(EarlyStopping(patience=3),))
    cloned = clone(est)
    assert (
        cloned.callbacks[0] is not est.callbacks[0]
        and cloned.callbacks[0].patience == 3
    )
    search = GridSearchCV(
        _clf(max_iter=2),
        {"callbacks": [(), (EarlyStopping(patience=0, tol=10.0),)]},
        cv=2,
    )
    _quiet(search.fit, X, Y)
    assert len(search.cv_results_["params"]) == 2


def test_max_iter_without_convergence_warns_as_mlp_does():
    with pytest.warns(ConvergenceWarning, match="max_iter=2 reached"):
        CNNClassifier(("dense:8",), max_iter=2, random_state=0).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        CNNClassifier(
            ("dense:8",), max_iter=2, n_iter_no_change=None, random_state=0
        ).fit(X, Y)
