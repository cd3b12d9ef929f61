"""The ``neuroplug train`` command (run_train called directly and through the CLI)."""

import argparse
import gzip
import struct

import numpy as np
import pytest
from sklearn.datasets import load_digits

from neuroplug.persist import load
from neuroplug.train import add_train_parser, load_train_test, run_train

FAST = [
    "--epochs",
    "2",
    "--layers",
    "conv:4x3x3",
    "relu",
    "dense:16",
    "relu",
    "--threads",
    "1",
]


def _parse(argv):
    parser = argparse.ArgumentParser(prog="neuroplug")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_defaults_are_the_main_job():
    args = _parse([])
    assert args.data == "digits" and args.layers is None and args.epochs is None
    assert args.backend == "cpu" and args.func is run_train and not args.quiet


def test_train_on_digits_prints_accuracy_time_and_path(tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert run_train(_parse([*FAST, "--output", str(out)])) == 0
    captured = capsys.readouterr()
    assert "Test accuracy: 0." in captured.out
    assert "Training time:" in captured.out and "2 epoch(s)" in captured.out
    assert f"Model saved to {out.resolve()}" in captured.out
    assert (
        "CNNClassifier" in captured.err and "loss=" in captured.err
    )  # the progress bar
    model = load(out)
    X, y = load_digits(return_X_y=True)
    assert model.predict((X[:5] / 16).astype(np.float32)).shape == (5,)
    assert model.layers == ("conv:4x3x3", "relu", "dense:16", "relu")


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_train_on_an_mnist_directory(tmp_path, capsys):
    X, y = load_digits(return_X_y=True)
    images = np.kron(
        X[:200].reshape(-1, 8, 8) * 15, np.ones((2, 2))
    )  # 16x16 stand-ins for MNIST digits
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[:200])
    assert (
        run_train(
            _parse(
                [
                    *FAST,
                    "--data",
                    str(tmp_path),
                    "--output",
                    str(tmp_path / "m"),
                    "--quiet",
                ]
            )
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "150 training and 50 test samples" in captured.out
    assert captured.err == ""
    assert load(tmp_path / "m.npz").input_shape_ == (1, 16, 16)


def test_train_on_npz_with_test_arrays(tmp_path, capsys):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, X=X[:150], y=y[:150], X_test=X[150:200], y_test=y[150:200])
    Xtr, Xte, ytr, yte, shape, how = load_train_test(str(path))
    assert (
        Xtr.shape == (150, 64)
        and Xte.shape == (50, 64)
        and shape is None
        and "X_test" in how
    )
    argv = [
        *FAST,
        "--data",
        str(path),
        "--output",
        str(tmp_path / "m.npz"),
        "--quiet",
        "--augment",
        "--optimizer",
        "sgd",
    ]
    assert run_train(_parse(argv)) == 0
    assert "50 samples" in capsys.readouterr().out


def test_bad_inputs_give_an_error_and_status(tmp_path, capsys):
    assert run_train(_parse(["--data", str(tmp_path / "missing.npz"), "--quiet"])) == 2
    assert "cannot load data" in capsys.readouterr().err
    assert (
        run_train(
            _parse(
                [
                    *FAST[:2],
                    "--layers",
                    "conv:4",
                    "--quiet",
                    "--output",
                    str(tmp_path / "m"),
                ]
            )
        )
        == 2
    )
    assert "Invalid layer spec 'conv:4'" in capsys.readouterr().err
    diverge = [
        *FAST,
        "--learning-rate",
        "1e9",
        "--optimizer",
        "sgd",
        "--quiet",
        "--output",
        str(tmp_path / "m"),
    ]
    assert run_train(_parse(diverge)) == 1
    assert "lower learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_cli_main_wires_train(tmp_path, capsys):
    cli = pytest.importorskip("neuroplug.cli")
    assert (
        cli.main(["train", *FAST, "--quiet", "--output", str(tmp_path / "m.npz")]) == 0
    )
    assert "Test accuracy" in capsys.readouterr().out


# ------------------------------------------------------------------ checkpoints, resume, trust (issues 21, 23)
def test_checkpoint_then_resume(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "model.npz"
    assert (
        run_train(
            _parse([*FAST, "--checkpoint", str(ckpt), "--output", str(out), "--quiet"])
        )
        == 0
    )
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint-epoch0001.npz",
        "checkpoint-epoch0002.npz",
    ]
    assert "Stopped: max iter after 2 epoch(s)" in capsys.readouterr().out
    resumed = tmp_path / "resumed.npz"
    argv = [
        "--resume",
        str(ckpt / "checkpoint-epoch0002.npz"),
        "--epochs",
        "3",
        "--output",
        str(resumed),
        "--quiet",
    ]
    assert run_train(_parse(argv)) == 0
    assert load(resumed).n_iter_ == 5 and len(load(resumed).history_) == 5


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert run_train(_parse([*FAST, "--output", str(out), "--quiet"])) == 0
    assert (
        run_train(_parse(["--resume", str(out), "--output", str(tmp_path / "m2.npz")]))
        == 2
    )
    assert "already ran its 2 epoch(s)" in capsys.readouterr().err
    assert run_train(_parse(["--resume", str(tmp_path / "missing.npz")])) == 2
    assert "cannot resume from" in capsys.readouterr().err


def test_an_unwritable_checkpoint_directory_is_refused_before_training(
    tmp_path, capsys
):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        run_train(
            _parse(
                [
                    *FAST,
                    "--checkpoint",
                    str(blocker / "ckpt"),
                    "--output",
                    str(tmp_path / "m"),
                ]
            )
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "--checkpoint cannot write to its directory" in err
        and "Test accuracy" not in err
    )
    assert not (tmp_path / "m.npz").exists()


def test_a_diverging_run_exits_non_zero_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert (
        run_train(_parse([*FAST, "--lr", "1e6", "--output", str(out), "--quiet"])) == 1
    )
    assert "diverged" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("extra", [[], ["--pretrainer", "cdbn"]])
def test_ctrl_c_saves_what_was_learned_and_exits_130(extra, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "model.npz"
    cmd = [
        sys.executable,
        "-m",
        "neuroplug",
        "train",
        "--epochs",
        "100000",
        "--layers",
        "conv:4x3x3",
        "relu",
        "maxpool:2",
        "dense:16",
        "relu",
        "--threads",
        "1",
        "--output",
        str(out),
        *extra,
    ]
    child = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        for (
            line
        ) in child.stdout:  # training has started once the network line is printed
            if line.startswith("Network:"):
                break
        import time

        time.sleep(1.0)  # into the epochs (or the pretraining)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=600)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr
    assert out.exists() and "Model saved to" in stdout
