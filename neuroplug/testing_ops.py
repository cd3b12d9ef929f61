"""Conformance checks for backends: run every op against the NumPy reference.

:func:`check_ops` is the backend analogue of :func:`neuroplug.testing.check_layer`:
given a backend (a registered name such as ``"torch:cpu"``, an ``Ops``
subclass or an instance), it runs every check below in float32 and float64 and
raises :class:`OpsCheckError` (an ``AssertionError``) naming the failed check,
the backend and the dtype::

    from neuroplug.testing import check_ops

    def test_my_backend():
        check_ops(MyOps)

:func:`ops_checks` returns the checks one by one and
:func:`parametrize_ops_checks` builds the ``pytest.mark.parametrize``
decorator, so a report shows every failing check at once.

The checks (names as in ``skip=``) compare with :class:`neuroplug.ops.Ops`:

``check_arrays``
    ``asarray``/``to_numpy`` round trips keep values, shape and dtype;
    ``alloc`` returns zeros of the shape and dtype asked for; ``repeat_rows``,
    ``take_rows`` and ``astype`` (the composite loops' helpers).
``check_rng_contract``
    ``make_rng(seed)`` twice gives the same ``random_uniform``,
    ``random_normal``, ``bernoulli`` and ``dropout_mask`` draws, another seed
    other draws; uniforms lie in ``[0, 1)``; ``bernoulli`` of 0 and 1 is exact
    and of 0.3 has mean near 0.3; every draw has the dtype asked for.
``check_dense``
    ``gemm`` (all transposes) and ``affine``.
``check_activations``
    sigmoid, tanh, relu, softplus, exp, log, logsumexp_rows, softmax,
    log_softmax and the backward ops.
``check_losses``
    ``softmax_cross_entropy`` and ``squared_loss`` (values and gradients).
``check_optimizers``
    ``sgd_update`` (with and without Nesterov) and ``adam_update``, in place.
``check_conv``
    ``conv2d`` and its two gradients with stride, padding, groups and a
    connection table.
``check_pooling``
    max and mean pooling forward and backward.
``check_rbm_ops``
    ``rbm_hidden_probs``, ``rbm_visible_means``, ``rbm_free_energy``.
``check_loops``
    the one-call loops ``cd_epoch`` (CD-2 and PCD), ``sbn_wake_sleep_epoch``
    (``K = 1`` and ``K = 2``), ``crbm_cd_epoch`` and ``rbm_ais_log_weights``
    in a regime whose Bernoulli draws are certain (saturated biases), so
    their results must match the reference whatever the generator; updated
    arrays stay on the backend with their dtype.
``check_loop_determinism``
    the same seed gives the same loop results in an ordinary (random) regime.
``check_bad_input``
    wrong shapes and arguments (a 3-D conv input, a pool larger than the
    input, ``k=0`` in ``cd_epoch``, a negative learning rate) raise
    ``ValueError``/``TypeError`` as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ops import Ops

__all__ = [
    "OPS_CHECKS",
    "OpsCheck",
    "OpsCheckError",
    "check_ops",
    "ops_checks",
    "parametrize_ops_checks",
]

_TOL = {np.dtype(np.float32): (2e-4, 2e-5), np.dtype(np.float64): (1e-9, 1e-11)}


class OpsCheckError(AssertionError):
    """A backend failed one conformance check; ``check``, ``backend`` and ``dtype`` say which."""

    def __init__(self, message: str, *, check: str, backend: str, dtype: str) -> None:
        super().__init__(message)
        self.check, self.backend, self.dtype = check, backend, dtype

    def __reduce__(self) -> Any:
        return (_rebuild, (str(self), self.check, self.backend, self.dtype))


def _rebuild(message: str, check: str, backend: str, dtype: str) -> OpsCheckError:
    return OpsCheckError(message, check=check, backend=backend, dtype=dtype)


@dataclass
class _Ctx:
    ops: Any
    ref: Ops
    dtype: np.dtype
    rng: np.random.Generator

    @property
    def tol(self) -> tuple[float, float]:
        return _TOL[self.dtype]

    def a(self, x: Any) -> Any:
        """A fresh backend copy of ``x`` in the check's dtype (floats) or as given (ints)."""
        x = np.array(x, copy=True)
        if x.dtype.kind == "f":
            x = x.astype(self.dtype)
        return self.ops.asarray(x)

    def normal(self, *shape: int, scale: float = 1.0) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(self.dtype)

    def np(self, x: Any) -> np.ndarray:
        return np.asarray(self.ops.to_numpy(x))

    def close(
        self, actual: Any, desired: Any, what: str, *, scale: float = 1.0
    ) -> None:
        """``actual`` (backend) equals ``desired`` (reference) within the dtype's tolerance, dtype included."""
        got, want = self.np(actual), np.asarray(self.ref.to_numpy(desired))
        if got.shape != want.shape:
            raise AssertionError(
                f"{what}: shape {got.shape}, the reference gives {want.shape}"
            )
        if want.dtype.kind == "f" and got.dtype != want.dtype:
            raise AssertionError(
                f"{what}: dtype {got.dtype}, the reference gives {want.dtype}"
            )
        rtol, atol = self.tol
        if not np.allclose(
            got, want, rtol=rtol * scale, atol=atol * scale, equal_nan=True
        ):
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            where = (
                tuple(
                    int(i)
                    for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)
                )
                if diff.size
                else ()
            )
            raise AssertionError(
                f"{what}: differs from the reference by up to {float(np.nanmax(diff)):.3g} at index {where} "
                f"(got {float(got[where]):.9g}, reference {float(want[where]):.9g}; tolerance rtol={rtol * scale:g}, "
                f"atol={atol * scale:g} for {self.dtype})"
            )


def _both(ctx: _Ctx, name: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Call op ``name`` on the backend (on backend copies of array arguments) and on the reference."""

    def conv(v: Any) -> Any:
        return ctx.a(v) if isinstance(v, np.ndarray) else v

    got = getattr(ctx.ops, name)(
        *[conv(a) for a in args], **{k: conv(v) for k, v in kwargs.items()}
    )

    def copy(v: Any) -> Any:
        return v.copy() if isinstance(v, np.ndarray) else v

    want = getattr(ctx.ref, name)(
        *[copy(a) for a in args], **{k: copy(v) for k, v in kwargs.items()}
    )
    return got, want


def check_arrays(ctx: _Ctx) -> None:
    x = ctx.normal(3, 4)
    back = ctx.np(ctx.ops.asarray(x))
    np.testing.assert_array_equal(
        back, x, err_msg="asarray/to_numpy changed the values"
    )
    assert back.dtype == ctx.dtype, (
        f"asarray/to_numpy gave dtype {back.dtype}, expected {ctx.dtype}"
    )
    z = ctx.np(ctx.ops.alloc((2, 3), ctx.dtype))
    assert z.shape == (2, 3) and z.dtype == ctx.dtype and not z.any(), (
        f"alloc gave {z.dtype} {z.shape} {z}"
    )
    got, want = _both(ctx, "repeat_rows", x, 3)
    ctx.close(got, want, "repeat_rows(x, 3)")
    got, want = _both(ctx, "take_rows", x, 1, 3, ctx.dtype)
    ctx.close(got, want, "take_rows(x, 1, 3)")
    got = ctx.np(ctx.ops.astype(ctx.a(x), np.float64))
    assert got.dtype == np.float64, f"astype(x, float64) gave dtype {got.dtype}"
    np.testing.assert_array_equal(
        got, x.astype(np.float64), err_msg="astype(x, float64) changed the values"
    )


def check_rng_contract(ctx: _Ctx) -> None:
    ops, dt = ctx.ops, ctx.dtype

    def draws(seed: int) -> list[np.ndarray]:
        rng = ops.make_rng(seed)
        return [
            ctx.np(ops.random_uniform(rng, (50, 8), dt)),
            ctx.np(ops.random_normal(rng, (50, 8), dt, scale=2.0)),
            ctx.np(ops.bernoulli(ctx.a(np.full((50, 8), 0.3)), rng)),
            ctx.np(ops.dropout_mask((50, 8), 0.25, rng, dt)),
        ]

    first, again, other = draws(7), draws(7), draws(8)
    for name, a, b, c in zip(
        ("random_uniform", "random_normal", "bernoulli", "dropout_mask"),
        first,
        again,
        other,
    ):
        assert a.dtype == dt, f"{name} gave dtype {a.dtype}, expected {dt}"
        np.testing.assert_array_equal(
            a, b, err_msg=f"{name}: the same seed gave different draws"
        )
        assert not np.array_equal(a, c), f"{name}: seeds 7 and 8 gave the same draws"
    u = first[0]
    assert u.min() >= 0 and u.max() < 1, (
        f"random_uniform left [0, 1): min {u.min()}, max {u.max()}"
    )
    assert abs(float(first[1].std()) - 2.0) < 0.4, (
        f"random_normal(scale=2) has std {first[1].std():.3f}"
    )
    assert abs(float(first[2].mean()) - 0.3) < 0.1, (
        f"bernoulli(0.3) has mean {first[2].mean():.3f}"
    )
    assert set(np.unique(first[3]).tolist()) <= {0.0, np.float64(dt.type(1 / 0.75))}, (
        "dropout_mask values"
    )
    rng = ops.make_rng(0)
    p = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(
        ctx.np(ops.bernoulli(ctx.a(p), rng)),
        p,
        err_msg="bernoulli of 0 and 1 must be exact",
    )


def check_dense(ctx: _Ctx) -> None:
    a, b = ctx.normal(4, 5), ctx.normal(5, 3)
    for t1 in (False, True):
        for t2 in (False, True):
            x = a.T.copy() if t1 else a
            y = b.T.copy() if t2 else b
            got, want = _both(ctx, "gemm", x, y, trans1=t1, trans2=t2)
            ctx.close(got, want, f"gemm(trans1={t1}, trans2={t2})", scale=5)
    got, want = _both(ctx, "affine", a, b, ctx.normal(3))
    ctx.close(got, want, "affine", scale=5)


def check_activations(ctx: _Ctx) -> None:
    x = ctx.normal(4, 6, scale=3.0)
    x[0, :3] = [-60, 0, 60]
    dy = ctx.normal(4, 6)
    for name in ("sigmoid", "tanh", "relu", "softplus"):
        got, want = _both(ctx, name, x)
        ctx.close(got, want, name)
        y = np.asarray(want)
        got, want = (
            _both(ctx, f"{name}_backward", y, dy)
            if name != "softplus"
            else (None, None)
        )
        if got is not None:
            ctx.close(got, want, f"{name}_backward")
    for name, arg in (
        ("exp", x / 4),
        ("log", np.abs(x) + 0.5),
        ("logsumexp_rows", x * 10),
    ):
        got, want = _both(ctx, name, arg)
        ctx.close(got, want, name)
    for name in ("softmax", "log_softmax"):
        for axis in (-1, 0):
            got, want = _both(ctx, name, x, axis=axis)
            ctx.close(got, want, f"{name}(axis={axis})")


def check_losses(ctx: _Ctx) -> None:
    logits = ctx.normal(5, 4, scale=2.0)
    labels = np.array([0, 3, 1, 1, 2])
    (loss, grad), (rloss, rgrad) = _both(ctx, "softmax_cross_entropy", logits, labels)
    ctx.close(np.asarray(loss), np.asarray(rloss), "softmax_cross_entropy loss")
    ctx.close(grad, rgrad, "softmax_cross_entropy gradient")
    (loss, grad), (rloss, rgrad) = _both(ctx, "squared_loss", logits, ctx.normal(5, 4))
    ctx.close(np.asarray(loss), np.asarray(rloss), "squared_loss loss")
    ctx.close(grad, rgrad, "squared_loss gradient")


def check_optimizers(ctx: _Ctx) -> None:
    p, g, v = ctx.normal(3, 4), ctx.normal(3, 4), ctx.normal(3, 4)
    for nesterov in (False, True):
        bp, bv = ctx.a(p), ctx.a(v)
        rp, rv = p.copy(), v.copy()
        ctx.ops.sgd_update(bp, ctx.a(g), bv, lr=0.1, momentum=0.9, nesterov=nesterov)
        ctx.ref.sgd_update(rp, g.copy(), rv, lr=0.1, momentum=0.9, nesterov=nesterov)
        ctx.close(bp, rp, f"sgd_update(nesterov={nesterov}) param")
        ctx.close(bv, rv, f"sgd_update(nesterov={nesterov}) velocity")
    m, s = ctx.normal(3, 4), np.abs(ctx.normal(3, 4))
    bp, bm, bs = ctx.a(p), ctx.a(m), ctx.a(s)
    rp, rm, rs = p.copy(), m.copy(), s.copy()
    kw = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, t=3)
    ctx.ops.adam_update(bp, ctx.a(g), bm, bs, **kw)
    ctx.ref.adam_update(rp, g.copy(), rm, rs, **kw)
    for name, got, want in (("param", bp, rp), ("m", bm, rm), ("v", bs, rs)):
        ctx.close(got, want, f"adam_update {name}", scale=10)


def check_conv(ctx: _Ctx) -> None:
    cases = [
        dict(
            x=(2, 3, 7, 6),
            w=(4, 3, 3, 2),
            stride=1,
            padding=0,
            groups=1,
            connections=None,
        ),
        dict(
            x=(2, 4, 8, 7),
            w=(6, 2, 3, 3),
            stride=2,
            padding=1,
            groups=2,
            connections=None,
        ),
        dict(
            x=(1, 3, 6, 6),
            w=(4, 3, 3, 3),
            stride=(1, 2),
            padding="same",
            groups=1,
            connections=np.array(
                [[1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=bool
            ),
        ),
    ]
    for case in cases:
        x, w = ctx.normal(*case["x"]), ctx.normal(*case["w"])
        b = ctx.normal(case["w"][0])
        conv = {k: case[k] for k in ("stride", "padding", "groups", "connections")}
        label = f"conv2d(x={case['x']}, w={case['w']}, stride={case['stride']}, padding={case['padding']!r}, groups={case['groups']})"
        got, want = _both(ctx, "conv2d", x, w, b, **conv)
        ctx.close(got, want, label, scale=10)
        dy = ctx.normal(*np.asarray(want).shape)
        got, want = _both(ctx, "conv2d_backward_input", dy, w, case["x"], **conv)
        ctx.close(got, want, f"conv2d_backward_input of {label}", scale=10)
        (dw, db), (rdw, rdb) = _both(
            ctx, "conv2d_backward_weights", dy, x, case["w"], **conv
        )
        ctx.close(dw, rdw, f"conv2d_backward_weights dw of {label}", scale=10)
        ctx.close(db, rdb, f"conv2d_backward_weights db of {label}", scale=10)


def check_pooling(ctx: _Ctx) -> None:
    x = ctx.normal(2, 3, 7, 6)
    for size, stride in ((2, None), ((3, 2), (2, 1))):
        (y, am), (ry, ram) = _both(ctx, "maxpool2d", x, size, stride)
        ctx.close(y, ry, f"maxpool2d(size={size}, stride={stride})")
        np.testing.assert_array_equal(
            ctx.np(am), ram, err_msg=f"maxpool2d(size={size}, stride={stride}) argmax"
        )
        dy = ctx.normal(*ry.shape)
        got, want = _both(ctx, "maxpool2d_backward", dy, np.asarray(ram), x.shape)
        ctx.close(got, want, f"maxpool2d_backward(size={size}, stride={stride})")
        got, want = _both(ctx, "meanpool2d", x, size, stride)
        ctx.close(got, want, f"meanpool2d(size={size}, stride={stride})")
        got, want = _both(
            ctx,
            "meanpool2d_backward",
            ctx.normal(*np.asarray(want).shape),
            x.shape,
            size,
            stride,
        )
        ctx.close(got, want, f"meanpool2d_backward(size={size}, stride={stride})")


def check_rbm_ops(ctx: _Ctx) -> None:
    v = (ctx.rng.random((6, 5)) < 0.5).astype(ctx.dtype)
    W, bh, bv, h = (
        ctx.normal(4, 5),
        ctx.normal(4),
        ctx.normal(5),
        (ctx.rng.random((6, 4)) < 0.5).astype(ctx.dtype),
    )
    got, want = _both(ctx, "rbm_hidden_probs", v, W, bh)
    ctx.close(got, want, "rbm_hidden_probs")
    for visible in ("bernoulli", "gaussian"):
        got, want = _both(ctx, "rbm_visible_means", h, W, bv, visible)
        ctx.close(got, want, f"rbm_visible_means({visible})")
        got, want = _both(ctx, "rbm_free_energy", v, W, bh, bv, visible)
        ctx.close(got, want, f"rbm_free_energy({visible})", scale=10)


def _saturated_rbm(
    ctx: _Ctx, n: int = 12, nv: int = 6, nh: int = 5
) -> dict[str, np.ndarray]:
    # Biases of +-30 make every Bernoulli draw certain, so any generator gives the reference's result.
    def sign(k: int) -> np.ndarray:
        return np.where(ctx.rng.random(k) < 0.5, -30.0, 30.0)

    return dict(
        X=(ctx.rng.random((n, nv)) < 0.5).astype(ctx.dtype),
        W=ctx.normal(nh, nv, scale=0.01),
        bh=sign(nh).astype(ctx.dtype),
        bv=ctx.normal(nv),
        dW=ctx.normal(nh, nv, scale=0.01),
        dbh=ctx.normal(nh, scale=0.01),
        dbv=ctx.normal(nv, scale=0.01),
    )


def _run_inplace(
    ctx: _Ctx,
    name: str,
    arrays: dict[str, Any],
    order: list[str],
    kwargs: dict[str, Any],
) -> tuple:
    """Run loop ``name`` on backend copies and on reference copies of ``arrays``; compare every array after."""
    back = {
        k: ctx.a(v) if not isinstance(v, list) else [ctx.a(a) for a in v]
        for k, v in arrays.items()
    }
    ref = {
        k: np.array(v, copy=True) if not isinstance(v, list) else [a.copy() for a in v]
        for k, v in arrays.items()
    }
    got = getattr(ctx.ops, name)(
        *[back[k] for k in order], rng=ctx.ops.make_rng(1), **kwargs
    )
    want = getattr(ctx.ref, name)(
        *[ref[k] for k in order], rng=ctx.ref.make_rng(1), **kwargs
    )
    for k in order[1:]:
        pairs = (
            zip(back[k], ref[k]) if isinstance(ref[k], list) else [(back[k], ref[k])]
        )
        for i, (b, r) in enumerate(pairs):
            ctx.close(
                b,
                r,
                f"{name}: {k}{f'[{i}]' if isinstance(ref[k], list) else ''} after the call",
                scale=20,
            )
    return got, want


def check_loops(ctx: _Ctx) -> None:
    base = dict(
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.01,
        batch_size=5,
        visible="bernoulli",
    )
    order = ["X", "W", "bh", "bv", "dW", "dbh", "dbv"]
    arrays = _saturated_rbm(ctx)
    got, want = _run_inplace(ctx, "cd_epoch", arrays, order, dict(base, k=2))
    ctx.close(
        np.asarray(got),
        np.asarray(want),
        "cd_epoch(k=2) reconstruction error",
        scale=20,
    )
    arrays_pcd = dict(
        _saturated_rbm(ctx), chain=(ctx.rng.random((5, 5)) < 0.5).astype(ctx.dtype)
    )
    back_chain, ref_chain = ctx.a(arrays_pcd["chain"]), arrays_pcd["chain"].copy()
    back = {k: ctx.a(v) for k, v in arrays_pcd.items() if k != "chain"}
    ref = {k: v.copy() for k, v in arrays_pcd.items() if k != "chain"}
    err = ctx.ops.cd_epoch(
        *[back[k] for k in order],
        rng=ctx.ops.make_rng(1),
        chain=back_chain,
        **dict(base, k=2),
    )
    rerr = ctx.ref.cd_epoch(
        *[ref[k] for k in order],
        rng=ctx.ref.make_rng(1),
        chain=ref_chain,
        **dict(base, k=2),
    )
    ctx.close(
        np.asarray(err),
        np.asarray(rerr),
        "cd_epoch(PCD-2) reconstruction error",
        scale=20,
    )
    ctx.close(back_chain, ref_chain, "cd_epoch(PCD-2): chain after the call")
    ctx.close(back["W"], ref["W"], "cd_epoch(PCD-2): W after the call", scale=20)

    # Sigmoid belief net with saturated biases (every sample certain).
    sizes = (6, 4, 3)

    def sat(k: int) -> np.ndarray:
        return np.where(ctx.rng.random(k) < 0.5, -30.0, 30.0).astype(ctx.dtype)

    sbn = dict(
        X=(ctx.rng.random((8, sizes[0])) < 0.5).astype(ctx.dtype),
        Wg=[ctx.normal(sizes[l + 1], sizes[l], scale=0.01) for l in range(2)],
        bg=[sat(s) for s in sizes],
        Wr=[ctx.normal(sizes[l], sizes[l + 1], scale=0.01) for l in range(2)],
        br=[sat(sizes[l + 1]) for l in range(2)],
    )
    for K in (1, 2):
        got, want = _run_inplace(
            ctx,
            "sbn_wake_sleep_epoch",
            sbn,
            ["X", "Wg", "bg", "Wr", "br"],
            dict(learning_rate=0.05, batch_size=3, n_importance_samples=K),
        )
        ctx.close(
            np.asarray(got),
            np.asarray(want),
            f"sbn_wake_sleep_epoch(K={K}) bound",
            scale=20,
        )

    # Convolutional RBM whose detection units are all (certainly) off.
    crbm = dict(
        X=(ctx.rng.random((4, 2, 6, 5)) < 0.5).astype(ctx.dtype),
        W=ctx.normal(3, 2, 3, 3, scale=0.01),
        bh=np.full(3, -40.0, ctx.dtype),
        bv=ctx.normal(2),
        dW=np.zeros((3, 2, 3, 3), ctx.dtype),
        dbh=np.zeros(3, ctx.dtype),
        dbv=np.zeros(2, ctx.dtype),
    )
    got, want = _run_inplace(
        ctx,
        "crbm_cd_epoch",
        crbm,
        order,
        dict(
            k=2,
            pool_size=2,
            learning_rate=0.1,
            momentum=0.5,
            weight_decay=0.01,
            sparsity_target=0.05,
            sparsity_cost=0.1,
            batch_size=3,
            visible="bernoulli",
            padding=1,
        ),
    )
    ctx.close(
        np.asarray(got),
        np.asarray(want),
        "crbm_cd_epoch reconstruction error",
        scale=20,
    )

    # AIS with saturated units: every Gibbs sweep is certain.
    W = ctx.normal(4, 6, scale=0.01)
    bh, bv = np.full(4, 60.0, ctx.dtype), np.full(6, 60.0, ctx.dtype)
    base_bias = np.full(6, 60.0, ctx.dtype)
    for visible in ("bernoulli",):
        kw = dict(n_runs=5, visible=visible)
        got = ctx.ops.rbm_ais_log_weights(
            ctx.a(W),
            ctx.a(bh),
            ctx.a(bv),
            ctx.a(base_bias),
            [0.0, 0.5, 1.0],
            rng=ctx.ops.make_rng(2),
            **kw,
        )
        want = ctx.ref.rbm_ais_log_weights(
            W, bh, bv, base_bias, [0.0, 0.5, 1.0], rng=ctx.ref.make_rng(2), **kw
        )
        got = np.asarray(ctx.np(got) if not isinstance(got, np.ndarray) else got)
        assert got.dtype == np.float64, (
            f"rbm_ais_log_weights must return float64 NumPy, gave {got.dtype}"
        )
        ctx.close(
            got.astype(np.float64), want, f"rbm_ais_log_weights({visible})", scale=50
        )


def check_loop_determinism(ctx: _Ctx) -> None:
    def run(seed: int) -> list[np.ndarray]:
        r = np.random.default_rng(3)
        X = (r.random((10, 6)) < 0.5).astype(ctx.dtype)
        params = [
            ctx.a(p)
            for p in (
                r.standard_normal((4, 6)) * 0.1,
                np.zeros(4),
                np.zeros(6),
                np.zeros((4, 6)),
                np.zeros(4),
                np.zeros(6),
            )
        ]
        err = ctx.ops.cd_epoch(
            ctx.a(X),
            *params,
            k=1,
            learning_rate=0.1,
            momentum=0.5,
            weight_decay=0.0,
            batch_size=4,
            visible="bernoulli",
            rng=ctx.ops.make_rng(seed),
        )
        return [np.asarray(float(err))] + [ctx.np(p) for p in params]

    for a, b in zip(run(5), run(5)):
        np.testing.assert_array_equal(
            a, b, err_msg="cd_epoch with the same seed gave different results"
        )


def check_bad_input(ctx: _Ctx) -> None:
    ops = ctx.ops

    def refuses(what: str, call: Callable[[], Any], match: str) -> None:
        try:
            call()
        except (ValueError, TypeError) as exc:
            if match not in str(exc):
                raise AssertionError(
                    f"{what}: the error {exc!r} does not mention {match!r}"
                ) from exc
        else:
            raise AssertionError(
                f"{what} was accepted; the reference raises ValueError/TypeError"
            )

    x, w = ctx.a(ctx.normal(2, 3, 5, 5)), ctx.a(ctx.normal(4, 3, 3, 3))
    refuses(
        "conv2d of a 3-D input",
        lambda: ops.conv2d(ctx.a(ctx.normal(3, 5, 5)), w),
        "x must be 4-D",
    )
    refuses("conv2d with stride 0", lambda: ops.conv2d(x, w, stride=0), "stride")
    refuses(
        "maxpool2d larger than the input",
        lambda: ops.maxpool2d(x, 6),
        "larger than the input",
    )
    p = {k: ctx.a(v) for k, v in _saturated_rbm(ctx).items()}
    args = [p[k] for k in ("X", "W", "bh", "bv", "dW", "dbh", "dbv")]
    kw = dict(
        k=1,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.0,
        batch_size=4,
        visible="bernoulli",
        rng=ops.make_rng(0),
    )
    for change, match in (
        ({"k": 0}, "k must be"),
        ({"learning_rate": -0.1}, "learning_rate must be"),
        ({"momentum": 1.0}, "momentum must be"),
        ({"visible": "poisson"}, "visible must be"),
    ):
        refuses(
            f"cd_epoch with {change}",
            lambda change=change: ops.cd_epoch(*args, **dict(kw, **change)),
            match,
        )


OPS_CHECKS: dict[str, Callable[[_Ctx], None]] = {
    fn.__name__: fn
    for fn in (
        check_arrays,
        check_rng_contract,
        check_dense,
        check_activations,
        check_losses,
        check_optimizers,
        check_conv,
        check_pooling,
        check_rbm_ops,
        check_loops,
        check_loop_determinism,
        check_bad_input,
    )
}
"""Every backend check, by name, in the order :func:`check_ops` runs them."""


@dataclass(frozen=True)
class OpsCheck:
    """One named check bound to one backend and dtype; call it to run it."""

    name: str
    backend: str
    dtype: str
    _run: Callable[[], None] = field(repr=False)

    def __call__(self) -> None:
        """Run the check; raise :class:`OpsCheckError` naming the check, backend and dtype on failure."""
        where = f"backend {self.backend} ({self.dtype}) failed {self.name}"
        try:
            self._run()
        except OpsCheckError:
            raise
        except AssertionError as exc:
            raise OpsCheckError(
                f"{where}: {exc}",
                check=self.name,
                backend=self.backend,
                dtype=self.dtype,
            ) from exc
        except Exception as exc:
            raise OpsCheckError(
                f"{where}: it raised {type(exc).__name__}: {exc}",
                check=self.name,
                backend=self.backend,
                dtype=self.dtype,
            ) from exc

    @property
    def id(self) -> str:
        """A short test id: ``"<backend>-<dtype>-<check>"``."""
        return f"{self.backend}-{self.dtype}-{self.name}"


def _resolve(backend: Any) -> tuple[Callable[[], Any], str]:
    if isinstance(backend, str):
        from .backends import get_ops

        get_ops(backend)  # fail now, with the registry's message, for an unknown name
        return (lambda: get_ops(backend)), backend
    if isinstance(backend, type) and issubclass(backend, Ops):
        return (lambda: backend()), backend.__name__
    if isinstance(backend, Ops):
        return (lambda: backend), repr(backend)
    raise TypeError(
        "backend must be a registered backend name (such as 'torch:cpu'), an Ops subclass or an Ops instance. "
        f"Received: backend={backend!r}"
    )


def ops_checks(
    backend: Any,
    *,
    dtypes: Iterable[Any] = (np.float32, np.float64),
    skip: Iterable[str] = (),
    seed: int = 0,
) -> list[OpsCheck]:
    """Return the conformance checks of one backend, one per check and dtype (see :func:`check_ops`)."""
    make, label = _resolve(backend)
    skip = set(skip)
    unknown = skip - set(OPS_CHECKS)
    if unknown:
        raise ValueError(
            f"skip names unknown checks {sorted(unknown)}; known checks: {', '.join(OPS_CHECKS)}. "
            f"Received: skip={sorted(skip)}"
        )
    dts = [np.dtype(d) for d in dtypes]
    bad = [d for d in dts if d not in _TOL]
    if bad or not dts:
        raise ValueError(
            f"dtypes must be float32 and/or float64. Received: dtypes={[str(d) for d in dts]}"
        )
    checks = []
    for dt in dts:
        for name, fn in OPS_CHECKS.items():
            if name in skip:
                continue

            def run(fn: Callable[[_Ctx], None] = fn, dt: np.dtype = dt) -> None:
                fn(_Ctx(make(), Ops(), dt, np.random.default_rng(seed)))

            checks.append(OpsCheck(name, label, dt.name, run))
    return checks


def check_ops(
    backend: Any,
    *,
    dtypes: Iterable[Any] = (np.float32, np.float64),
    skip: Iterable[str] = (),
    seed: int = 0,
) -> None:
    """Check that a backend computes every op as the NumPy reference does.

    Parameters
    ----------
    backend : str, Ops subclass or Ops instance
        A registered name (``"torch:cpu"``), or a candidate backend that need
        not be registered yet.
    dtypes : iterable of dtype, default=(float32, float64)
        The dtypes to run every check in.
    skip : iterable of str
        Names of checks not to run (see :data:`OPS_CHECKS`).
    seed : int, default=0
        Seeds the test data.

    Raises
    ------
    OpsCheckError
        At the first failing check, naming it, the backend and the dtype.
    """
    for check in ops_checks(backend, dtypes=dtypes, skip=skip, seed=seed):
        check()


def parametrize_ops_checks(*backends: Any, **kwargs: Any) -> Any:
    """``pytest.mark.parametrize("ops_check", ...)`` over the checks of one or more backends.

    Keyword arguments go to :func:`ops_checks`::

        @parametrize_ops_checks("torch:cpu")
        def test_torch_conforms(ops_check):
            ops_check()
    """
    import pytest

    params = [
        pytest.param(c, id=c.id) for b in backends for c in ops_checks(b, **kwargs)
    ]
    return pytest.mark.parametrize("ops_check", params)
