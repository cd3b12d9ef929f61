"""Fitting in two Python threads at once gives what fitting one after the other gives.

The kernels release the GIL, keep their scratch memory per Python thread
and hold BLAS at one thread through a shared, reference-counted guard, and
no result depends on the number of OpenMP threads: two estimators trained
concurrently must end bit-identical to the same two trained sequentially,
and two threads sharing one backend instance must not corrupt each other.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.datasets import load_digits

import neuroplug.estimators as estimators
from neuroplug.backends import get_ops
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

# Two differently seeded (and shaped) instances of each estimator; big enough that the fits overlap.
CASES = {
    "CNNClassifier": lambda seed: CNNClassifier(
        ("conv:6x3x3", "relu", "maxpool:2", "dense:16", "relu"),
        input_shape=(1, 8, 8),
        max_iter=3,
        batch_size=32,
        random_state=seed,
    ),
    "CNNRegressor": lambda seed: CNNRegressor(
        ("conv:4x3x3", "tanh", "dense:8"),
        input_shape=(1, 8, 8),
        max_iter=3,
        batch_size=32,
        random_state=seed,
    ),
    "DBNClassifier": lambda seed: DBNClassifier(
        (24,), pretrain_max_iter=2, max_iter=3, random_state=seed
    ),
    "RBM": lambda seed: RBM(24 + seed, max_iter=4, batch_size=10, random_state=seed),
    "DBN": lambda seed: DBN((20, 10), max_iter=2, random_state=seed),
    "SigmoidBeliefNet": lambda seed: SigmoidBeliefNet(
        (16, 8), max_iter=3, n_importance_samples=2, random_state=seed
    ),
    "ConvRBM": lambda seed: ConvRBM(
        4,
        kernel_size=3,
        pool_size=2,
        max_iter=3,
        input_shape=(1, 8, 8),
        random_state=seed,
    ),
    "ConvDBN": lambda seed: ConvDBN(
        (4, 4),
        kernel_size=(3, 2),
        pool_size=(2, 1),
        max_iter=2,
        input_shape=(1, 8, 8),
        random_state=seed,
    ),
}
SUPERVISED = {"CNNClassifier", "DBNClassifier", "CNNRegressor"}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16.0).astype(np.float64), y[:400]


def _fit(est, name, digits):
    X, y = digits
    if name == "CNNRegressor":
        return est.fit(X, y.astype(float))
    return est.fit(X, y) if name in SUPERVISED else est.fit(X)


def _state(est, X):
    """Everything that must match: outputs and the fitted arrays."""
    out = {}
    for method in ("predict_proba", "predict", "transform"):
        if hasattr(est, method):
            out[method] = np.asarray(getattr(est, method)(X))
    for key, value in vars(est).items():
        if (
            key.endswith("_")
            and isinstance(value, np.ndarray)
            and value.dtype.kind == "f"
        ):
            out[key] = value
    return out


def _run_concurrently(jobs):
    """Run the callables in threads started together; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def target(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [
        threading.Thread(target=target, args=(i, job)) for i, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_every_public_estimator_is_covered():
    assert set(CASES) == set(estimators.__all__)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_fits_in_threads_equal_two_sequential_fits(name, digits):
    X = digits[0]
    sequential = [_state(_fit(CASES[name](seed), name, digits), X) for seed in (0, 1)]
    concurrent = _run_concurrently(
        [lambda s=seed: _fit(CASES[name](s), name, digits) for seed in (0, 1)]
    )
    for seq, est in zip(sequential, concurrent):
        _assert_same(seq, _state(est, X))


def test_different_estimators_in_threads(digits):
    X = digits[0]
    names = ["CNNClassifier", "RBM", "SigmoidBeliefNet", "ConvRBM"]
    sequential = [_state(_fit(CASES[n](0), n, digits), X) for n in names]
    concurrent = _run_concurrently(
        [lambda n=n: _fit(CASES[n](0), n, digits) for n in names]
    )
    for seq, est in zip(sequential, concurrent):
        _assert_same(seq, _state(est, X))


def test_predicting_from_one_fitted_estimator_in_threads(digits):
    """A fitted estimator is shared read-only by prediction threads (its network is built once per backend)."""
    X, y = digits
    clf = _fit(CASES["CNNClassifier"](0), "CNNClassifier", digits)
    expected = clf.predict_proba(X)
    for probs in _run_concurrently([lambda: clf.predict_proba(X) for _ in range(4)]):
        np.testing.assert_array_equal(probs, expected)


def test_one_backend_instance_shared_by_threads():
    """Per-thread workspaces: the same CythonOps object used from four threads at once."""
    ops = get_ops("cpu")
    rng = np.random.default_rng(0)
    problems = [
        (
            rng.standard_normal((8, c, 14, 14)).astype(np.float32),
            rng.standard_normal((f, c, k, k)).astype(np.float32),
        )
        for c, f, k in ((1, 6, 5), (3, 4, 3), (2, 8, 1), (4, 2, 7))
    ]
    expected = [
        (ops.conv2d(x, w, padding=1), ops.maxpool2d(x, 2)[0]) for x, w in problems
    ]

    def job(i):
        x, w = problems[i]
        return [
            (ops.conv2d(x, w, padding=1), ops.maxpool2d(x, 2)[0]) for _ in range(20)
        ]

    for i, results in enumerate(
        _run_concurrently([lambda i=i: job(i) for i in range(len(problems))])
    ):
        for conv, pool in results:
            np.testing.assert_array_equal(conv, expected[i][0])
            np.testing.assert_array_equal(pool, expected[i][1])


def test_kernels_release_the_gil():
    """While one thread is inside a long kernel call, another Python thread keeps running.

    A spinning thread counts while the main thread runs one long convolution.
    Were the GIL held through the call, the spinner could only run in the
    wrapper's Python code around it (at most a switch interval, 5 ms): a few
    percent of the call.  With the GIL released it spins for most of it.
    """
    import time

    ops = get_ops("cpu", n_threads=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 16, 5, 5)).astype(np.float32)
    ops.conv2d(x, w)  # warm up: workspace allocation
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        shares = []
        for _ in range(3):
            c0, t0 = counter[0], time.perf_counter()
            time.sleep(0.05)  # the spinner's pace when this thread is idle
            rate = (counter[0] - c0) / (time.perf_counter() - t0)
            c0, t0 = counter[0], time.perf_counter()
            ops.conv2d(x, w)  # one call: about 5 GFLOP on one thread
            shares.append((counter[0] - c0) / (rate * (time.perf_counter() - t0)))
    finally:
        stop.set()
        spinner.join()
    assert max(shares) > 0.3, shares
