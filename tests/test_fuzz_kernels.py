"""Hypothesis fuzzing of every compiled entry point through its Python wrapper (CythonOps).

For each op, Hypothesis draws shapes, dtypes (float32 / float64), memory
layouts (C order, Fortran order, strided and reversed views) and values, and
checks one property:

* a valid draw gives what the NumPy reference :class:`neuroplug.ops.Ops`
  gives (the same draws for the random ops, which consume the generator in
  the reference's order; float32 random ops are checked for their
  invariants, since one rounding difference can flip a draw);
* a draw the reference refuses with ValueError / TypeError is refused by the
  compiled backend too;
* a spoiled draw (integer, float16 or complex arrays, lists, empty or
  wrongly-dimensioned arrays, NaN or infinity, mismatched shapes, bad
  sizes, strides, counts) raises ValueError or TypeError: never a crash,
  an out-of-bounds access or another exception.

The number of examples per op is modest for the test suite;
``NEUROPLUG_FUZZ_EXAMPLES`` raises it and ``NEUROPLUG_FUZZ_RANDOM=1`` drops
the fixed seed (see benchmarks/fuzz_long.py).  Running the suite on a build
with ``NEUROPLUG_DEBUG=1`` (Cython bounds checks on) turns any out-of-range
index in a kernel into an IndexError here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuroplug.ops import Ops

cython_ops = pytest.importorskip("neuroplug.backends.cython_ops")
try:
    CY = cython_ops.CythonOps()
except ImportError as exc:  # pragma: no cover - only without a build
    pytest.skip(f"neuroplug_core is not built: {exc}", allow_module_level=True)
REF = Ops()

EXAMPLES = int(os.environ.get("NEUROPLUG_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("NEUROPLUG_FUZZ_RANDOM", "0") in ("", "0"),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    database=None,
)
DTYPES = (np.float32, np.float64)
ERRORS = (ValueError, TypeError)


# ---------------------------------------------------------------------------------------- helpers
def _array(data, shape, dtype, lo=-2.0, hi=2.0):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    a = data.draw(
        hnp.arrays(dtype, tuple(shape), elements=st.floats(lo, hi, width=width))
    )
    return _relayout(data, a)


def _binary(data, shape, dtype):
    return _relayout(data, data.draw(hnp.arrays(np.bool_, tuple(shape))).astype(dtype))


def _relayout(data, a):
    """The same values in another memory layout: C, Fortran, a strided view or a reversed view."""
    kind = data.draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "reversed" and a.ndim:
        axis = data.draw(st.integers(0, a.ndim - 1))
        return np.flip(np.flip(a, axis).copy(), axis)  # a negative-stride view
    return np.ascontiguousarray(a)


CERTAIN_SPOILS = (
    "int",
    "float16",
    "complex",
    "list",
    "empty",
    "ndim+",
    "ndim-",
    "nan",
    "inf",
)


def _spoil(data, a, kinds=CERTAIN_SPOILS):
    """``a`` made invalid in one way the wrapper must refuse."""
    kind = data.draw(st.sampled_from(kinds))
    if kind == "int":
        return a.astype(np.int32)
    if kind == "float16":
        return a.astype(np.float16)
    if kind == "complex":
        return a.astype(np.complex64)
    if kind == "list":
        return a.tolist()
    if kind == "empty":
        axis = data.draw(st.integers(0, a.ndim - 1))
        return np.take(a, [], axis=axis)
    if kind == "ndim+":
        return a[..., None]
    if kind == "ndim-":
        return a.reshape(-1) if a.ndim > 1 else a[0]
    bad = np.array(a, copy=True)
    bad.flat[data.draw(st.integers(0, bad.size - 1))] = (
        np.nan if kind == "nan" else -np.inf
    )
    return bad


BAD_PAIRS = (0, -1, (1, 0), (2, -3), (1, 2, 3), 1.5, "2", None, True)
BAD_PADDINGS = (
    -1,
    (2, -3),
    (1, 2, 3),
    1.5,
    "2",
    "full",
    None,
    True,
)  # 0 and (1, 0) are valid paddings
BAD_COUNTS = (0, -2, 1.5, "3", None, True)


def _close(actual, expected, dtype):
    tol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-9
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def _check(call_cy, call_ref, compare, spoiled):
    """The property: spoiled -> clear error; else agree with the reference, refusal included."""
    if spoiled:
        with pytest.raises(ERRORS):
            call_cy()
        return
    try:
        expected = call_ref()
    except ERRORS:
        with pytest.raises(ERRORS):
            call_cy()
        return
    compare(call_cy(), expected)


def _maybe(data, spoil_targets):
    """Pick nothing (valid draw, most of the time) or one argument to spoil."""
    return data.draw(
        st.one_of(st.just(None), st.just(None), st.sampled_from(spoil_targets))
    )


# ---------------------------------------------------------------------------------- convolution
@st.composite
def conv_problem(draw):
    groups = draw(st.integers(1, 2))
    cg, fg = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 7))
    w = draw(st.integers(max(1, kw - 2 * pw), 7))
    return {
        "n": draw(st.integers(1, 3)),
        "c": groups * cg,
        "cg": cg,
        "f": groups * fg,
        "h": h,
        "w": w,
        "kh": kh,
        "kw": kw,
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (ph, pw),
        "groups": groups,
        "dtype": draw(st.sampled_from(DTYPES)),
        "bias": draw(st.booleans()),
        "connections": draw(st.booleans()),
    }


def _conv_args(data, p):
    dt = p["dtype"]
    x = _array(data, (p["n"], p["c"], p["h"], p["w"]), dt)
    w = _array(data, (p["f"], p["cg"], p["kh"], p["kw"]), dt)
    b = _array(data, (p["f"],), dt) if p["bias"] else None
    conn = None
    if p["connections"]:
        conn = data.draw(hnp.arrays(np.bool_, (p["f"], p["cg"])))
        conn[:, 0] |= ~conn.any(axis=1)  # every output channel keeps one input
    kwargs = {
        "stride": p["stride"],
        "padding": p["padding"],
        "groups": p["groups"],
        "connections": conn,
    }
    return x, w, b, kwargs


def _spoil_kwargs(data, kwargs, target):
    kwargs = dict(kwargs)
    if target in ("stride", "padding"):
        kwargs[target] = data.draw(
            st.sampled_from(BAD_PAIRS if target == "stride" else BAD_PADDINGS)
        )
    elif target == "groups":
        kwargs["groups"] = data.draw(st.sampled_from([0, -1, 1.5, "1", None, 7]))
        if kwargs["groups"] == 7:  # channels not divisible by 7
            kwargs["connections"] = None
    elif target == "connections":
        conn = kwargs["connections"]
        kwargs["connections"] = (
            np.zeros((1, 1, 1)) if conn is None else np.full(conn.shape, 2)
        )
    return kwargs


@FUZZ
@given(st.data(), conv_problem())
def test_conv2d(data, p):
    x, w, b, kwargs = _conv_args(data, p)
    target = _maybe(
        data,
        ["x", "w", "b", "stride", "padding", "groups", "connections", "w_channels"],
    )
    if target == "x":
        x = _spoil(data, x)
    elif target == "w":
        w = _spoil(data, w)
    elif target == "b":
        base = b if b is not None else np.zeros(p["f"], p["dtype"])
        b = (
            _spoil(data, base)
            if data.draw(st.booleans())
            else np.zeros(p["f"] + 1, p["dtype"])
        )
    elif target == "w_channels":
        w = np.zeros((p["f"], p["cg"] + 1, p["kh"], p["kw"]), p["dtype"])
    elif target is not None:
        kwargs = _spoil_kwargs(data, kwargs, target)
    _check(
        lambda: CY.conv2d(x, w, b, **kwargs),
        lambda: REF.conv2d(x, w, b, **kwargs),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), conv_problem())
def test_conv2d_backward_input(data, p):
    x, w, _, kwargs = _conv_args(data, p)
    try:
        oh, ow = REF.conv2d(x, w, **kwargs).shape[2:]
    except ERRORS:
        return  # not a valid convolution: test_conv2d covers the refusal
    dy = _array(data, (p["n"], p["f"], oh, ow), p["dtype"])
    x_shape = tuple(x.shape)
    target = _maybe(data, ["dy", "w", "x_shape", "dy_shape", "stride", "groups"])
    if target == "dy":
        dy = _spoil(data, dy)
    elif target == "w":
        w = _spoil(data, w)
    elif target == "x_shape":
        x_shape = data.draw(
            st.sampled_from(
                [
                    (0, *x_shape[1:]),
                    x_shape[:3],
                    (*x_shape[:3], -1),
                    (1.5, *x_shape[1:]),
                    None,
                    "shape",
                ]
            )
        )
    elif target == "dy_shape":
        dy = np.zeros((p["n"], p["f"], oh + 1, ow), p["dtype"])
    elif target is not None:
        kwargs = _spoil_kwargs(data, kwargs, target)
    _check(
        lambda: CY.conv2d_backward_input(dy, w, x_shape, **kwargs),
        lambda: REF.conv2d_backward_input(dy, w, x_shape, **kwargs),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), conv_problem())
def test_conv2d_backward_weights(data, p):
    x, w, _, kwargs = _conv_args(data, p)
    try:
        oh, ow = REF.conv2d(x, w, **kwargs).shape[2:]
    except ERRORS:
        return
    dy = _array(data, (p["n"], p["f"], oh, ow), p["dtype"])
    w_shape = tuple(w.shape)
    target = _maybe(data, ["dy", "x", "w_shape", "dy_shape", "padding"])
    if target == "dy":
        dy = _spoil(data, dy)
    elif target == "x":
        x = _spoil(data, x)
    elif target == "w_shape":
        w_shape = data.draw(
            st.sampled_from(
                [
                    (0, *w_shape[1:]),
                    w_shape[:3],
                    (w_shape[0], w_shape[1] + 1, *w_shape[2:]),
                    (*w_shape[:3], 1.0),
                    "w",
                ]
            )
        )
    elif target == "dy_shape":
        dy = np.zeros((p["n"] + 1, p["f"], oh, ow), p["dtype"])
    elif target is not None:
        kwargs = _spoil_kwargs(data, kwargs, target)

    def compare(actual, expected):
        _close(actual[0], expected[0], p["dtype"])
        _close(actual[1], expected[1], p["dtype"])

    _check(
        lambda: CY.conv2d_backward_weights(dy, x, w_shape, **kwargs),
        lambda: REF.conv2d_backward_weights(dy, x, w_shape, **kwargs),
        compare,
        spoiled=target is not None,
    )


# -------------------------------------------------------------------------------------- pooling
@st.composite
def pool_problem(draw):
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return {
        "shape": (
            draw(st.integers(1, 3)),
            draw(st.integers(1, 3)),
            draw(st.integers(size[0], 8)),
            draw(st.integers(size[1], 8)),
        ),
        "size": size,
        "stride": stride,
        "dtype": draw(st.sampled_from(DTYPES)),
        # Few distinct values, so ties (first maximum wins) are common.
        "levels": draw(st.sampled_from([None, 2, 3])),
    }


def _pool_input(data, p):
    if p["levels"]:
        return _relayout(
            data,
            data.draw(
                hnp.arrays(
                    np.int8, p["shape"], elements=st.integers(0, p["levels"] - 1)
                )
            ).astype(p["dtype"]),
        )
    return _array(data, p["shape"], p["dtype"])


@FUZZ
@given(st.data(), pool_problem())
def test_maxpool2d(data, p):
    x = _pool_input(data, p)
    size, stride = p["size"], p["stride"]
    target = _maybe(data, ["x", "size", "stride", "too_big"])
    if target == "x":
        x = _spoil(data, x)
    elif target == "size":
        size = data.draw(st.sampled_from(BAD_PAIRS))
    elif target == "stride":
        stride = data.draw(st.sampled_from([v for v in BAD_PAIRS if v is not None]))
    elif target == "too_big":
        size = (p["shape"][2] + 1, 1)

    def compare(actual, expected):
        _close(actual[0], expected[0], p["dtype"])
        np.testing.assert_array_equal(
            actual[1], expected[1]
        )  # same argmax, ties included

    _check(
        lambda: CY.maxpool2d(x, size, stride),
        lambda: REF.maxpool2d(x, size, stride),
        compare,
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), pool_problem())
def test_maxpool2d_backward(data, p):
    x = _pool_input(data, p)
    y, argmax = REF.maxpool2d(x, p["size"], p["stride"])
    dy = _array(data, y.shape, p["dtype"])
    x_shape = p["shape"]
    target = _maybe(
        data, ["dy", "argmax_range", "argmax_dtype", "argmax_shape", "x_shape"]
    )
    if target == "dy":
        dy = _spoil(data, dy)
    elif target == "argmax_range":
        argmax = argmax.copy()
        argmax.flat[data.draw(st.integers(0, argmax.size - 1))] = data.draw(
            st.sampled_from([-1, x_shape[2] * x_shape[3], 2**40, -(2**40)])
        )
    elif target == "argmax_dtype":
        argmax = data.draw(
            st.sampled_from(
                [argmax.astype(np.float64), argmax.tolist(), argmax.astype(complex)]
            )
        )
    elif target == "argmax_shape":
        argmax = (
            argmax[..., :0]
            if argmax.shape[3] > 1 and data.draw(st.booleans())
            else argmax[None]
        )
    elif target == "x_shape":
        x_shape = data.draw(
            st.sampled_from(
                [
                    (1, 1, 1),
                    (0, *x_shape[1:]),
                    (x_shape[0] + 1, *x_shape[1:]),
                    "x",
                    None,
                ]
            )
        )
    elif data.draw(st.booleans()):
        # Any in-range indices are valid (not only those maxpool2d returns): the gradient adds up.
        argmax = data.draw(
            hnp.arrays(
                np.int64,
                argmax.shape,
                elements=st.integers(0, x_shape[2] * x_shape[3] - 1),
            )
        )
        argmax = data.draw(
            st.sampled_from([argmax, argmax.astype(np.int32), argmax.astype(np.uint16)])
        )
    _check(
        lambda: CY.maxpool2d_backward(dy, argmax, x_shape),
        lambda: REF.maxpool2d_backward(dy, argmax, x_shape),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), pool_problem())
def test_meanpool2d(data, p):
    x = _pool_input(data, p)
    size, stride = p["size"], p["stride"]
    target = _maybe(data, ["x", "size", "stride", "too_big"])
    if target == "x":
        x = _spoil(data, x)
    elif target == "size":
        size = data.draw(st.sampled_from(BAD_PAIRS))
    elif target == "stride":
        stride = data.draw(st.sampled_from([v for v in BAD_PAIRS if v is not None]))
    elif target == "too_big":
        size = (1, p["shape"][3] + 1)
    _check(
        lambda: CY.meanpool2d(x, size, stride),
        lambda: REF.meanpool2d(x, size, stride),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), pool_problem())
def test_meanpool2d_backward(data, p):
    y = REF.meanpool2d(np.zeros(p["shape"], p["dtype"]), p["size"], p["stride"])
    dy = _array(data, y.shape, p["dtype"])
    x_shape, size, stride = p["shape"], p["size"], p["stride"]
    target = _maybe(data, ["dy", "dy_shape", "x_shape", "size", "stride"])
    if target == "dy":
        dy = _spoil(data, dy)
    elif target == "dy_shape":
        dy = np.zeros((y.shape[0], y.shape[1], y.shape[2] + 1, y.shape[3]), p["dtype"])
    elif target == "x_shape":
        x_shape = data.draw(
            st.sampled_from([(1, 1, 1), (0, *x_shape[1:]), (*x_shape[:3], 1.5), None])
        )
    elif target == "size":
        size = data.draw(st.sampled_from(BAD_PAIRS))
    elif target == "stride":
        stride = data.draw(st.sampled_from([v for v in BAD_PAIRS if v is not None]))
    _check(
        lambda: CY.meanpool2d_backward(dy, x_shape, size, stride),
        lambda: REF.meanpool2d_backward(dy, x_shape, size, stride),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), st.sampled_from(DTYPES), st.integers(1, 3000))
def test_all_finite(data, dtype, size):
    """The one-pass finiteness check behind check_finite, on any length (one thread or several)."""
    x = np.zeros(size, dtype=dtype)
    for _ in range(data.draw(st.integers(0, 3))):
        x[data.draw(st.integers(0, size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -0.0])
        )
    assert CY._all_finite(x) == bool(np.isfinite(x).all())


@FUZZ
@given(st.data(), st.sampled_from(DTYPES), st.integers(1, 70_000))
def test_relu(data, dtype, size):
    """The compiled ReLU and its gradient on any length (one thread or several), specials included."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size).astype(dtype)
    dy = rng.standard_normal(size).astype(dtype)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40]
    for arr in (x, dy):
        for _ in range(data.draw(st.integers(0, 4))):
            arr[data.draw(st.integers(0, size - 1))] = data.draw(
                st.sampled_from(specials)
            )
    ref = Ops(check_finite=False)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(CY.relu(x), ref.relu(x))
        np.testing.assert_array_equal(CY.relu_backward(x, dy), ref.relu_backward(x, dy))


# ------------------------------------------------------------------------------------------ RBM
@st.composite
def rbm_problem(draw):
    return {
        "n": draw(st.integers(1, 12)),
        "nh": draw(st.integers(1, 6)),
        "nv": draw(st.integers(1, 7)),
        "dtype": draw(st.sampled_from(DTYPES)),
        "visible": draw(st.sampled_from(["bernoulli", "gaussian"])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _rbm_params(data, p):
    dt = p["dtype"]
    return (
        _array(data, (p["nh"], p["nv"]), dt),
        _array(data, (p["nh"],), dt),
        _array(data, (p["nv"],), dt),
    )


def _rbm_spoil(data, args, names):
    """Spoil one of ``args`` (a dict); returns the spoiled name or None."""
    target = _maybe(data, names + ["visible"])
    if target == "visible":
        args["visible"] = data.draw(st.sampled_from(["poisson", "", None, 1]))
    elif target is not None:
        args[target] = _spoil(data, args[target])
    return target


@FUZZ
@given(st.data(), rbm_problem())
def test_rbm_hidden_probs_and_free_energy(data, p):
    W, bh, bv = _rbm_params(data, p)
    args = {
        "v": _array(data, (p["n"], p["nv"]), p["dtype"], 0.0, 1.0),
        "W": W,
        "bh": bh,
        "bv": bv,
        "visible": p["visible"],
    }
    target = _rbm_spoil(data, args, ["v", "W", "bh", "bv"])
    if target != "bv" and target != "visible":
        _check(
            lambda: CY.rbm_hidden_probs(args["v"], args["W"], args["bh"]),
            lambda: REF.rbm_hidden_probs(args["v"], args["W"], args["bh"]),
            lambda a, e: _close(a, e, p["dtype"]),
            spoiled=target is not None,
        )
    _check(
        lambda: CY.rbm_free_energy(**args),
        lambda: REF.rbm_free_energy(**args),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), rbm_problem())
def test_rbm_visible_means(data, p):
    W, bh, bv = _rbm_params(data, p)
    args = {
        "h": _array(data, (p["n"], p["nh"]), p["dtype"], 0.0, 1.0),
        "W": W,
        "bv": bv,
        "visible": p["visible"],
    }
    target = _rbm_spoil(data, args, ["h", "W", "bv"])
    _check(
        lambda: CY.rbm_visible_means(**args),
        lambda: REF.rbm_visible_means(**args),
        lambda a, e: _close(a, e, p["dtype"]),
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), rbm_problem(), st.integers(0, 3))
def test_rbm_gibbs(data, p, steps):
    W, bh, bv = _rbm_params(data, p)
    v = _binary(data, (p["n"], p["nv"]), p["dtype"])
    args = {"v": v, "W": W, "bh": bh, "bv": bv, "visible": p["visible"], "steps": steps}
    target = _rbm_spoil(data, args, ["v", "W", "bh", "bv"])
    if target is None and data.draw(st.integers(0, 5)) == 0:
        args["steps"], target = (
            data.draw(st.sampled_from([-1, 1.5, "2", None])),
            "steps",
        )
    if target is not None:
        with pytest.raises(ERRORS):
            CY.rbm_gibbs(**args, rng=CY.make_rng(p["seed"]))
        return
    v_before = np.array(v, copy=True)
    out = CY.rbm_gibbs(**args, rng=CY.make_rng(p["seed"]))
    np.testing.assert_array_equal(
        v, v_before
    )  # the caller's array is never overwritten
    assert out.shape == v.shape and np.isfinite(out).all()
    if p["visible"] == "bernoulli" and steps:
        assert set(np.unique(out)) <= {0.0, 1.0}
    if p["dtype"] == np.float64:
        _close(out, REF.rbm_gibbs(**args, rng=REF.make_rng(p["seed"])), np.float64)


@FUZZ
@given(st.data(), rbm_problem(), st.integers(1, 2), st.integers(1, 5), st.booleans())
def test_cd_epoch(data, p, k, batch_size, persistent):
    dt = p["dtype"]
    W, bh, bv = (np.ascontiguousarray(a) for a in _rbm_params(data, p))
    bufs = {
        "W": W,
        "bh": bh,
        "bv": bv,
        "dW": np.zeros_like(W),
        "dbh": np.zeros_like(bh),
        "dbv": np.zeros_like(bv),
    }
    m = min(batch_size, p["n"])
    if persistent:
        bufs["chain"] = _binary(data, (m, p["nh"]), dt).copy()
    X = (
        _array(data, (p["n"], p["nv"]), dt, 0.0, 1.0)
        if p["visible"] == "bernoulli"
        else _array(data, (p["n"], p["nv"]), dt)
    )
    rates = {
        "k": k,
        "learning_rate": 0.1,
        "momentum": 0.5,
        "weight_decay": 1e-3,
        "batch_size": batch_size,
        "visible": p["visible"],
        "sample_visible": p["visible"] == "bernoulli" and data.draw(st.booleans()),
    }
    target = _maybe(
        data,
        [
            "X",
            "W",
            "bh",
            "dW",
            "layout",
            "rate",
            "count",
            "chain_shape",
            "sample_visible",
        ],
    )
    if target == "X":
        X = _spoil(data, X)
    elif target in ("W", "bh"):
        bufs[target] = _spoil(
            data, bufs[target], ("int", "float16", "list", "empty", "ndim+", "nan")
        )
    elif target == "dW":
        bufs["dW"] = np.zeros((p["nh"] + 1, p["nv"]), dt)
    elif target == "layout":
        # In-place buffers must be writable C-contiguous arrays of W's dtype: a copy would lose the update.
        name = data.draw(st.sampled_from(sorted(bufs)))
        kind = data.draw(st.sampled_from(["F", "read-only", "dtype"]))
        a = bufs[name]
        if kind == "F" and a.ndim == 2 and min(a.shape) > 1:
            bufs[name] = np.asfortranarray(a)
        elif kind in (
            "F",
            "dtype",
        ):  # (a 1-row or 1-column array is C- and F-contiguous at once)
            bufs[name] = a.astype(np.float32 if dt == np.float64 else np.float64)
        else:
            a = a.copy()
            a.flags.writeable = False
            bufs[name] = a
    elif target == "rate":
        rates[
            data.draw(st.sampled_from(["learning_rate", "momentum", "weight_decay"]))
        ] = data.draw(st.sampled_from([-0.1, np.nan, np.inf, "0.1", None]))
    elif target == "count":
        rates[data.draw(st.sampled_from(["k", "batch_size"]))] = data.draw(
            st.sampled_from(BAD_COUNTS)
        )
    elif target == "chain_shape":
        bufs["chain"] = np.zeros((m, p["nh"] + 1), dt)
    elif target == "sample_visible":
        # Gaussian units cannot be sampled in the chain; neither is anything but a bool accepted.
        rates["sample_visible"] = (
            True
            if p["visible"] == "gaussian"
            else data.draw(st.sampled_from([1, "yes", None]))
        )
    ref_bufs = {key: np.array(v, copy=True) for key, v in bufs.items()}
    if target is not None:
        with pytest.raises(ERRORS):
            CY.cd_epoch(X, **bufs, **rates, rng=CY.make_rng(p["seed"]))
        return
    err = CY.cd_epoch(X, **bufs, **rates, rng=CY.make_rng(p["seed"]))
    assert np.isfinite(err) and err >= 0
    for key in bufs:
        assert np.isfinite(bufs[key]).all(), key
    if dt == np.float64:
        ref_err = REF.cd_epoch(X, **ref_bufs, **rates, rng=REF.make_rng(p["seed"]))
        _close(err, ref_err, dt)
        for key in bufs:
            _close(bufs[key], ref_bufs[key], dt)


@FUZZ
@given(st.data(), rbm_problem(), st.integers(1, 6), st.integers(2, 5))
def test_rbm_ais_log_weights(data, p, n_runs, n_betas):
    W, bh, bv = _rbm_params(data, p)
    base = _array(data, (p["nv"],), p["dtype"])
    betas = np.concatenate(
        [
            [0.0],
            np.sort(
                data.draw(
                    hnp.arrays(
                        np.float64,
                        n_betas - 2,
                        elements=st.floats(0.01, 0.99),
                        unique=True,
                    )
                )
            ),
            [1.0],
        ]
    )
    args = {
        "W": W,
        "bh": bh,
        "bv": bv,
        "base_bias": base,
        "betas": betas,
        "n_runs": n_runs,
        "visible": p["visible"],
    }
    target = _maybe(data, ["W", "base_bias", "betas", "n_runs", "visible"])
    if target in ("W", "base_bias"):
        args[target] = _spoil(data, args[target])
    elif target == "betas":
        args["betas"] = data.draw(
            st.sampled_from(
                [
                    betas[::-1],
                    betas[1:],
                    betas[:1],
                    np.array([0.0, 0.5, 0.5, 1.0]),
                    np.array([0.0, 2.0]),
                    np.array([[0.0, 1.0]]),
                ]
            )
        )
    elif target == "n_runs":
        args["n_runs"] = data.draw(st.sampled_from(BAD_COUNTS))
    elif target == "visible":
        args["visible"] = "poisson"
    if target is not None:
        with pytest.raises(ERRORS):
            CY.rbm_ais_log_weights(**args, rng=CY.make_rng(p["seed"]))
        return
    log_w = CY.rbm_ais_log_weights(**args, rng=CY.make_rng(p["seed"]))
    assert (
        log_w.shape == (n_runs,)
        and log_w.dtype == np.float64
        and np.isfinite(log_w).all()
    )
    if (
        p["dtype"] == np.float64 and p["visible"] == "bernoulli"
    ):  # Gaussian noise comes from another sampler
        _close(
            log_w,
            REF.rbm_ais_log_weights(**args, rng=REF.make_rng(p["seed"])),
            np.float32,
        )


# ------------------------------------------------------------------------------------------ SBN
@st.composite
def sbn_problem(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    return {
        "sizes": sizes,
        "n": draw(st.integers(1, 8)),
        "dtype": draw(st.sampled_from(DTYPES)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _sbn_params(data, p, *, contiguous=False):
    s, dt = p["sizes"], p["dtype"]
    fix = np.ascontiguousarray if contiguous else (lambda a: a)
    Wg = [fix(_array(data, (s[l + 1], s[l]), dt)) for l in range(len(s) - 1)]
    bg = [fix(_array(data, (n,), dt)) for n in s]
    Wr = [fix(_array(data, (s[l], s[l + 1]), dt)) for l in range(len(s) - 1)]
    br = [fix(_array(data, (n,), dt)) for n in s[1:]]
    return Wg, bg, Wr, br


def _sbn_spoil(data, groups):
    """Spoil one array of one parameter list, or the list itself; returns True if spoiled."""
    target = _maybe(data, ["array", "list", "length"])
    if target is None:
        return False
    group = data.draw(st.sampled_from(groups))
    if target == "array":
        i = data.draw(st.integers(0, len(group) - 1))
        group[i] = _spoil(data, group[i])
    elif target == "list":
        # A list of lists is not a list of arrays; neither is an array.
        group[:] = [a.tolist() if isinstance(a, np.ndarray) else a for a in group]
    else:
        group.append(group[-1])
    return True


@FUZZ
@given(st.data(), sbn_problem(), st.integers(1, 4))
def test_sbn_sample(data, p, n_samples):
    Wg, bg, _, _ = _sbn_params(data, p)
    spoiled = _sbn_spoil(data, [Wg, bg])
    if not spoiled and data.draw(st.integers(0, 5)) == 0:
        n_samples, spoiled = data.draw(st.sampled_from(BAD_COUNTS)), True
    if spoiled:
        with pytest.raises(ERRORS):
            CY.sbn_sample(Wg, bg, n_samples, CY.make_rng(p["seed"]))
        return
    out = CY.sbn_sample(Wg, bg, n_samples, CY.make_rng(p["seed"]))
    assert [o.shape for o in out] == [(n_samples, s) for s in p["sizes"]]
    assert all(set(np.unique(o)) <= {0.0, 1.0} for o in out)
    if p["dtype"] == np.float64:
        for a, e in zip(
            out, REF.sbn_sample(Wg, bg, n_samples, REF.make_rng(p["seed"]))
        ):
            np.testing.assert_array_equal(a, e)


@FUZZ
@given(st.data(), sbn_problem(), st.integers(1, 4))
def test_sbn_log_importance_weights(data, p, n_samples):
    Wg, bg, Wr, br = _sbn_params(data, p)
    X = _binary(data, (p["n"], p["sizes"][0]), p["dtype"])
    spoiled = _sbn_spoil(data, [Wg, bg, Wr, br])
    if not spoiled and data.draw(st.integers(0, 5)) == 0:
        X, spoiled = _spoil(data, X), True
    if spoiled:
        with pytest.raises(ERRORS):
            CY.sbn_log_importance_weights(
                X, Wg, bg, Wr, br, n_samples=n_samples, rng=CY.make_rng(p["seed"])
            )
        return
    out = CY.sbn_log_importance_weights(
        X, Wg, bg, Wr, br, n_samples=n_samples, rng=CY.make_rng(p["seed"])
    )
    assert out.shape == (p["n"], n_samples) and np.isfinite(out).all()
    if p["dtype"] == np.float64:
        expected = REF.sbn_log_importance_weights(
            X, Wg, bg, Wr, br, n_samples=n_samples, rng=REF.make_rng(p["seed"])
        )
        _close(out, expected, np.float64)


@FUZZ
@given(st.data(), sbn_problem(), st.integers(1, 5), st.integers(1, 3))
def test_sbn_wake_sleep_epoch(data, p, batch_size, K):
    Wg, bg, Wr, br = _sbn_params(data, p, contiguous=True)
    X = _binary(data, (p["n"], p["sizes"][0]), p["dtype"])
    lr = 0.05
    spoiled = _sbn_spoil(data, [Wg, bg, Wr, br])
    if not spoiled:
        what = data.draw(
            st.sampled_from([None] * 6 + ["X", "lr", "batch", "K", "layout"])
        )
        spoiled = what is not None
        if what == "X":
            X = _spoil(data, X)
        elif what == "lr":
            lr = data.draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, "0.1", None]))
        elif what == "batch":
            batch_size = data.draw(st.sampled_from(BAD_COUNTS))
        elif what == "K":
            K = data.draw(st.sampled_from(BAD_COUNTS))
        elif what == "layout":
            # Updated in place: a read-only or non-contiguous parameter is refused, not silently copied.
            a = Wg[0].copy()
            if a.shape[0] > 1 and a.shape[1] > 1 and data.draw(st.booleans()):
                a = np.asfortranarray(a)
            else:
                a.flags.writeable = False
            Wg[0] = a
    ref = [[np.array(a, copy=True) for a in g] for g in (Wg, bg, Wr, br)]
    kwargs = {"learning_rate": lr, "batch_size": batch_size, "n_importance_samples": K}
    if spoiled:
        with pytest.raises(ERRORS):
            CY.sbn_wake_sleep_epoch(
                X, Wg, bg, Wr, br, **kwargs, rng=CY.make_rng(p["seed"])
            )
        return
    bound = CY.sbn_wake_sleep_epoch(
        X, Wg, bg, Wr, br, **kwargs, rng=CY.make_rng(p["seed"])
    )
    assert np.isfinite(bound)
    assert all(np.isfinite(a).all() for g in (Wg, bg, Wr, br) for a in g)
    if p["dtype"] == np.float64:
        ref_bound = REF.sbn_wake_sleep_epoch(
            X, *ref, **kwargs, rng=REF.make_rng(p["seed"])
        )
        _close(bound, ref_bound, np.float64)
        for got, want in zip((Wg, bg, Wr, br), ref):
            for a, e in zip(got, want):
                _close(a, e, np.float64)


# -------------------------------------------------------------------------------------- ConvRBM
@st.composite
def crbm_problem(draw):
    return {
        "n": draw(st.integers(1, 3)),
        "f": draw(st.integers(1, 3)),
        "h": draw(st.integers(1, 7)),
        "w": draw(st.integers(1, 7)),
        "pool": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "dtype": draw(st.sampled_from(DTYPES)),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "scale": draw(st.sampled_from([1.0, 30.0])),
    }  # large logits exercise the overflow guards


@FUZZ
@given(st.data(), crbm_problem())
def test_crbm_pool_probs(data, p):
    pre = _array(
        data, (p["n"], p["f"], p["h"], p["w"]), p["dtype"], -p["scale"], p["scale"]
    )
    pool = p["pool"]
    target = _maybe(data, ["pre", "pool"])
    if target == "pre":
        pre = _spoil(data, pre)
    elif target == "pool":
        pool = data.draw(st.sampled_from(BAD_PAIRS))

    def compare(actual, expected):
        _close(actual[0], expected[0], p["dtype"])
        _close(actual[1], expected[1], p["dtype"])
        assert (actual[1] <= 1 + 1e-6).all() and (actual[0] >= 0).all()

    _check(
        lambda: CY.crbm_pool_probs(pre, pool),
        lambda: REF.crbm_pool_probs(pre, pool),
        compare,
        spoiled=target is not None,
    )


@FUZZ
@given(st.data(), crbm_problem())
def test_crbm_sample_hidden(data, p):
    pre = _array(
        data, (p["n"], p["f"], p["h"], p["w"]), p["dtype"], -p["scale"], p["scale"]
    )
    h_probs = _relayout(data, REF.crbm_pool_probs(pre, p["pool"])[0])
    pool = p["pool"]
    target = _maybe(data, ["h_probs", "pool", "rng"])
    rng = CY.make_rng(p["seed"])
    if target == "h_probs":
        h_probs = _spoil(data, h_probs)
    elif target == "pool":
        pool = data.draw(st.sampled_from(BAD_PAIRS))
    elif target == "rng":
        rng = data.draw(st.sampled_from([None, 3, np.random.RandomState(0)]))
    if target is not None:
        with pytest.raises(ERRORS):
            CY.crbm_sample_hidden(h_probs, pool, rng)
        return
    out = CY.crbm_sample_hidden(h_probs, pool, rng)
    assert out.shape == h_probs.shape and set(np.unique(out)) <= {0.0, 1.0}
    blocks = REF._crbm_blocks(out, pool, 0.0)
    assert (blocks.sum(axis=-1) <= 1).all()  # at most one detection unit on per block
    if p["dtype"] == np.float64:
        np.testing.assert_array_equal(
            out, REF.crbm_sample_hidden(h_probs, pool, REF.make_rng(p["seed"]))
        )


@FUZZ
@given(
    st.data(),
    conv_problem(),
    st.sampled_from(["bernoulli", "gaussian"]),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_crbm_visible_means_and_free_energy(data, p, visible, pool):
    v, W, bh, kwargs = _conv_args(data, p)
    bh = bh if bh is not None else np.zeros(p["f"], p["dtype"])
    bv = _array(data, (p["c"],), p["dtype"])
    try:
        pre_shape = REF.conv2d(v, W, bh, **kwargs).shape
    except ERRORS:
        return
    h = _binary(data, pre_shape, p["dtype"])
    args = {"v": v, "W": W, "bh": bh, "bv": bv, "h": h}
    target = _maybe(data, ["v", "W", "bh", "bv", "h", "visible", "bv_len"])
    if target == "visible":
        visible = "poisson"
    elif target == "bv_len":
        args["bv"] = np.zeros(p["c"] + 1, p["dtype"])
    elif target is not None:
        args[target] = _spoil(data, args[target])
    v_shape = tuple(v.shape)
    if target not in ("v", "bh"):
        _check(
            lambda: CY.crbm_visible_means(
                args["h"], args["W"], args["bv"], v_shape, visible, **kwargs
            ),
            lambda: REF.crbm_visible_means(
                args["h"], args["W"], args["bv"], v_shape, visible, **kwargs
            ),
            lambda a, e: _close(a, e, p["dtype"]),
            spoiled=target is not None,
        )
    if target != "h":
        _check(
            lambda: CY.crbm_free_energy(
                args["v"],
                args["W"],
                args["bh"],
                args["bv"],
                pool_size=pool,
                visible=visible,
                **kwargs,
            ),
            lambda: REF.crbm_free_energy(
                args["v"],
                args["W"],
                args["bh"],
                args["bv"],
                pool_size=pool,
                visible=visible,
                **kwargs,
            ),
            lambda a, e: _close(a, e, p["dtype"]),
            spoiled=target is not None,
        )


# --------------------------------------------------------------------------------------- OpenMP
@FUZZ
@given(
    st.one_of(
        st.none(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.booleans(),
    )
)
def test_effective_n_threads(n_threads):
    """Any user value: a thread count in [1, OpenMP's limit], or ValueError/TypeError (0, non-numbers)."""
    from neuroplug_core._openmp import effective_n_threads, max_threads

    try:
        nt = effective_n_threads(n_threads)
    except (ValueError, TypeError, OverflowError) as exc:
        assert (
            n_threads == 0 or not isinstance(n_threads, int) or abs(n_threads) >= 2**63
        ), repr(exc)
        return
    assert 1 <= nt <= max(1, max_threads())


# ------------------------------------------------------------------------- dense products, Adam
@FUZZ
@given(
    st.data(),
    st.integers(1, 70),
    st.integers(0, 70),
    st.integers(1, 150),
    st.booleans(),
    st.booleans(),
    st.sampled_from(DTYPES),
    st.sampled_from(DTYPES),
    st.booleans(),
)
def test_gemm(data, m, k, n, trans1, trans2, dtype_a, dtype_b, split):
    # Any layout and dtype mix; ``split`` forces the blocked, threaded path on any size.
    a = _array(data, (k, m) if trans1 else (m, k), dtype_a)
    b = _array(data, (n, k) if trans2 else (k, n), dtype_b)
    ops = cython_ops.CythonOps(n_threads=2)
    if split:
        ops._GEMM_THREADED_MIN_MACS = 1
    got = ops.gemm(a, b, trans1=trans1, trans2=trans2)
    want = REF.gemm(a, b, trans1=trans1, trans2=trans2)
    assert got.dtype == want.dtype
    _close(got, want, got.dtype)


@FUZZ
@given(
    st.data(),
    hnp.array_shapes(min_dims=1, max_dims=4, max_side=40),
    st.sampled_from(DTYPES),
    st.integers(1, 1000),
)
def test_adam_update(data, shape, dtype, t):
    param, grad, m = (_array(data, shape, dtype) for _ in range(3))
    v = np.abs(_array(data, shape, dtype))
    kw = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, t=t)
    want = [np.array(a, copy=True) for a in (param, grad, m, v)]
    got = [
        np.array(a, copy=True) if data.draw(st.booleans()) else a
        for a in (param, grad, m, v)
    ]
    REF.adam_update(*want, **kw)
    CY.adam_update(*got, **kw)
    for a, b in zip(got, want):
        _close(a, b, dtype)
