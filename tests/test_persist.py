"""The safe model format: neuroplug.save / neuroplug.load.

Round trips of every estimator (fitted and not), the file layout (JSON
header, numeric arrays, no pickle), refusal of truncated, tampered,
too-new and foreign files, of unknown layer/pretrainer names (with the
installed ones and the plugin to install), no code executed from a file
even when an attacker recomputes the checksum, and atomic writes.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import neuroplug
import neuroplug.estimators as estimators
from neuroplug import ModelFormatError, load, persist, save
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
from neuroplug.layers.activations import ReLU
from neuroplug.optimizers import SGD, Adam, StepLR
from neuroplug.plugins import get_plugin_manager, hookimpl

CASES = {
    "CNNClassifier": lambda: CNNClassifier(
        ("conv:2x3x3,padding=same", "relu", "maxpool:2", "dense:4", "dropout:0.25"),
        input_shape=(1, 4, 4),
        max_iter=2,
        batch_size=8,
        random_state=0,
    ),
    "CNNRegressor": lambda: CNNRegressor(
        ("conv:2x3x3", "tanh", "dense:4"),
        input_shape=(1, 4, 4),
        max_iter=2,
        batch_size=8,
        random_state=0,
    ),
    "DBNClassifier": lambda: DBNClassifier(
        (5,), pretrain_max_iter=1, max_iter=2, batch_size=8, random_state=0
    ),
    "RBM": lambda: RBM(4, max_iter=2, batch_size=8, random_state=0),
    "DBN": lambda: DBN((5, 3), max_iter=1, batch_size=8, random_state=0),
    "SigmoidBeliefNet": lambda: SigmoidBeliefNet(
        (4, 2), max_iter=2, batch_size=8, random_state=0
    ),
    "ConvRBM": lambda: ConvRBM(
        2,
        kernel_size=3,
        pool_size=2,
        max_iter=1,
        batch_size=8,
        input_shape=(1, 4, 4),
        random_state=0,
    ),
    "ConvDBN": lambda: ConvDBN(
        (2, 2),
        kernel_size=(2, 2),
        pool_size=(1, 1),
        max_iter=1,
        batch_size=8,
        input_shape=(1, 4, 4),
        random_state=0,
    ),
}
SUPERVISED = {"CNNClassifier": "cls", "CNNRegressor": "reg", "DBNClassifier": "cls"}
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "score_samples",
    "free_energy",
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = (rng.random((32, 16)) < np.linspace(0.2, 0.8, 16)).astype(np.float64)
    return X, np.arange(32) % 3, X[:, :4].sum(axis=1)


def _fit_args(name, data):
    X, y_cls, y_reg = data
    kind = SUPERVISED.get(name)
    return (X, y_cls) if kind == "cls" else (X, y_reg) if kind == "reg" else (X,)


def _outputs(est, X):
    return {
        m: np.asarray(getattr(est, m)(X)) for m in OUTPUT_METHODS if hasattr(est, m)
    }


def _assert_same(a, b):
    assert a.keys() == b.keys() and a
    for m in a:
        np.testing.assert_array_equal(a[m], b[m], err_msg=m)


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory, data):
    """A fitted CNNClassifier saved once, with its outputs."""
    est = CASES["CNNClassifier"]().fit(*_fit_args("CNNClassifier", data))
    path = save(est, tmp_path_factory.mktemp("model") / "cnn")
    return path, est


def _read_members(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _rewrite(path, members, *, recompute_checksum=True, out=None):
    """Write ``members`` back as a model file; with ``recompute_checksum`` an attacker's valid checksum."""
    members = dict(members)
    if recompute_checksum:
        meta_bytes = members["__model__"].tobytes()
        arrays = {
            k: v for k, v in members.items() if k not in ("__model__", "__checksum__")
        }
        members["__checksum__"] = np.frombuffer(
            persist._checksum(meta_bytes, arrays).encode(), dtype=np.uint8
        )
    out = out or path
    with open(out, "wb") as fh:
        np.savez(fh, allow_pickle=False, **members)
    return out


def _with_meta(path, tmp_path, edit, name="tampered.npz"):
    """A copy of the model at ``path`` whose JSON header went through ``edit(meta)``, checksum recomputed."""
    members = _read_members(path)
    meta = json.loads(members["__model__"].tobytes())
    edit(meta)
    members["__model__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return _rewrite(path, members, out=tmp_path / name)


# ----------------------------------------------------------------------------------- round trips
def test_save_and_load_are_exported():
    assert neuroplug.save is persist.save and neuroplug.load is persist.load
    assert {"save", "load", "ModelFormatError"} <= set(neuroplug.__all__)
    assert issubclass(ModelFormatError, ValueError)


def test_every_public_estimator_has_a_case():
    assert set(CASES) == set(estimators.__all__)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fitted_round_trip_predicts_identically(name, data, tmp_path):
    est = CASES[name]().fit(*_fit_args(name, data))
    path = save(est, tmp_path / "model")
    assert path == tmp_path / "model.npz" and path.is_file()
    loaded = load(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    _assert_same(_outputs(est, data[0]), _outputs(loaded, data[0]))
    # Every array is numeric and reads back without pickle.
    for key, arr in _read_members(path).items():
        assert arr.dtype.kind in "biufU", (key, arr.dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unfitted_round_trip_fits_the_same_model(name, data, tmp_path):
    est = CASES[name]()
    loaded = load(save(est, tmp_path / "model.npz"))
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    assert not [k for k in vars(loaded) if k.endswith("_")]
    args = _fit_args(name, data)
    _assert_same(
        _outputs(est.fit(*args), data[0]), _outputs(loaded.fit(*args), data[0])
    )


@pytest.mark.parametrize("name", ["RBM", "SigmoidBeliefNet", "CNNClassifier"])
def test_loaded_model_keeps_training_like_an_unpickled_one(name, data, tmp_path):
    """The generator state, momentum buffers and chains survive: partial_fit continues as after pickle."""
    args = _fit_args(name, data)
    est = CASES[name]().fit(*args)
    a = load(save(est, tmp_path / "m"))
    b = pickle.loads(pickle.dumps(est))
    a.partial_fit(*args)
    b.partial_fit(*args)
    _assert_same(_outputs(a, data[0]), _outputs(b, data[0]))


def test_parameter_objects_and_caches_round_trip(data, tmp_path):
    clf = CNNClassifier(
        ("dense:4",),
        optimizer=SGD(momentum=0.5, nesterov=True),
        lr_schedule=StepLR(3, 0.5),
        augment="shift=1,rotate=0,scale=0",
        max_iter=1,
        random_state=0,
    )
    loaded = load(save(clf, tmp_path / "clf"))
    assert isinstance(loaded.optimizer, SGD) and loaded.optimizer.get_params() == {
        "momentum": 0.5,
        "nesterov": True,
    }
    assert isinstance(
        loaded.lr_schedule, StepLR
    ) and loaded.lr_schedule.get_params() == {"step_size": 3, "gamma": 0.5}
    clf2 = CNNClassifier(
        ("dense:4",), optimizer=Adam(beta1=0.8), max_iter=1, random_state=0
    )
    assert load(save(clf2, tmp_path / "clf2")).optimizer.get_params()["beta1"] == 0.8
    # An RBM's log Z cache is keyed by tuples; it survives, so the score needs no recomputation.
    rbm = RBM(4, max_iter=1, random_state=0).fit(data[0])
    score = rbm.score(data[0])
    loaded_rbm = load(save(rbm, tmp_path / "rbm"))
    assert (
        loaded_rbm._log_z_cache == rbm._log_z_cache
        and loaded_rbm.score(data[0]) == score
    )


def test_header_is_json_with_hyper_parameters_and_layer_specs(saved_cnn):
    path, est = saved_cnn
    members = _read_members(path)
    meta = json.loads(members["__model__"].tobytes().decode("utf-8"))
    assert (
        meta["format"] == "neuroplug-model"
        and meta["version"] == persist.FORMAT_VERSION
    )
    assert (
        meta["estimator"] == "CNNClassifier"
        and meta["neuroplug_version"] == neuroplug.__version__
    )
    assert (
        meta["params"]["__dict__"]["layers"]["__tuple__"][0]
        == "conv:2x3x3,padding=same"
    )
    assert meta["params"]["__dict__"]["max_iter"] == 2
    assert "conv" in meta["plugins"]["layer"] and meta["plugins"]["layer"][
        "conv"
    ].startswith("layers")
    # The weights are plain arrays of the network's dtype.
    weights = [a for k, a in members.items() if not k.startswith("__")]
    assert any(a.shape == (2, 1, 3, 3) for a in weights)
    # The checksum is SHA-256 hex.
    assert len(members["__checksum__"].tobytes()) == 64


def test_load_executes_no_pickle(saved_cnn, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load() unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    path, est = saved_cnn
    np.testing.assert_array_equal(
        load(path).predict_proba(np.ones((2, 16))), est.predict_proba(np.ones((2, 16)))
    )


def test_save_accepts_str_paths_and_keeps_a_given_suffix(tmp_path):
    path = save(RBM(3), str(tmp_path / "sub" / "dir" / "model.bin"))
    assert path == tmp_path / "sub" / "dir" / "model.bin"
    assert isinstance(load(str(path)), RBM)


# ------------------------------------------------------------------------------ refusals on save
def test_save_refuses_foreign_objects(tmp_path):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(
        ModelFormatError,
        match=r"neuroplug's estimators.*Received: an instance of LogisticRegression",
    ):
        save(LogisticRegression(), tmp_path / "m")
    assert not list(tmp_path.iterdir())


def test_save_refuses_unstorable_parameters_and_writes_nothing(tmp_path):
    from neuroplug.backends import get_ops

    with pytest.raises(ModelFormatError, match=r"params\.backend of type Ops"):
        save(RBM(3, backend=get_ops("numpy")), tmp_path / "m")
    assert not list(tmp_path.iterdir())


def test_save_refuses_a_directory(tmp_path):
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="directory"):
        save(RBM(3), tmp_path / "d.npz")


# --------------------------------------------------------------------------- refusals on load
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved_cnn, tmp_path, keep):
    path, _ = saved_cnn
    raw = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(
        ModelFormatError, match="truncated or corrupt|not a neuroplug model"
    ):
        load(bad)


def test_flipped_byte_is_refused(saved_cnn, tmp_path):
    path, _ = saved_cnn
    raw = bytearray(path.read_bytes())
    # Flip a byte in the middle of the largest array's data (zip members are stored uncompressed).
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    raw[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="truncated or corrupt|checksum"):
        load(bad)


def test_tampered_weights_with_a_valid_zip_fail_the_checksum(saved_cnn, tmp_path):
    path, _ = saved_cnn
    members = _read_members(path)
    key = next(
        k for k, a in members.items() if not k.startswith("__") and a.dtype.kind == "f"
    )
    members[key] = members[key] + 1.0
    bad = _rewrite(path, members, recompute_checksum=False, out=tmp_path / "t.npz")
    with pytest.raises(ModelFormatError, match="failed its checksum"):
        load(bad)


def test_tampered_header_fails_the_checksum(saved_cnn, tmp_path):
    path, _ = saved_cnn
    members = _read_members(path)
    meta = json.loads(members["__model__"].tobytes())
    meta["params"]["__dict__"]["max_iter"] = 1000
    members["__model__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with pytest.raises(ModelFormatError, match="failed its checksum"):
        load(_rewrite(path, members, recompute_checksum=False, out=tmp_path / "t.npz"))


def test_newer_format_version_is_refused(saved_cnn, tmp_path):
    bad = _with_meta(
        saved_cnn[0], tmp_path, lambda m: m.update(version=persist.FORMAT_VERSION + 1)
    )
    with pytest.raises(ModelFormatError, match=r"format version 2.*Upgrade neuroplug"):
        load(bad)
    for version in (0, "1", True, None):
        with pytest.raises(ModelFormatError, match="format version"):
            load(
                _with_meta(
                    saved_cnn[0],
                    tmp_path,
                    lambda m, v=version: m.update(version=v),
                    name="v.npz",
                )
            )


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", X=np.ones(3))
    with pytest.raises(ModelFormatError, match="no __model__ entry"):
        load(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ModelFormatError, match="not a neuroplug model|not a readable"):
        load(tmp_path / "array.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFormatError, match="truncated or corrupt"):
        load(tmp_path / "text.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ModelFormatError):
        load(tmp_path / "empty.npz")


class _Evil:
    """Unpickling this would create a marker file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_disguised_as_a_model_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ModelFormatError):
        load(tmp_path / "evil.npz")
    # An object array (pickled inside the .npz) is refused too.
    members = {
        "__model__": np.frombuffer(b"{}", dtype=np.uint8),
        "__checksum__": np.zeros(64, np.uint8),
        "a0": np.array([_Evil(marker)], dtype=object),
    }
    np.savez(tmp_path / "evil2.npz", **members)
    with pytest.raises(ModelFormatError):
        load(tmp_path / "evil2.npz")
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m.update(estimator="os.system"),
            r"estimator 'os\.system' that neuroplug does not have; known estimators: CNNClassifier",
        ),
        (lambda m: m.update(estimator=["CNNClassifier"]), "does not have"),
        (lambda m: m.update(format="pickle"), "not a neuroplug model file"),
        (lambda m: m.pop("state"), "no params or state"),
        (
            lambda m: m["params"]["__dict__"].update(
                evil={"__object__": "subprocess.Popen", "params": {"__dict__": {}}}
            ),
            r"'subprocess\.Popen' that is not one of neuroplug's parameter classes",
        ),
        (
            lambda m: m["params"]["__dict__"].update(
                evil={"__estimator__": "builtins.eval", "params": {}, "state": {}}
            ),
            r"estimator 'builtins\.eval' that neuroplug does not have",
        ),
        (lambda m: m["params"]["__dict__"].update(surprise=1), "does not accept"),
        (
            lambda m: m["state"]["__dict__"].update(x={"__array__": "a999"}),
            "missing array 'a999'",
        ),
        (
            lambda m: m["state"]["__dict__"].update(
                x={"__float__": "__import__('os')"}
            ),
            "malformed __float__",
        ),
        (
            lambda m: m["state"]["__dict__"].update(x={"__tuple__": {"a": 1}}),
            "malformed __tuple__",
        ),
        (
            lambda m: m["state"]["__dict__"].update(x={"__whatever__": 1}),
            "unknown entry in model file",
        ),
        (
            lambda m: m["state"]["__dict__"].update(
                x={
                    "__generator__": {
                        "__dict__": {
                            "bit_generator": "__import__",
                            "state": {"__dict__": {}},
                        }
                    }
                }
            ),
            r"random generator state for '__import__'; supported bit generators: PCG64",
        ),
        (
            lambda m: m["state"]["__dict__"]["_rng_state"]["__dict__"].update(
                bit_generator="RandomState"
            ),
            "unknown bit generator 'RandomState'",
        ),
        (
            lambda m: m["state"]["__dict__"]["layers_"]["__tuple__"][0].update(
                __layer__="os"
            ),
            r"layer 'os', which no installed plugin provides\. Installed layers: .*conv",
        ),
        (lambda m: m.update(plugins=[1, 2]), "malformed plugin table"),
    ],
)
def test_tampered_header_with_recomputed_checksum_is_refused(
    saved_cnn, tmp_path, edit, message
):
    """An attacker can recompute SHA-256: the decoder itself must only build whitelisted things."""
    with pytest.raises(ModelFormatError, match=message):
        load(_with_meta(saved_cnn[0], tmp_path, edit))


# ------------------------------------------------------------------- plugins: unknown names
class _Doubled(ReLU):
    """A layer only a run-time test plugin provides."""


class _LayerPlugin:
    @hookimpl
    def neuroplug_register_layers(self, register):
        register("doubled_relu", _Doubled)


def test_unknown_plugin_layer_names_the_plugin_and_the_installed_layers(
    data, tmp_path, fresh_global_manager
):
    manager = get_plugin_manager()
    manager.register(_LayerPlugin(), "testplug")
    X, y, _ = data
    clf = CNNClassifier(("dense:4", "doubled_relu"), max_iter=1, random_state=0).fit(
        X, y
    )
    fitted = save(clf, tmp_path / "fitted")
    unfitted = save(CNNClassifier(("dense:4", "doubled_relu")), tmp_path / "unfitted")
    np.testing.assert_array_equal(load(fitted).predict(X), clf.predict(X))
    manager.unregister("testplug")
    for path in (fitted, unfitted):
        with pytest.raises(ModelFormatError) as info:
            load(path)
        message = str(info.value)
        assert "layer 'doubled_relu', which no installed plugin provides" in message
        assert "saved with plugin testplug (registered at run time)" in message
        assert (
            "Installed layers:" in message and "conv" in message and "dense" in message
        )


def test_layer_spec_missing_from_the_plugin_table_is_still_checked(tmp_path):
    """A header whose plugin table was edited out still cannot smuggle an unknown layer spec."""
    path = save(CNNClassifier(("dense:4", "relu")), tmp_path / "m")
    bad = _with_meta(
        path,
        tmp_path,
        lambda m: (
            m.update(plugins={}),
            m["params"]["__dict__"]["layers"]["__tuple__"].append("nosuch:3"),
        ),
    )
    with pytest.raises(
        ModelFormatError,
        match=r"layer 'nosuch', which no installed plugin provides\. Installed layers",
    ):
        load(bad)


def test_unknown_pretrainer_name_is_refused(tmp_path):
    path = save(CNNClassifier(("dense:4",), pretrainer="dbn"), tmp_path / "m")
    assert load(path).pretrainer == "dbn"
    bad = _with_meta(
        path,
        tmp_path,
        lambda m: (
            m["params"]["__dict__"].update(pretrainer="magic"),
            m["plugins"]["pretrainer"].update(magic="magicplug (entry point x)"),
        ),
    )
    with pytest.raises(
        ModelFormatError,
        match=r"pretrainer 'magic'.*saved with plugin magicplug.*Installed pretrainers: .*dbn",
    ):
        load(bad)


# ------------------------------------------------------------------------------- atomic writes
def _make_interrupting_savez(exc):
    real = np.savez

    def savez(fh, *args, **kwargs):
        real(fh, *args, **kwargs)
        fh.truncate(fh.tell() // 2)  # half a file on disk, then the interruption
        raise exc

    return savez


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), OSError(28, "No space left on device")]
)
def test_interrupted_save_leaves_the_previous_model(
    saved_cnn, tmp_path, monkeypatch, exc, data
):
    path, est = saved_cnn
    target = tmp_path / "model.npz"
    target.write_bytes(path.read_bytes())
    monkeypatch.setattr(persist.np, "savez", _make_interrupting_savez(exc))
    with pytest.raises(type(exc)):
        save(RBM(3).fit(data[0]), target)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"], "a temporary file was left behind"
    np.testing.assert_array_equal(load(target).predict(data[0]), est.predict(data[0]))


def test_save_replaces_an_existing_model(tmp_path, data):
    target = tmp_path / "m.npz"
    save(RBM(3), target)
    save(RBM(5), target)
    assert load(target).n_components == 5
    assert os.listdir(tmp_path) == ["m.npz"]


def test_neuroplug_train_saves_in_the_safe_format(tmp_path, capsys):
    from neuroplug.cli import main

    out = tmp_path / "trained.npz"
    argv = [
        "train",
        "--epochs",
        "1",
        "--layers",
        "dense:8",
        "relu",
        "--threads",
        "1",
        "-q",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    members = _read_members(out)  # allow_pickle=False
    assert json.loads(members["__model__"].tobytes())["estimator"] == "CNNClassifier"
    assert load(out).n_iter_ == 1


# ------------------------------------------------------------------------------- bounded reads
_PEAK_SCRIPT = r"""
import resource, sys, tracemalloc, zipfile
import numpy as np
import neuroplug
from neuroplug.estimators import RBM

src, bad, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = (np.random.default_rng(0).random((20, 8)) > 0.5).astype(np.float64)
neuroplug.save(RBM(3, max_iter=1, random_state=0).fit(X), src)
# Copy the model and add a deflated member of zeros: a small file that declares size_mib MiB.
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        zout.writestr(info.filename, zin.read(info))
    with zout.open("a99.npy", "w", force_zip64=True) as fh:
        n = size_mib * 2**20 // 8
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
        chunk = bytes(2**20)
        for _ in range(size_mib):
            fh.write(chunk)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    neuroplug.load(bad)
except Exception as exc:
    outcome = type(exc).__name__
else:
    outcome = "loaded"
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024  # KiB on Linux
print(outcome, max(tracemalloc.get_traced_memory()[1], rss_growth))
"""


def test_load_of_a_small_file_declaring_a_large_member_stays_small(tmp_path):
    """The checksum is streamed before any array is allocated: a 256 MiB deflated member never lands in memory."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_SCRIPT,
            str(tmp_path / "m.npz"),
            str(tmp_path / "bad.npz"),
            "256",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout.split()
    assert (tmp_path / "bad.npz").stat().st_size < 2**20
    outcome, peak = out[-2], int(out[-1])
    assert outcome == "ModelFormatError"
    assert peak < 16 * 2**20, (
        f"load peaked at {peak / 2**20:.1f} MiB for a file declaring 256 MiB"
    )


def test_max_bytes_bounds_what_a_valid_file_may_declare(saved_cnn):
    path, _ = saved_cnn
    with zipfile.ZipFile(path) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    load(
        path, max_bytes=declared
    )  # the arrays alone are smaller than the members with their headers
    with pytest.raises(ModelFormatError, match=r"over the limit max_bytes=10\b"):
        load(path, max_bytes=10)
    with pytest.raises(
        ValueError,
        match=r"max_bytes must be an int >= 0 or None\. Received: max_bytes=-1",
    ):
        load(path, max_bytes=-1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_fitted_state_matches_its_schema(name, data):
    """The schema table covers each estimator's fitted state (so a schema drift fails here, not on users' files)."""
    from neuroplug import _schema

    est = CASES[name]().fit(*_fit_args(name, data))
    _schema.check_state(est)
    required = _schema.SCHEMAS[name].required
    assert all(hasattr(est, attr) for attr in required)
    _schema.check_state(CASES[name]())  # unfitted: none of them, and nothing to check


# ------------------------------------------------------------------- leftovers of killed saves
_KILLED_SAVE = r"""
import os, signal, sys
import numpy as np
import neuroplug
from neuroplug import persist
from neuroplug.estimators import RBM

real = np.savez
def savez(fh, *args, **kwargs):
    real(fh, *args, **kwargs)
    fh.truncate(fh.tell() // 2)
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the write
persist.np.savez = savez
neuroplug.save(RBM(3), sys.argv[1])
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid checks are POSIX")
def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path, data):
    import signal
    import subprocess
    import sys

    target = tmp_path / "model.npz"
    save(RBM(2), target)
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, str(target)],
        capture_output=True,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL
    leftovers = [p for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert (
        len(leftovers) == 1
        and leftovers[0].name.startswith(".model.npz.")
        and leftovers[0].suffix == ".tmp"
    )
    assert load(target).n_components == 2  # the previous model survived the kill
    save(RBM(4), target)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert load(target).n_components == 4


@pytest.mark.skipif(os.name != "posix", reason="pid checks are POSIX")
def test_only_stale_temporaries_are_removed(tmp_path):
    import subprocess
    import sys
    import time

    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        live_tmp = (
            tmp_path / f".m.npz.{live.pid}.abc.tmp"
        )  # another process saving right now
        old_tmp = (
            tmp_path / f".m.npz.{live.pid}.old.tmp"
        )  # same live pid, but a day old: a reused pid
        foreign = tmp_path / ".other.npz.1.x.tmp"  # a temporary of another target
        legacy = (
            tmp_path / ".m.npz.k2j3h4.tmp"
        )  # no pid (an older neuroplug), recent: kept
        for p in (live_tmp, old_tmp, foreign, legacy):
            p.write_bytes(b"partial")
        day_ago = time.time() - persist.STALE_TEMPORARY_SECONDS - 60
        os.utime(old_tmp, (day_ago, day_ago))
        save(RBM(2), tmp_path / "m.npz")
        assert sorted(os.listdir(tmp_path)) == sorted(
            ["m.npz", live_tmp.name, foreign.name, legacy.name]
        )
    finally:
        live.communicate(b"")
    save(RBM(2), tmp_path / "m.npz")  # the writer is gone now: its leftover goes
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", foreign.name, legacy.name])
