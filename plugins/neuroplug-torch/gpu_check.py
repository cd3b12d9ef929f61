"""GPU check of neuroplug's torch backend: correctness against the NumPy reference, and LeNet speed.

How to run (from the repository root, on a machine with PyTorch built with CUDA;
no network access needed when numpy, scipy, scikit-learn, pluggy,
threadpoolctl, tqdm, Cython and setuptools are already installed)::

    pip install --no-build-isolation --no-deps -e . -e ./plugins/neuroplug-torch && python plugins/neuroplug-torch/gpu_check.py

The script also runs without that install step (``python
plugins/neuroplug-torch/gpu_check.py`` alone): it then puts the source tree
and this plugin on ``sys.path`` and registers the plugin by hand; only the
compiled ``"cpu"`` backend is missing then, and the pickle check predicts on
the ``"numpy"`` reference instead.

Options: ``--data DIR`` (MNIST t10k IDX files; default
/work/shared/data/mnist-t10k, random data of the same shape if absent),
``--epochs N`` (timed LeNet epochs, default 5), ``--device cuda:0``,
``--skip-pytest``.  ``--device cpu`` dry-runs everything on the CPU.

What it does, in about two minutes on an H100:

1. every TorchOps op on the GPU against the NumPy reference Ops, float64 and
   float32 (built in, always runs);
2. the plugin's own test suite restricted to the GPU (``pytest -k cuda``), if
   pytest is installed;
3. the LeNet benchmark (conv 20@5x5 -> maxpool 2 -> relu -> conv 50@5x5 ->
   maxpool 2 -> relu -> dense 500 -> relu -> dense 10, Adam 1e-3, batch 128,
   8,000 MNIST training images) with neuroplug ``backend="torch:cuda"``
   beside plain PyTorch on the same GPU; target: epoch time <= 1.2x plain
   PyTorch's (data moved per batch on both sides; plain PyTorch with the
   data resident on the GPU is shown for information);
4. the model trained on the GPU is pickled, then loaded and used for
   prediction in a fresh process where torch cannot be imported and the
   plugin is blocked (``NEUROPLUG_DISABLE_PLUGINS=torch``), on the default
   backend; predictions must match the GPU's;
5. reproducibility: two fits with the same ``random_state`` on the GPU
   (cuDNN may choose non-deterministic kernels: reported, not a failure);
   and the RBM-family loops (RBM CD-k and AIS, ConvRBM CD-k, sigmoid belief
   net wake-sleep) run on the GPU.

Prints a summary table; exits 1 if a correctness check failed, 0 otherwise
(also 0 with a SKIPPED line when no CUDA device is present).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

RESULTS: list[tuple[str, str, str]] = []  # (check, PASS/FAIL/INFO/SKIP, detail)


def record(check: str, status: str, detail: str) -> None:
    RESULTS.append((check, status, detail))
    print(f"[{status}] {check}: {detail}", flush=True)


def setup_paths() -> None:
    """Make neuroplug and neuroplug_torch importable and the torch backend registered."""
    try:
        import neuroplug  # noqa: F401
    except ImportError:
        sys.path.insert(0, ROOT)
    try:
        import neuroplug_torch  # noqa: F401
    except ImportError:
        sys.path.insert(0, HERE)
    from neuroplug.plugins import get_plugin_manager

    if "torch" not in get_plugin_manager().backends:
        import neuroplug_torch.plugin

        get_plugin_manager().register(neuroplug_torch.plugin, name="torch")


def child_env() -> dict[str, str]:
    import neuroplug_torch

    import neuroplug

    env = dict(os.environ)
    paths = [
        os.path.dirname(os.path.dirname(neuroplug.__file__)),
        os.path.dirname(os.path.dirname(neuroplug_torch.__file__)),
    ]
    env["PYTHONPATH"] = os.pathsep.join(
        paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


# ---------------------------------------------------------------------------
# 1. ops against the reference
# ---------------------------------------------------------------------------
def check_ops(device: str) -> None:
    import torch
    from neuroplug_torch import TorchOps

    from neuroplug.ops import Ops

    ref, ops = Ops(), TorchOps(device)
    # Exact float32 arithmetic for the comparison: TF32 (torch's default for cuDNN
    # convolutions on Ampere and newer) rounds inputs to 10-bit mantissas.
    saved_tf32 = (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
    )
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        _compare_ops(ref, ops)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (
            saved_tf32
        )


def _compare_ops(ref, ops) -> None:
    import numpy as np

    failures: list[str] = []
    n_checks = 0

    def cmp(name, got, want, dtype, scale=1.0):
        nonlocal n_checks
        n_checks += 1
        got = [got] if not isinstance(got, (tuple, list)) else list(got)
        want = [want] if not isinstance(want, (tuple, list)) else list(want)
        tol = (1e-9 if dtype == np.float64 else 1e-4) * scale
        for g, w in zip(got, want):
            g = np.asarray(ops.to_numpy(g)) if not isinstance(g, float) else g
            if not np.allclose(g, w, rtol=tol, atol=tol):
                err = float(np.max(np.abs(np.asarray(g, dtype=np.float64) - w)))
                failures.append(f"{name}[{np.dtype(dtype).name}] max|diff|={err:.3g}")
                return

    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(0)
        r = lambda *s, rng=rng, dtype=dtype: rng.uniform(-1, 1, size=s).astype(dtype)  # noqa: E731
        t = ops.asarray
        a, b = r(33, 17), r(17, 9)
        cmp("gemm", ops.gemm(t(a), t(b)), ref.gemm(a, b), dtype)
        cmp(
            "gemm_tt",
            ops.gemm(t(b), t(a), trans1=True, trans2=True),
            ref.gemm(b, a, trans1=True, trans2=True),
            dtype,
        )
        bias = r(9)
        cmp("affine", ops.affine(t(a), t(b), t(bias)), ref.affine(a, b, bias), dtype)
        x = r(6, 11) * 5
        for op in ("sigmoid", "tanh", "relu", "softplus", "softmax", "log_softmax"):
            cmp(op, getattr(ops, op)(t(x)), getattr(ref, op)(x), dtype)
        for op in ("sigmoid", "tanh", "relu"):
            y, dy = getattr(ref, op)(x), r(6, 11)
            cmp(
                op + "_backward",
                getattr(ops, op + "_backward")(t(y), t(dy)),
                getattr(ref, op + "_backward")(y, dy),
                dtype,
            )
        labels = rng.integers(0, 11, 6)
        cmp(
            "softmax_cross_entropy",
            ops.softmax_cross_entropy(t(x), t(labels)),
            ref.softmax_cross_entropy(x, labels),
            dtype,
        )
        cmp(
            "squared_loss",
            ops.squared_loss(t(x), t(x * 0.5)),
            ref.squared_loss(x, x * 0.5),
            dtype,
        )
        p, g = r(20, 7), r(20, 7) * 0.01
        tp, tm, tv = t(p.copy()), ops.alloc(p.shape, dtype), ops.alloc(p.shape, dtype)
        rp, rm, rv = p.copy(), np.zeros_like(p), np.zeros_like(p)
        for step in (1, 2, 3):
            ops.adam_update(
                tp, t(g), tm, tv, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, t=step
            )
            ref.adam_update(
                rp, g, rm, rv, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, t=step
            )
        cmp("adam_update", tp, rp, dtype, scale=10)
        tp, tvel, rp, rvel = (
            t(p.copy()),
            ops.alloc(p.shape, dtype),
            p.copy(),
            np.zeros_like(p),
        )
        ops.sgd_update(tp, t(g), tvel, lr=0.1, momentum=0.9, nesterov=True)
        ref.sgd_update(rp, g, rvel, lr=0.1, momentum=0.9, nesterov=True)
        cmp("sgd_update", tp, rp, dtype)
        conv_cases = [
            ((4, 3, 12, 11), (5, 3, 3, 3), dict(padding=1)),
            ((4, 3, 12, 11), (6, 3, 3, 2), dict(stride=(2, 1), padding=(1, 0))),
            ((2, 4, 9, 9), (6, 2, 3, 3), dict(groups=2)),
            (
                (2, 3, 9, 9),
                (4, 3, 5, 5),
                dict(
                    connections=np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]])
                ),
            ),
            ((8, 1, 28, 28), (20, 1, 5, 5), {}),
            ((8, 20, 12, 12), (50, 20, 5, 5), {}),
        ]
        for xs, ws, kw in conv_cases:
            xx, ww, bb = r(*xs), r(*ws), r(ws[0])
            y = ref.conv2d(xx, ww, bb, **kw)
            cmp(
                f"conv2d{ws}", ops.conv2d(t(xx), t(ww), t(bb), **kw), y, dtype, scale=10
            )
            dy = r(*y.shape)
            cmp(
                f"conv2d_backward_input{ws}",
                ops.conv2d_backward_input(t(dy), t(ww), xs, **kw),
                ref.conv2d_backward_input(dy, ww, xs, **kw),
                dtype,
                scale=10,
            )
            cmp(
                f"conv2d_backward_weights{ws}",
                ops.conv2d_backward_weights(t(dy), t(xx), ws, **kw),
                ref.conv2d_backward_weights(dy, xx, ws, **kw),
                dtype,
                scale=30,
            )
        for xs, size, stride in (
            ((3, 4, 12, 12), 2, None),
            ((2, 3, 9, 7), 3, 2),
            ((2, 2, 7, 8), (2, 3), (1, 2)),
        ):
            xx = rng.integers(0, 5, xs).astype(
                dtype
            )  # ties: the first maximum must win
            y, am = ref.maxpool2d(xx, size, stride)
            ty, tam = ops.maxpool2d(t(xx), size, stride)
            cmp("maxpool2d", ty, y, dtype)
            n_checks += 1
            if not np.array_equal(ops.to_numpy(tam), am):
                failures.append(
                    f"maxpool2d argmax[{np.dtype(dtype).name}] differs from the reference"
                )
            dy = r(*y.shape)
            cmp(
                "maxpool2d_backward",
                ops.maxpool2d_backward(t(dy), tam, xs),
                ref.maxpool2d_backward(dy, am, xs),
                dtype,
            )
            ym = ref.meanpool2d(xx, size, stride)
            cmp("meanpool2d", ops.meanpool2d(t(xx), size, stride), ym, dtype)
            dy = r(*ym.shape)
            cmp(
                "meanpool2d_backward",
                ops.meanpool2d_backward(t(dy), xs, size, stride),
                ref.meanpool2d_backward(dy, xs, size, stride),
                dtype,
            )
        v, W, bh, bv = (rng.random((10, 12)) < 0.5).astype(dtype), r(7, 12), r(7), r(12)
        for vis in ("bernoulli", "gaussian"):
            cmp(
                "rbm_free_energy",
                ops.rbm_free_energy(t(v), t(W), t(bh), t(bv), vis),
                ref.rbm_free_energy(v, W, bh, bv, vis),
                dtype,
            )
            cmp(
                "rbm_visible_means",
                ops.rbm_visible_means(t(v[:, :7]), t(W), t(bv), vis),
                ref.rbm_visible_means(v[:, :7], W, bv, vis),
                dtype,
            )
        cmp(
            "rbm_hidden_probs",
            ops.rbm_hidden_probs(t(v), t(W), t(bh)),
            ref.rbm_hidden_probs(v, W, bh),
            dtype,
        )
        pre = r(3, 4, 7, 9) * 4
        cmp(
            "crbm_pool_probs",
            ops.crbm_pool_probs(t(pre), 2),
            ref.crbm_pool_probs(pre, 2),
            dtype,
        )
        # Sampling ops: same seed twice gives the same draws on the device.
        s1 = ops.random_uniform(ops.make_rng(3), (1000,), dtype)
        s2 = ops.random_uniform(ops.make_rng(3), (1000,), dtype)
        n_checks += 1
        if not bool((s1 == s2).all()) or not 0.4 < float(s1.mean()) < 0.6:
            failures.append("random_uniform is not reproducible or not uniform")
    if failures:
        record(
            "ops vs NumPy reference",
            "FAIL",
            f"{len(failures)}/{n_checks} failed: " + "; ".join(failures[:8]),
        )
    else:
        record(
            "ops vs NumPy reference",
            "PASS",
            f"{n_checks} comparisons, float64 and float32, on {ops.device}",
        )


# ---------------------------------------------------------------------------
# 2. the plugin's test suite on the device
# ---------------------------------------------------------------------------
def run_pytest(device_type: str) -> None:
    try:
        import pytest  # noqa: F401
    except ImportError:
        record("pytest suite on the device", "SKIP", "pytest is not installed")
        return
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        os.path.join(HERE, "tests"),
        "-q",
        "-k",
        device_type,
        "-p",
        "no:cacheprovider",
        "--rootdir",
        ROOT,
        "--import-mode=importlib",
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=400
        )
    except subprocess.TimeoutExpired:
        record("pytest suite on the device", "FAIL", "timed out after 400 s")
        return
    tail = [line for line in proc.stdout.strip().splitlines() if line.strip()][-1:] or [
        "(no output)"
    ]
    if proc.returncode == 0:
        record(
            "pytest suite on the device",
            "PASS",
            f"{tail[0]} ({time.perf_counter() - t0:.0f} s)",
        )
    elif proc.returncode == 5:
        record(
            "pytest suite on the device",
            "SKIP",
            f"no test selected by -k {device_type}",
        )
    else:
        failed = [
            line
            for line in proc.stdout.splitlines()
            if line.startswith(("FAILED", "ERROR"))
        ]
        record(
            "pytest suite on the device", "FAIL", f"{tail[0]}; " + "; ".join(failed[:5])
        )
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")


# ---------------------------------------------------------------------------
# 3. LeNet speed, and 4. pickle -> predict without torch
# ---------------------------------------------------------------------------
def lenet(device: str, data: str | None, epochs: int) -> None:
    from neuroplug_torch.benchmark import (
        load_mnist_split,
        time_neuroplug,
        time_plain_torch,
    )

    X, y, X_test, y_test, source = load_mnist_split(data)
    print(f"LeNet data: {source}", flush=True)
    kw = dict(epochs=epochs, seed=0)
    plain = time_plain_torch(X, y, X_test, y_test, device=device, **kw)
    resident = time_plain_torch(
        X, y, X_test, y_test, device=device, resident=True, **kw
    )
    ours = time_neuroplug(X, y, X_test, y_test, backend=f"torch:{device}", **kw)
    ratio = ours["epoch_s"] / plain["epoch_s"]
    for name, r in (
        ("plain PyTorch, per-batch transfer", plain),
        ("plain PyTorch, data resident on the device", resident),
        (f'neuroplug backend="torch:{device}"', ours),
    ):
        record(
            f"LeNet {name}",
            "INFO",
            f"{r['epoch_s'] * 1000:.1f} ms/epoch (epochs: "
            + ", ".join(f"{t * 1000:.0f}" for t in r["epoch_times"])
            + f" ms), test accuracy {r['accuracy']:.4f}",
        )
    record(
        "LeNet epoch-time ratio neuroplug / plain PyTorch",
        "INFO",
        f"{ratio:.3f} (target <= 1.2: {'met' if ratio <= 1.2 else 'MISSED'}); "
        f"vs plain PyTorch with resident data: {ours['epoch_s'] / resident['epoch_s']:.3f}",
    )
    if source.startswith("MNIST") and ours["accuracy"] < 0.9:
        record(
            "LeNet accuracy",
            "FAIL",
            f"neuroplug reached only {ours['accuracy']:.4f} on MNIST",
        )
    check_pickle_without_torch(ours["estimator"], X_test)


def check_pickle_without_torch(clf, X_test) -> None:
    """Pickle the model trained on the device; predict in a process without torch; compare.

    The child's predictions (default backend) must equal the NumPy reference's
    from the same weights; agreement with the device's own predictions is
    reported for information (TF32 convolutions on the GPU round differently).
    """
    import numpy as np

    from neuroplug.backends import DEFAULT_BACKEND

    device_backend = clf.get_params()["backend"]
    proba_device, pred_device = clf.predict_proba(X_test), clf.predict(X_test)
    clf.set_params(backend="numpy")
    proba_ref = clf.predict_proba(X_test)
    clf.set_params(backend=device_backend)
    backend = DEFAULT_BACKEND
    try:  # the compiled core may be missing when run from an unbuilt source tree
        from neuroplug.backends import get_ops

        get_ops(backend)
        from neuroplug_core import conv  # noqa: F401
    except Exception:  # noqa: BLE001
        backend = "numpy"
    with tempfile.TemporaryDirectory() as tmp:
        model, xfile, out = (
            os.path.join(tmp, n) for n in ("model.pkl", "X.npy", "out.npz")
        )
        with open(model, "wb") as fh:
            pickle.dump(clf, fh)
        np.save(xfile, X_test)
        code = textwrap.dedent(f"""
            import sys
            class _BlockTorch:
                def find_spec(self, name, path=None, target=None):
                    if name == "torch" or name.startswith("torch."):
                        raise ImportError("torch is blocked for this check")
            sys.meta_path.insert(0, _BlockTorch())
            import pickle, numpy as np
            with open({model!r}, "rb") as fh:
                clf = pickle.load(fh)
            clf.set_params(backend={backend!r})
            X = np.load({xfile!r})
            np.savez({out!r}, proba=clf.predict_proba(X), pred=clf.predict(X))
            assert "torch" not in sys.modules
        """)
        env = dict(child_env(), NEUROPLUG_DISABLE_PLUGINS="torch")
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if proc.returncode != 0:
            record(
                "pickle -> predict without torch",
                "FAIL",
                (proc.stderr.strip().splitlines() or ["?"])[-1],
            )
            print(proc.stderr[-3000:])
            return
        got = np.load(out)
    diff_ref = float(np.max(np.abs(got["proba"] - proba_ref)))
    status = "PASS" if diff_ref < 1e-4 else "FAIL"
    record(
        "pickle -> predict without torch",
        status,
        f'backend="{backend}" in a process without torch: max |proba diff| vs the NumPy reference {diff_ref:.2e}',
    )
    agree = float((got["pred"] == pred_device).mean())
    record(
        "device vs CPU predictions",
        "INFO",
        f"{agree:.4f} of predictions agree, max |proba diff| {float(np.max(np.abs(got['proba'] - proba_device))):.2e}",
    )


# ---------------------------------------------------------------------------
# 5. reproducibility and the RBM-family loops
# ---------------------------------------------------------------------------
def reproducibility_and_loops(device: str) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    from neuroplug.estimators import CNNClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    weights = []
    for _ in range(2):
        clf = CNNClassifier(
            ("conv:8x3x3,padding=same", "relu", "maxpool:2", "dense:32", "relu"),
            input_shape=(1, 8, 8),
            max_iter=2,
            batch_size=64,
            random_state=7,
            backend=f"torch:{device}",
        ).fit(X[:1000], y[:1000])
        weights.append(
            np.concatenate(
                [w.ravel() for layer in clf.network_weights_ for w in layer.values()]
            )
        )
    diff = float(np.max(np.abs(weights[0] - weights[1])))
    record(
        "same random_state twice on the device",
        "INFO",
        "bit-identical weights"
        if diff == 0
        else f"max |weight diff| {diff:.2e} (cuDNN chose non-deterministic kernels; see the plugin README)",
    )

    from neuroplug.estimators import SigmoidBeliefNet

    try:
        from neuroplug.estimators import ConvRBM
    except ImportError:
        ConvRBM = None
    Xb = (X[:400] > 0.5).astype(np.float32)
    try:
        sbn = SigmoidBeliefNet(
            (32,), max_iter=2, random_state=0, backend=f"torch:{device}"
        ).fit(Xb)
        score = float(np.mean(sbn.score_samples(Xb[:50])))
        ok = np.isfinite(score)
        record(
            "SigmoidBeliefNet wake-sleep on the device",
            "PASS" if ok else "FAIL",
            f"mean log p(x) {score:.2f}",
        )
    except Exception as exc:  # noqa: BLE001
        record(
            "SigmoidBeliefNet wake-sleep on the device",
            "FAIL",
            f"{type(exc).__name__}: {exc}",
        )
        traceback.print_exc()
    try:
        from neuroplug.estimators import RBM

        rbm = RBM(32, max_iter=2, random_state=0, backend=f"torch:{device}").fit(
            X[:500]
        )
        ll = float(np.mean(rbm.score_samples(X[:50])))
        ok = np.isfinite(ll) and np.isfinite(rbm.components_).all()
        record(
            "RBM CD-k and AIS on the device",
            "PASS" if ok else "FAIL",
            f"mean log p(x) {ll:.2f}",
        )
    except ImportError:
        record(
            "RBM CD-k and AIS on the device",
            "SKIP",
            "no RBM estimator in this neuroplug",
        )
    except Exception as exc:  # noqa: BLE001
        record("RBM CD-k and AIS on the device", "FAIL", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    if ConvRBM is not None:
        try:
            rbm = ConvRBM(
                4, kernel_size=3, max_iter=2, random_state=0, backend=f"torch:{device}"
            )
            feats = rbm.fit(X[:400].reshape(-1, 1, 8, 8)).transform(
                X[:20].reshape(-1, 1, 8, 8)
            )
            ok = np.isfinite(feats).all()
            record(
                "ConvRBM CD-k on the device",
                "PASS" if ok else "FAIL",
                f"features {feats.shape}",
            )
        except Exception as exc:  # noqa: BLE001
            record("ConvRBM CD-k on the device", "FAIL", f"{type(exc).__name__}: {exc}")
            traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="GPU check of neuroplug's torch backend"
    )
    parser.add_argument(
        "--data", default=None, help="directory with the MNIST t10k IDX files"
    )
    parser.add_argument(
        "--epochs", type=int, default=5, help="timed LeNet epochs (after one warm-up)"
    )
    parser.add_argument(
        "--device", default="cuda", help="torch device (default cuda; 'cpu' to dry-run)"
    )
    parser.add_argument(
        "--skip-pytest", action="store_true", help="skip the plugin's pytest suite"
    )
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"SKIPPED: no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda})"
        )
        return 0
    setup_paths()
    from neuroplug_torch import TorchOps

    device = TorchOps(args.device).device
    name = (
        torch.cuda.get_device_name(torch.device(device))
        if device.startswith("cuda")
        else "CPU"
    )
    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
        f"device {device}: {name}",
        flush=True,
    )
    steps = [
        ("ops", lambda: check_ops(device)),
        (
            "pytest",
            (lambda: None)
            if args.skip_pytest
            else (lambda: run_pytest(torch.device(device).type)),
        ),
        ("lenet", lambda: lenet(device, args.data, args.epochs)),
        ("loops", lambda: reproducibility_and_loops(device)),
    ]
    for step, fn in steps:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - report and go on to the other checks
            record(f"step {step}", "FAIL", f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
    width = max(len(c) for c, _, _ in RESULTS)
    print(
        "\n"
        + "=" * 100
        + f"\nSUMMARY ({device}: {name}; {time.perf_counter() - t_start:.0f} s)"
    )
    for check, status, detail in RESULTS:
        print(f"{status:4s}  {check:{width}s}  {detail}")
    failed = [c for c, s, _ in RESULTS if s == "FAIL"]
    print(
        f"RESULT: {'FAIL (' + ', '.join(failed) + ')' if failed else 'all correctness checks passed'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
