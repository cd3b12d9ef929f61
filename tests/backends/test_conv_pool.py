"""Convolution and pooling on every registered backend, against the NumPy reference.

Each backend's results are compared with the reference computed in float64
from the same inputs (relative tolerance 1e-5 for float32, 1e-10 for
float64, see :func:`assert_close`), with ``scipy.signal.correlate`` as an
independent check, finite differences for the gradients, Hypothesis for
random valid shapes, and a list of invalid inputs that must raise clean
``ValueError``/``TypeError``.  The compiled ``cpu`` backend is additionally
run with each of its kernels (AVX-512, AVX2, im2col + BLAS) that this CPU
supports.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import signal

from neuroplug.backends import get_ops
from neuroplug.backends.cython_ops import CythonOps
from neuroplug.ops import (
    Ops,
    conv2d_output_shape,
    normalize_padding,
    normalize_pair,
)

REF = Ops()
DTYPES = [np.float32, np.float64]

# LeNet-5's C3 table: which of the 6 S2 maps each of the 16 C3 maps sees.
C3_TABLE = np.array(
    [
        [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 1],
        [1, 0, 0, 0, 1, 1],
        [1, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1],
        [1, 0, 0, 1, 1, 1],
        [1, 1, 0, 0, 1, 1],
        [1, 1, 1, 0, 0, 1],
        [1, 1, 0, 1, 1, 0],
        [0, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 1, 1],
    ]
)

# (N, C, H, W, F, KH, KW, stride, padding, groups, connections): each row exercises something.
CONV_CASES = [
    (2, 1, 7, 7, 3, 3, 3, 1, 0, 1, None),  # single channel
    (
        3,
        4,
        9,
        8,
        6,
        3,
        2,
        (1, 2),
        (1, 0),
        2,
        None,
    ),  # rectangular kernel, stride, padding, groups
    (2, 3, 5, 5, 4, 1, 1, 1, 0, 1, None),  # 1x1 kernel
    (2, 6, 6, 6, 16, 3, 3, 2, "same", 1, None),  # "same" with stride 2
    (1, 4, 6, 7, 8, 1, 1, 1, 0, 4, None),  # one group per input channel
    (2, 3, 10, 3, 5, 2, 3, (3, 1), (2, 1), 1, None),  # tall input, asymmetric stride
    (3, 2, 4, 4, 3, 4, 4, 1, 0, 1, None),  # kernel as large as the input
    (2, 2, 3, 3, 2, 2, 2, 1, 3, 1, None),  # padding wider than the kernel
    (2, 2, 10, 10, 3, 3, 3, 2, 0, 1, None),  # ragged edge dropped (floor)
    (
        2,
        30,
        12,
        12,
        13,
        3,
        3,
        1,
        1,
        1,
        None,
    ),  # more than one reduction block and column panel
    (2, 2, 22, 22, 3, 3, 3, 1, 0, 1, None),  # many output positions
    (
        1,
        2,
        4,
        4,
        270,
        1,
        1,
        1,
        0,
        1,
        None,
    ),  # many filters (input-gradient reduction blocks)
    (
        2,
        3,
        17,
        17,
        5,
        3,
        3,
        2,
        1,
        1,
        None,
    ),  # stride 2 on a plane wide enough for SIMD panels
    (
        1,
        2,
        8,
        8,
        270,
        1,
        1,
        1,
        0,
        1,
        None,
    ),  # more filters than one reduction block, wide plane
    (
        2,
        16,
        10,
        10,
        64,
        3,
        3,
        1,
        1,
        1,
        None,
    ),  # weight gradient computed transposed (AVX-512)
    (2, 1, 10, 10, 100, 3, 3, 1, 1, 1, None),  # ... with two blocks of 64 filters
    (2, 6, 14, 14, 16, 5, 5, 1, 0, 1, C3_TABLE),  # LeNet-5 C3 connection table
    (
        2,
        4,
        6,
        6,
        6,
        3,
        3,
        1,
        1,
        2,
        np.array([[1, 0], [1, 1], [0, 1], [1, 1], [1, 0], [0, 1]]),
    ),
]


def case_id(case) -> str:
    n, c, h, w, f, kh, kw, stride, padding, groups, conn = case
    extra = "-table" if conn is not None else ""
    return (
        f"{n}x{c}x{h}x{w}-f{f}k{kh}x{kw}-s{stride}-p{padding}-g{groups}{extra}".replace(
            " ", ""
        )
    )


def assert_close(actual, expected, dtype, *, rtol=None) -> None:
    """Compare a backend result with the float64 reference.

    Relative tolerance 1e-5 in float32 and 1e-10 in float64; the absolute
    tolerance is the same fraction of the largest reference magnitude, so
    entries whose terms nearly cancel are judged against the size of the
    result rather than their own tiny size.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, np.dtype(dtype))
    if rtol is None:
        rtol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-10
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=rtol, atol=rtol * max(scale, 1e-300)
    )


def conv_data(case, dtype, seed=0):
    n, c, h, w, f, kh, kw, stride, padding, groups, conn = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kw_ = dict(stride=stride, padding=padding, groups=groups, connections=conn)
    oh, ow = conv2d_output_shape(
        (h, w),
        (kh, kw),
        normalize_pair(stride, "stride"),
        normalize_padding(padding, (kh, kw)),
    )
    dy = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    return x, wt, b, dy, kw_


def check_conv_case(ops, case, dtype, seed=0):
    """All three conv products of ``ops`` against the float64 reference."""
    x, w, b, dy, kw = conv_data(case, dtype, seed)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    y = ops.to_numpy(ops.conv2d(ops.asarray(x), ops.asarray(w), ops.asarray(b), **kw))
    assert_close(y, REF.conv2d(x64, w64, b64, **kw), dtype)
    dx = ops.to_numpy(
        ops.conv2d_backward_input(ops.asarray(dy), ops.asarray(w), x.shape, **kw)
    )
    assert_close(dx, REF.conv2d_backward_input(dy64, w64, x.shape, **kw), dtype)
    dw, db = ops.conv2d_backward_weights(ops.asarray(dy), ops.asarray(x), w.shape, **kw)
    dw_ref, db_ref = REF.conv2d_backward_weights(dy64, x64, w.shape, **kw)
    assert_close(ops.to_numpy(dw), dw_ref, dtype)
    assert_close(ops.to_numpy(db), db_ref, dtype)
    if kw["connections"] is not None:
        table = np.asarray(kw["connections"], dtype=bool)
        assert (ops.to_numpy(dw)[~table] == 0).all(), (
            "dw must be zero where the connection table is 0"
        )


# ---------------------------------------------------------------------------
# Convolution against the reference and scipy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d_matches_reference(ops, case, dtype):
    check_conv_case(ops, case, dtype)


def _cpu_kernels():
    try:
        from neuroplug_core import conv
    except ImportError:
        return []
    return conv.available_isas()


@pytest.fixture(params=_cpu_kernels())
def cpu_kernel(request):
    """A ``cpu`` backend with its float32 kernels set to each set this CPU supports.

    Pooling follows: AVX-512 and AVX2 kernels with the convolution kernels of
    the same name, and the portable loop with "blas".
    """
    return get_ops("cpu", simd=request.param)


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_cpu_conv_kernels_match_reference(cpu_kernel, case):
    check_conv_case(cpu_kernel, case, np.float32, seed=1)


# Shapes that reach every branch of the sliding-window kernels: rows of 3, 2 and 1 vectors
# and a partial vector, blocks of 1-4 rows on planes up to 8 wide, 1-4 filters left over,
# taps in blocks of 3, 2 and 1, padded and unpadded runs of more samples than one run holds
# (16, or fewer when the padded copies would not fit), groups and a connection table.
SLIDING_CASES = CONV_CASES + [
    (3, 1, 28, 28, 20, 5, 5, 1, 0, 1, None),  # LeNet's first layer (3 vectors per row)
    (
        3,
        20,
        12,
        12,
        50,
        5,
        5,
        1,
        0,
        1,
        None,
    ),  # LeNet's second layer (4 rows of 8 per tile)
    (
        2,
        3,
        9,
        7,
        7,
        3,
        3,
        1,
        1,
        1,
        None,
    ),  # rows of 7: 4 + 4 + 1 rows, 3 + 3 + 1 filters
    (2, 3, 12, 27, 7, 3, 3, 1, 1, 1, None),  # 3 + partial vector, 3 filters left over
    (2, 2, 9, 20, 6, 2, 2, 1, 0, 1, None),  # 2 vectors + partial, 2 filters left over
    (2, 3, 6, 34, 5, 3, 3, 1, 0, 1, None),  # 4 vectors as 2 + 2
    (2, 2, 5, 58, 3, 3, 3, 1, 0, 1, None),  # 7 vectors as 3 + 2 + 2
    (2, 2, 9, 11, 5, 3, 8, 1, (1, 3), 1, None),  # 8 taps wide: blocks of 3, 3 and 2
    (
        300,
        1,
        6,
        10,
        2,
        3,
        3,
        1,
        0,
        1,
        None,
    ),  # chunks of 19 samples: runs of 16 and 3, unpadded
    (
        112,
        20,
        30,
        30,
        2,
        3,
        3,
        1,
        1,
        1,
        None,
    ),  # padded copies of 20x32x32: runs of 3, 3 and 1
    (
        3,
        40,
        40,
        40,
        2,
        3,
        3,
        1,
        1,
        1,
        None,
    ),  # a padded copy larger than the budget: runs of 1
    (2, 4, 10, 18, 4, 3, 3, 1, 1, 2, None),  # groups
    (2, 6, 14, 20, 16, 5, 5, 1, 0, 1, C3_TABLE),  # connection table
    # Packed input gradient with col2im in the micro-kernel (whole-vector output rows), its
    # im2col rows taken channels first ...
    (2, 5, 10, 10, 7, 3, 3, 1, 0, 1, None),  # ... 45 rows: a partial last panel
    (2, 6, 8, 16, 4, 3, 3, 1, 1, 2, None),  # ... per group
    (2, 6, 12, 12, 16, 5, 5, 1, 0, 1, C3_TABLE),  # ... under a connection table
    (
        2,
        3,
        11,
        10,
        4,
        3,
        3,
        1,
        0,
        1,
        None,
    ),  # 72 positions: a last block of 8, im2col order
]


@pytest.fixture(params=["never", "always", "auto"])
def sliding(request):
    """A ``cpu`` backend with the sliding-window path off, everywhere, or by default."""
    from neuroplug_core import conv

    if "avx2" not in conv.available_isas():
        pytest.skip("the sliding-window kernels need AVX2")
    return get_ops("cpu", sliding=request.param)


@pytest.mark.parametrize("case", SLIDING_CASES, ids=case_id)
def test_cpu_sliding_kernels_match_reference(sliding, case):
    check_conv_case(sliding, case, np.float32, seed=2)


# Shapes that reach every branch of the Winograd kernels (3x3 and 5x5): one channel and few
# filters, odd output sizes (half-used tiles, partial rows), rows of 1, 2 and 3 vectors of 8
# tiles and rows of 4 tiles (two tile rows per vector, with an odd number of tile rows), a
# band whose last 16-tile panel is half empty, several bands per sample (many channels or
# filters), filters and channels not a multiple of 6, weight-gradient runs and chunks with a
# remainder, padding up to and wider than the kernel, and a connection table.
WINOGRAD_CASES = [
    (2, 1, 7, 7, 1, 3, 3, 1, 0, 1, None),  # 5x5 output: odd tiles, one panel half empty
    (2, 3, 9, 33, 7, 3, 3, 1, 1, 1, None),  # 33 wide: 17 tiles, 3 vectors of 8
    (3, 8, 20, 20, 13, 3, 3, 1, "same", 1, None),  # 10 tiles: 2 vectors, 13 filters
    (
        2,
        130,
        10,
        10,
        6,
        3,
        3,
        1,
        0,
        1,
        None,
    ),  # 130 channels: forward bands of two tile rows
    (
        2,
        6,
        10,
        10,
        130,
        3,
        3,
        1,
        0,
        1,
        None,
    ),  # 130 filters: input-gradient bands of two tile rows
    (2, 40, 30, 17, 8, 3, 3, 1, 2, 1, None),  # bands of 6 tile rows, padding 2
    (2, 5, 6, 11, 4, 3, 3, 1, (0, 2), 1, None),  # asymmetric padding
    (2, 2, 5, 5, 3, 3, 3, 1, 3, 1, None),  # padding wider than the kernel
    (2, 6, 14, 14, 16, 3, 3, 1, 1, 1, C3_TABLE),  # connection table
    (1, 1, 3, 3, 1, 3, 3, 1, 0, 1, None),  # a single output
    (
        3,
        20,
        12,
        12,
        50,
        5,
        5,
        1,
        0,
        1,
        None,
    ),  # LeNet's second layer: 4x4 tiles, two rows per vector
    (2, 8, 11, 11, 7, 5, 5, 1, 1, 1, None),  # 9x9 output: 5 tile rows (odd) of 5 tiles
    (
        19,
        9,
        9,
        9,
        5,
        5,
        5,
        1,
        2,
        1,
        None,
    ),  # 19 samples: chunks of 3, runs of 3 with a remainder
    (2, 4, 10, 23, 9, 5, 5, 1, (1, 4), 1, None),  # 5x5, padding up to 4
    (2, 6, 14, 14, 16, 5, 5, 1, 0, 1, C3_TABLE),  # LeNet-5's C3 table on 5x5 filters
]


@pytest.fixture(params=["never", "always", "auto"])
def winograd(request):
    """A ``cpu`` backend with the Winograd path off, everywhere, or by default."""
    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    return get_ops("cpu", winograd=request.param)


@pytest.mark.parametrize("case", WINOGRAD_CASES + CONV_CASES, ids=case_id)
def test_cpu_winograd_kernels_match_reference(winograd, case):
    check_conv_case(winograd, case, np.float32, seed=3)


def test_cpu_winograd_runs_only_where_it_applies_and_pays():
    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    # (kind, N, C, H, W, F, KH, KW, SH, SW, PH, PW, G, simd)
    c_shape = (64, 32, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1)  # benchmark shape (c)
    b_shape = (128, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0, 1)  # benchmark shape (b)
    for kind in (0, 1, 2):
        assert wg.pays(kind, *c_shape, True) and wg.pays(kind, *b_shape, True)
        assert not wg.pays(kind, *c_shape, False)  # SIMD kernels capped ("blas")
    assert not wg.pays(0, 8, 32, 32, 32, 64, 7, 7, 1, 1, 1, 1, 1, True)  # 7x7
    assert not wg.pays(0, 8, 32, 32, 32, 64, 3, 5, 1, 1, 1, 1, 1, True)  # not square
    assert not wg.pays(0, 8, 32, 32, 32, 64, 3, 3, 2, 2, 1, 1, 1, True)  # stride 2
    assert not wg.pays(0, 8, 32, 32, 32, 64, 3, 3, 1, 1, 1, 1, 2, True)  # groups
    assert not wg.pays(
        0, 8, 3, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, True
    )  # 3 channels: sliding kernels
    assert not wg.pays(
        1, 8, 64, 32, 32, 3, 3, 3, 1, 1, 1, 1, 1, True
    )  # input gradient of 3 filters
    assert not wg.pays(
        0, 8, 32, 6, 6, 64, 3, 3, 1, 1, 1, 1, 1, True
    )  # 6x6 planes: 9 real tiles of 16
    assert not wg.pays(
        0, 8, 256, 7, 7, 256, 3, 3, 1, 1, 1, 1, 1, True
    )  # bands of 8 tiles (large U)
    assert wg.pays(
        0, 64, 24, 32, 32, 24, 3, 3, 1, 1, 1, 1, 1, True
    )  # 24 channels, 24 filters ...
    assert not wg.pays(
        2, 64, 24, 32, 32, 24, 3, 3, 1, 1, 1, 1, 1, True
    )  # ... too little work per transform
    assert not wg.pays(1, 64, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, True)
    assert not wg.pays(
        2, 8, 512, 224, 224, 512, 3, 3, 1, 1, 1, 1, 1, True
    )  # transforms beyond the budget
    assert not wg.pays(
        2, 8, 512, 14, 14, 512, 3, 3, 1, 1, 1, 1, 1, True
    )  # partial sums beyond the budget
    assert not wg.pays(0, *c_shape, True, 0)  # mode "never"
    assert wg.pays(0, 8, 3, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, True, 2)  # mode "always"
    with pytest.raises(ValueError, match="mode must be 0"):
        wg.pays(0, *c_shape, True, 3)


def test_cpu_winograd_checks_its_workspace_and_shapes():
    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    x = np.ones((2, 3, 6, 6), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    y = np.empty((2, 4, 6, 6), np.float32)
    nobias = np.zeros(0, np.float32)
    need = wg.workspace(0, 2, 3, 6, 6, 4, 3, 1, 1, 1)
    with pytest.raises(ValueError, match="workspace too small"):
        wg.forward(x, w, nobias, y, 1, 1, 1, np.empty(need - 1, np.float32))
    with pytest.raises(ValueError, match="inconsistent convolution shapes"):
        wg.forward(
            x,
            w,
            nobias,
            np.empty((2, 4, 5, 6), np.float32),
            1,
            1,
            1,
            np.empty(need, np.float32),
        )
    with pytest.raises(ValueError, match="bias has the wrong length"):
        wg.forward(
            x, w, np.zeros(3, np.float32), y, 1, 1, 1, np.empty(need, np.float32)
        )
    with pytest.raises(ValueError, match="3x3 or 5x5"):
        wg.forward(
            x,
            np.ones((4, 3, 4, 4), np.float32),
            nobias,
            np.empty((2, 4, 5, 5), np.float32),
            1,
            1,
            1,
            np.empty(need, np.float32),
        )
    with pytest.raises(ValueError, match="square filters"):
        wg.forward(
            x,
            np.ones((4, 3, 3, 5), np.float32),
            nobias,
            y,
            1,
            1,
            1,
            np.empty(need, np.float32),
        )
    wg.forward(x, w, nobias, y, 1, 1, 1, np.empty(need, np.float32))
    assert y[0, 0, 2, 2] == 27.0 and y[0, 0, 0, 0] == 12.0
    need = wg.workspace(1, 2, 3, 6, 6, 4, 3, 1, 1, 1)
    with pytest.raises(ValueError, match="workspace too small"):
        wg.backward_input(
            y, w, np.empty_like(x), 1, 1, 1, np.empty(need - 1, np.float32)
        )
    with pytest.raises(ValueError, match="inconsistent convolution shapes"):
        wg.backward_input(
            y[:1], w, np.empty_like(x), 1, 1, 1, np.empty(need, np.float32)
        )
    need = wg.workspace(2, 2, 3, 6, 6, 4, 3, 1, 1, 1)
    with pytest.raises(ValueError, match="workspace too small"):
        wg.backward_weights(
            y, x, np.empty_like(w), 1, 1, 1, np.empty(need - 1, np.float32)
        )
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        wg.backward_weights(y, x, np.empty_like(w), 1, 1, 0, np.empty(need, np.float32))


def test_cpu_sliding_weight_gradient_never_mixes_in_values_outside_a_window():
    """An inf that no window of a tap reaches must not turn that tap's gradient into NaN.

    The last, partial vector of each output row reads past the window of the
    smaller taps; with dy = 0 there, an unmasked read would add 0 * inf = NaN.
    """
    from neuroplug_core import conv

    if "avx2" not in conv.available_isas():
        pytest.skip("the sliding-window kernels need AVX2")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 6, 13)).astype(np.float32)
    x[:, :, :, -1] = np.inf  # reached only by the last column of taps
    dy = rng.standard_normal((2, 3, 4, 11)).astype(np.float32)
    dw, _ = get_ops(
        "cpu", check_finite=False, sliding="always"
    ).conv2d_backward_weights(dy, x, (3, 1, 3, 3))
    with np.errstate(invalid="ignore"):
        ref, _ = Ops(check_finite=False).conv2d_backward_weights(
            dy.astype(np.float64), x.astype(np.float64), (3, 1, 3, 3)
        )
    assert np.isfinite(dw[..., :2]).all() and np.isfinite(ref[..., :2]).all()
    assert_close(dw[..., :2], ref[..., :2], np.float32)
    assert not np.isfinite(dw[..., 2]).any()


@pytest.mark.parametrize("option", ["sliding", "winograd", "sparse"])
def test_cpu_kernel_modes_are_validated(option):
    with pytest.raises(ValueError, match=f"{option} must be one of"):
        CythonOps(**{option: "sometimes"})
    assert getattr(CythonOps(**{option: "NEVER"}), option) == "never"


@pytest.mark.parametrize(
    "option,variable,value",
    [
        ("sliding", "NEUROPLUG_SLIDING", "never"),
        ("winograd", "NEUROPLUG_WINOGRAD", "always"),
        ("sparse", "NEUROPLUG_SPARSE", "never"),
        ("simd", "NEUROPLUG_SIMD", "blas"),
        ("small_batch_max", "NEUROPLUG_SMALL_BATCH_MAX", 0),
    ],
)
def test_cpu_kernel_options_default_to_the_environment_when_the_backend_is_made(
    monkeypatch, option, variable, value
):
    monkeypatch.setenv(variable, str(value))
    ops = CythonOps()
    assert getattr(ops, option) == value
    monkeypatch.delenv(variable)
    assert getattr(ops, option) == value  # kept: read once, when made
    assert getattr(CythonOps(), option) == (
        None if option == "small_batch_max" else "auto"
    )
    monkeypatch.setenv(variable, "bogus")
    with pytest.warns(RuntimeWarning, match=variable):
        assert getattr(CythonOps(), option) == (
            None if option == "small_batch_max" else "auto"
        )


def test_cpu_kernel_selection_is_validated():
    from neuroplug_core import conv, pool

    with pytest.raises(ValueError, match="Received: simd='sse9'"):
        CythonOps(simd="sse9")
    with pytest.raises(ValueError, match="small_batch_max must be"):
        CythonOps(small_batch_max=-1)
    assert CythonOps(simd="portable").simd == "blas"
    top = len(conv.available_isas()) - 1
    with pytest.raises(ValueError, match="isa must be a level of"):
        conv.workspace(0, True, 1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 1, 1, top + 1, 1)
    with pytest.raises(ValueError, match="sliding must be 0"):
        conv.workspace(0, True, 1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 1, 1, 0, 3)
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="isa must be a level of"):
        pool.maxpool2d_forward(
            x,
            np.empty((1, 1, 2, 2), np.float32),
            np.empty((1, 1, 2, 2), np.int64),
            2,
            2,
            2,
            2,
            1,
            len(pool.available_isas()),
        )
    with pytest.raises(TypeError, match="Unknown kernel options"):
        with CythonOps().kernels(winograds="never"):
            pass


def test_cpu_kernel_options_are_scoped_to_the_backend_object():
    """A block's choice is restored after it (also on error), and never reaches another backend."""
    a, b = CythonOps(), CythonOps(sliding="never")
    with pytest.raises(RuntimeError):
        with a.kernels(winograd="never", simd="blas") as same:
            assert same is a and a.winograd == "never" and a.simd == "blas"
            assert b.winograd == "auto" and b.simd == "auto" and b.sliding == "never"
            raise RuntimeError
    assert a.kernel_options == {
        "simd": "auto",
        "sliding": "auto",
        "winograd": "auto",
        "sparse": "auto",
        "small_batch_max": None,
    }
    assert CythonOps().kernel_options == a.kernel_options


def test_cpu_kernel_options_pickle_with_the_backend():
    ops = CythonOps(
        n_threads=1,
        simd="blas",
        sliding="never",
        winograd="always",
        sparse="never",
        small_batch_max=0,
    )
    back = pickle.loads(pickle.dumps(ops))
    assert back.kernel_options == ops.kernel_options and back.n_threads == 1
    assert "winograd='always'" in repr(back)
    case = (2, 3, 9, 9, 4, 3, 3, 1, 1, 1, None)
    check_conv_case(back, case, np.float32, seed=4)


def test_cpu_kernel_options_choose_the_kernels():
    """The options reach the kernels: each choice gives the reference's result with its own rounding."""
    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    results = {}
    for name, options in {
        "winograd": dict(winograd="always"),
        "packed": dict(winograd="never", sliding="never"),
        "blas": dict(simd="blas"),
    }.items():
        results[name] = CythonOps(**options).conv2d(x, w, padding=1)
    ref = REF.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
    for y in results.values():
        assert_close(y, ref, np.float32)
    # Different kernels round differently, so equal results would mean one kernel ran twice.
    assert not np.array_equal(results["winograd"], results["packed"])
    assert not np.array_equal(results["winograd"], results["blas"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 0), (1, 2), ((2, 3), (1, 2))])
def test_conv2d_matches_scipy_correlate(ops, dtype, stride, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    sh, sw = normalize_pair(stride, "stride")
    ph, pw = normalize_pair(padding, "padding", minimum=0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    expected = np.stack(
        [
            np.stack(
                [
                    sum(
                        signal.correlate(
                            xp[n, c], w[f, c].astype(np.float64), mode="valid"
                        )
                        for c in range(3)
                    )
                    + b[f]
                    for f in range(4)
                ]
            )
            for n in range(2)
        ]
    )[:, :, ::sh, ::sw]
    y = ops.conv2d(
        ops.asarray(x), ops.asarray(w), ops.asarray(b), stride=stride, padding=padding
    )
    assert_close(ops.to_numpy(y), expected, dtype)


def test_conv2d_without_bias_and_padding_names(ops):
    x, w, _, _, _ = conv_data((2, 3, 7, 7, 4, 3, 3, 1, 0, 1, None), np.float64)
    for padding in ("valid", "same", 1, (1, 0)):
        y = ops.to_numpy(ops.conv2d(ops.asarray(x), ops.asarray(w), padding=padding))
        assert_close(y, REF.conv2d(x, w, padding=padding), np.float64)
    assert ops.to_numpy(
        ops.conv2d(ops.asarray(x), ops.asarray(w), padding="same")
    ).shape == (2, 4, 7, 7)


# ---------------------------------------------------------------------------
# Finite differences (float64)
# ---------------------------------------------------------------------------
def check_gradient(f, arr, grad, n_probes=12, eps=1e-6, seed=0):
    """Central differences of the scalar ``f()`` at ``n_probes`` random entries of ``arr`` against ``grad``."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(arr.size, size=min(n_probes, arr.size), replace=False)
    for idx in (np.unravel_index(i, arr.shape) for i in flat):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        np.testing.assert_allclose(
            grad[idx],
            (up - down) / (2 * eps),
            rtol=1e-6,
            atol=1e-7,
            err_msg=f"at {idx}",
        )


@pytest.mark.parametrize(
    "case",
    [
        (2, 2, 5, 4, 3, 3, 2, (2, 1), (1, 0), 1, None),
        (1, 4, 4, 5, 4, 2, 2, 1, "valid", 2, None),
        (2, 3, 9, 9, 4, 3, 3, 1, 1, 1, None),
        (1, 3, 4, 4, 2, 3, 3, 1, 1, 1, np.array([[1, 0, 1], [0, 1, 1]])),
    ],
    ids=case_id,
)
def test_conv2d_gradients_match_finite_differences(ops, case):
    x, w, b, r, kw = conv_data(case, np.float64, seed=4)

    def loss():
        y = ops.conv2d(ops.asarray(x), ops.asarray(w), ops.asarray(b), **kw)
        return float((ops.to_numpy(y) * r).sum())

    dx = ops.to_numpy(
        ops.conv2d_backward_input(ops.asarray(r), ops.asarray(w), x.shape, **kw)
    )
    dw, db = ops.conv2d_backward_weights(ops.asarray(r), ops.asarray(x), w.shape, **kw)
    check_gradient(loss, x, dx)
    check_gradient(loss, w, ops.to_numpy(dw))
    check_gradient(loss, b, ops.to_numpy(db))


@pytest.mark.parametrize("size,stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_pooling_gradients_match_finite_differences(ops, size, stride):
    rng = np.random.default_rng(5)
    # Values spaced well apart so that no +-eps step changes which input is the maximum.
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6).astype(np.float64) * 0.1
    y, argmax = ops.maxpool2d(ops.asarray(x), size, stride)
    r = rng.standard_normal(tuple(y.shape))

    def max_loss():
        return float(
            (ops.to_numpy(ops.maxpool2d(ops.asarray(x), size, stride)[0]) * r).sum()
        )

    def mean_loss():
        return float(
            (ops.to_numpy(ops.meanpool2d(ops.asarray(x), size, stride)) * r).sum()
        )

    dmax = ops.to_numpy(ops.maxpool2d_backward(ops.asarray(r), argmax, x.shape))
    check_gradient(max_loss, x, dmax, n_probes=20)
    dmean = ops.to_numpy(ops.meanpool2d_backward(ops.asarray(r), x.shape, size, stride))
    check_gradient(mean_loss, x, dmean, n_probes=20)


# ---------------------------------------------------------------------------
# Pooling against the reference
# ---------------------------------------------------------------------------
POOL_CASES = [
    ((2, 3, 8, 8), 2, None),
    ((2, 2, 9, 7), 2, None),  # ragged bottom row and right column dropped
    ((1, 3, 9, 9), 3, 2),  # overlapping windows
    ((2, 2, 7, 10), (2, 3), (1, 2)),  # rectangular
    ((1, 2, 5, 6), (5, 6), None),  # one window covers the whole plane
    ((3, 1, 4, 4), 1, None),  # identity
    ((1, 2, 6, 6), 2, 3),  # gaps between windows
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size,stride", POOL_CASES)
def test_pooling_matches_reference(ops, shape, size, stride, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    y, argmax = ops.maxpool2d(ops.asarray(x), size, stride)
    y_ref, argmax_ref = REF.maxpool2d(x, size, stride)
    np.testing.assert_array_equal(ops.to_numpy(y), y_ref)
    am = np.asarray(ops.to_numpy(argmax))
    assert am.dtype == np.int64
    np.testing.assert_array_equal(am, argmax_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx = ops.to_numpy(ops.maxpool2d_backward(ops.asarray(dy), argmax, shape))
    assert_close(
        dx, REF.maxpool2d_backward(dy.astype(np.float64), argmax_ref, shape), dtype
    )
    m = ops.to_numpy(ops.meanpool2d(ops.asarray(x), size, stride))
    assert_close(m, REF.meanpool2d(x.astype(np.float64), size, stride), dtype)
    dm = ops.to_numpy(ops.meanpool2d_backward(ops.asarray(dy), shape, size, stride))
    assert_close(
        dm, REF.meanpool2d_backward(dy.astype(np.float64), shape, size, stride), dtype
    )


def test_maxpool_ties_go_to_the_first_maximum(ops):
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = (
        1.0  # two maxima in the first window: (1, 0) comes first
    )
    y, argmax = ops.maxpool2d(ops.asarray(x), 2)
    np.testing.assert_array_equal(
        np.asarray(ops.to_numpy(argmax))[0, 0], [[4, 2], [8, 10]]
    )
    np.testing.assert_array_equal(ops.to_numpy(y)[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize(
    "shape,size,stride",
    POOL_CASES + [((2, 3, 40, 37), 3, 3), ((1, 2, 9, 40), (2, 3), (3, 1))],
)
def test_cpu_pool_kernels_match_reference(cpu_kernel, shape, size, stride):
    cpu = get_ops("cpu", check_finite=False)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    x.flat[::17] = np.nan  # NaN is the maximum (first NaN kept), as numpy.argmax
    x.flat[5::23] = x.flat[4::23][: len(x.flat[5::23])]  # ties
    y, argmax = cpu.maxpool2d(x, size, stride)
    y_ref, argmax_ref = Ops(check_finite=False).maxpool2d(x, size, stride)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)


# ---------------------------------------------------------------------------
# Hypothesis: random valid shapes
# ---------------------------------------------------------------------------
@st.composite
def conv_geometries(draw):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    f = groups * draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n = draw(st.integers(1, 3))
    conn = None
    if draw(st.booleans()):
        conn = np.array(
            draw(
                st.lists(
                    st.lists(st.booleans(), min_size=c // groups, max_size=c // groups),
                    min_size=f,
                    max_size=f,
                )
            ),
            dtype=bool,
        )
        conn[:, 0] |= ~conn.any(axis=1)  # every filter sees at least one channel
    return (n, c, h, w, f, kh, kw, (sh, sw), (ph, pw), groups, conn)


HYPOTHESIS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@HYPOTHESIS
@given(
    case=conv_geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16)
)
def test_conv2d_random_shapes_match_reference(ops, case, dtype, seed):
    check_conv_case(ops, case, dtype, seed)


@st.composite
def winograd_geometries(draw):
    """Random shapes the Winograd kernels take: one group, square 3x3 or 5x5 filters, stride 1."""
    r = draw(st.sampled_from([3, 5]))
    ph, pw = draw(st.integers(0, r)), draw(st.integers(0, r))
    h = draw(st.integers(max(1, r - 2 * ph), 21))
    w = draw(st.integers(max(1, r - 2 * pw), 21))
    n, c, f = (
        draw(st.integers(1, 4)),
        draw(st.integers(1, 20)),
        draw(st.integers(1, 20)),
    )
    return (n, c, h, w, f, r, r, 1, (ph, pw), 1, None)


@HYPOTHESIS
@given(case=winograd_geometries(), seed=st.integers(0, 2**16))
def test_cpu_winograd_random_shapes_match_reference(case, seed):
    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    check_conv_case(get_ops("cpu", winograd="always"), case, np.float32, seed)


@HYPOTHESIS
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    sh=st.integers(1, 4),
    sw=st.integers(1, 4),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_pooling_random_shapes_match_reference(
    ops, n, c, h, w, kh, kw, sh, sw, dtype, seed
):
    kh, kw = min(kh, h), min(kw, w)
    shape = (n, c, h, w)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    y, argmax = ops.maxpool2d(ops.asarray(x), (kh, kw), (sh, sw))
    y_ref, argmax_ref = REF.maxpool2d(x, (kh, kw), (sh, sw))
    np.testing.assert_array_equal(ops.to_numpy(y), y_ref)
    np.testing.assert_array_equal(np.asarray(ops.to_numpy(argmax)), argmax_ref)
    dx = ops.to_numpy(ops.maxpool2d_backward(y, argmax, shape))
    assert_close(
        dx, REF.maxpool2d_backward(y_ref.astype(np.float64), argmax_ref, shape), dtype
    )
    m = ops.meanpool2d(ops.asarray(x), (kh, kw), (sh, sw))
    assert_close(
        ops.to_numpy(m), REF.meanpool2d(x.astype(np.float64), (kh, kw), (sh, sw)), dtype
    )
    dm = ops.to_numpy(ops.meanpool2d_backward(m, shape, (kh, kw), (sh, sw)))
    m_ref = REF.meanpool2d(x.astype(np.float64), (kh, kw), (sh, sw))
    assert_close(dm, REF.meanpool2d_backward(m_ref, shape, (kh, kw), (sh, sw)), dtype)


# ---------------------------------------------------------------------------
# Invalid inputs raise clean errors; odd-but-valid inputs work
# ---------------------------------------------------------------------------
def _x(shape=(2, 3, 6, 6), dtype=np.float32):
    return np.random.default_rng(7).standard_normal(shape).astype(dtype)


def _w(shape=(4, 3, 3, 3), dtype=np.float32):
    return np.random.default_rng(8).standard_normal(shape).astype(dtype)


def _nan_x():
    x = _x()
    x[1, 2, 3, 4] = np.nan
    return x


def _inf_dy():
    dy = _x((2, 4, 4, 4))
    dy[0, 0, 0, 0] = np.inf
    return dy


# (name, call taking ops and an ``a`` converter, exception, regex the message must match)
INVALID = [
    (
        "x wrong ndim",
        lambda o, a: o.conv2d(a(_x((3, 6, 6))), a(_w())),
        ValueError,
        r"x must be 4-D.*x.shape=\(3, 6, 6\)",
    ),
    (
        "w wrong ndim",
        lambda o, a: o.conv2d(a(_x()), a(_w((4, 27)))),
        ValueError,
        r"w must be 4-D",
    ),
    (
        "channel mismatch",
        lambda o, a: o.conv2d(a(_x()), a(_w((4, 2, 3, 3)))),
        ValueError,
        r"w.shape\[1\].*Received: w.shape=\(4, 2, 3, 3\)",
    ),
    (
        "groups do not divide",
        lambda o, a: o.conv2d(a(_x()), a(_w((4, 1, 3, 3))), groups=2),
        ValueError,
        r"divisible by groups.*groups=2",
    ),
    (
        "kernel larger than input",
        lambda o, a: o.conv2d(a(_x((2, 3, 2, 6))), a(_w())),
        ValueError,
        r"kernel \(3, 3\) is larger",
    ),
    (
        "zero-size batch",
        lambda o, a: o.conv2d(a(_x((0, 3, 6, 6))), a(_w())),
        ValueError,
        r"x must not be empty.*x.shape=\(0, 3, 6, 6\)",
    ),
    (
        "negative padding",
        lambda o, a: o.conv2d(a(_x()), a(_w()), padding=-1),
        ValueError,
        r"padding.*Received: padding=-1",
    ),
    (
        "unknown padding",
        lambda o, a: o.conv2d(a(_x()), a(_w()), padding="full"),
        ValueError,
        r"padding='full'",
    ),
    (
        "same with even kernel",
        lambda o, a: o.conv2d(a(_x()), a(_w((4, 3, 2, 2))), padding="same"),
        ValueError,
        r"odd kernel",
    ),
    (
        "zero stride",
        lambda o, a: o.conv2d(a(_x()), a(_w()), stride=0),
        ValueError,
        r"stride must be >= 1.*stride=0",
    ),
    (
        "float stride",
        lambda o, a: o.conv2d(a(_x()), a(_w()), stride=1.5),
        TypeError,
        r"stride=1.5",
    ),
    (
        "bias length",
        lambda o, a: o.conv2d(a(_x()), a(_w()), a(np.zeros(3, np.float32))),
        ValueError,
        r"b must have out_channels=4",
    ),
    (
        "integer x",
        lambda o, a: o.conv2d(a(np.ones((2, 3, 6, 6), np.int64)), a(_w())),
        TypeError,
        r"x must be float32 or float64",
    ),
    (
        "float16 x",
        lambda o, a: o.conv2d(a(np.ones((2, 3, 6, 6), np.float16)), a(_w())),
        TypeError,
        r"x must be float32 or float64",
    ),
    (
        "mixed dtypes",
        lambda o, a: o.conv2d(a(_x()), a(_w(dtype=np.float64))),
        TypeError,
        r"w must have the same dtype",
    ),
    (
        "NaN input",
        lambda o, a: o.conv2d(a(_nan_x()), a(_w())),
        ValueError,
        r"x contains NaN",
    ),
    (
        "bad connections",
        lambda o, a: o.conv2d(a(_x()), a(_w()), connections=np.ones((4, 2))),
        ValueError,
        r"connections must have shape.*= \(4, 3\)",
    ),
    (
        "empty connection row",
        lambda o, a: o.conv2d(a(_x()), a(_w()), connections=np.eye(4, 3)[::-1] * 0),
        ValueError,
        r"no input channel",
    ),
    (
        "not an array",
        lambda o, a: o.conv2d([[1.0]], a(_w())),
        (TypeError, ValueError),
        r"x must be (an array|4-D)",
    ),
    (
        "dy shape",
        lambda o, a: o.conv2d_backward_input(
            a(_x((2, 4, 3, 4))), a(_w()), (2, 3, 6, 6)
        ),
        ValueError,
        r"dy must have shape \(2, 4, 4, 4\)",
    ),
    (
        "dy not finite",
        lambda o, a: o.conv2d_backward_input(a(_inf_dy()), a(_w()), (2, 3, 6, 6)),
        ValueError,
        r"dy contains NaN or inf",
    ),
    (
        "x_shape bad",
        lambda o, a: o.conv2d_backward_input(a(_x((2, 4, 4, 4))), a(_w()), (2, 3, 6)),
        (TypeError, ValueError),
        r"x_shape",
    ),
    (
        "x_shape negative",
        lambda o, a: o.conv2d_backward_input(
            a(_x((2, 4, 4, 4))), a(_w()), (2, 3, -6, 6)
        ),
        ValueError,
        r"x_shape",
    ),
    (
        "dy dtype",
        lambda o, a: o.conv2d_backward_weights(
            a(_x((2, 4, 4, 4), np.float64)), a(_x()), (4, 3, 3, 3)
        ),
        TypeError,
        r"dy must have the same dtype",
    ),
    (
        "w_shape bad",
        lambda o, a: o.conv2d_backward_weights(a(_x((2, 4, 4, 4))), a(_x()), (4, 3, 3)),
        (TypeError, ValueError),
        r"w_shape",
    ),
    (
        "pool wrong ndim",
        lambda o, a: o.maxpool2d(a(_x((3, 6, 6))), 2),
        ValueError,
        r"x must be 4-D",
    ),
    (
        "pool too large",
        lambda o, a: o.maxpool2d(a(_x()), 7),
        ValueError,
        r"pool size \(7, 7\) is larger",
    ),
    (
        "pool zero size",
        lambda o, a: o.meanpool2d(a(_x()), 0),
        ValueError,
        r"size must be >= 1",
    ),
    (
        "pool zero batch",
        lambda o, a: o.meanpool2d(a(_x((0, 3, 6, 6))), 2),
        ValueError,
        r"x must not be empty",
    ),
    (
        "pool NaN",
        lambda o, a: o.maxpool2d(a(_nan_x()), 2),
        ValueError,
        r"x contains NaN",
    ),
    (
        "pool integer",
        lambda o, a: o.maxpool2d(a(np.ones((1, 1, 4, 4), np.int32)), 2),
        TypeError,
        r"float32 or float64",
    ),
    (
        "argmax shape",
        lambda o, a: o.maxpool2d_backward(
            a(_x((2, 3, 3, 3))), np.zeros((2, 3, 3, 2), np.int64), (2, 3, 6, 6)
        ),
        ValueError,
        r"same shape",
    ),
    (
        "argmax outside the plane",
        lambda o, a: o.maxpool2d_backward(
            a(_x((2, 3, 3, 3))), np.full((2, 3, 3, 3), 36, np.int64), (2, 3, 6, 6)
        ),
        ValueError,
        r"outside the input plane",
    ),
    (
        "argmax negative",
        lambda o, a: o.maxpool2d_backward(
            a(_x((2, 3, 3, 3))), np.full((2, 3, 3, 3), -1, np.int64), (2, 3, 6, 6)
        ),
        ValueError,
        r"outside the input plane",
    ),
    (
        "meanpool dy shape",
        lambda o, a: o.meanpool2d_backward(a(_x((2, 3, 2, 3))), (2, 3, 6, 6), 2),
        ValueError,
        r"dy must have shape \(2, 3, 3, 3\)",
    ),
]


@pytest.mark.parametrize(
    "name,call,exc,match", INVALID, ids=[row[0] for row in INVALID]
)
def test_invalid_inputs_raise_clean_errors(ops, name, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ops, lambda arr: ops.asarray(arr) if not isinstance(arr, list) else arr)


def test_float_argmax_refused(ops):
    y, _ = ops.maxpool2d(ops.asarray(_x()), 2)
    with pytest.raises(TypeError, match="argmax"):
        ops.maxpool2d_backward(y, np.zeros((2, 3, 3, 3), np.float32), (2, 3, 6, 6))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_are_accepted(ops, dtype):
    rng = np.random.default_rng(9)
    x_big = rng.standard_normal((2, 6, 8, 14)).astype(dtype)
    w_big = rng.standard_normal((8, 3, 3, 3)).astype(dtype)
    dy_big = rng.standard_normal((2, 4, 8, 14)).astype(dtype)
    x_np, w_np, dy_np = (
        x_big[:, ::2, :, ::2],
        w_big[::2],
        dy_big[..., ::2],
    )  # strided views
    x, w, dy = (
        ops.asarray(x_big)[:, ::2, :, ::2],
        ops.asarray(w_big)[::2],
        ops.asarray(dy_big)[..., ::2],
    )
    if isinstance(x, np.ndarray):
        assert (
            not x.flags.c_contiguous
            and not w.flags.c_contiguous
            and not dy.flags.c_contiguous
        )
    x64, w64, dy64 = (a.astype(np.float64) for a in (x_np, w_np, dy_np))
    kw = dict(stride=1, padding=1)
    assert_close(
        ops.to_numpy(ops.conv2d(x, w, **kw)), REF.conv2d(x64, w64, **kw), dtype
    )
    dx = ops.to_numpy(ops.conv2d_backward_input(dy, w, x_np.shape, **kw))
    assert_close(dx, REF.conv2d_backward_input(dy64, w64, x_np.shape, **kw), dtype)
    dw, _ = ops.conv2d_backward_weights(dy, x, w_np.shape, **kw)
    assert_close(
        ops.to_numpy(dw),
        REF.conv2d_backward_weights(dy64, x64, w_np.shape, **kw)[0],
        dtype,
    )
    y, _ = ops.maxpool2d(x, 2)
    np.testing.assert_array_equal(ops.to_numpy(y), REF.maxpool2d(x_np, 2)[0])
    assert_close(ops.to_numpy(ops.meanpool2d(x, 2)), REF.meanpool2d(x64, 2), dtype)


# ---------------------------------------------------------------------------
# The compiled backend specifically
# ---------------------------------------------------------------------------
def test_cpu_nan_propagates_when_checks_are_off():
    cpu = get_ops("cpu", check_finite=False)
    x = _x((1, 1, 4, 4))
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 3, 3] = np.nan
    x[0, 0, 2, 2] = np.inf
    y, argmax = cpu.maxpool2d(x, 2)
    y_ref, argmax_ref = Ops(check_finite=False).maxpool2d(
        x, 2
    )  # numpy.argmax takes the first NaN
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert np.isnan(cpu.conv2d(x, _w((2, 1, 3, 3)))).any()


def test_cpu_winograd_spreads_nan_only_within_a_tile_when_checks_are_off():
    """A NaN reaches every output of the 2x2 tiles whose input holds it, and nothing further.

    Winograd mixes a tile's inputs before multiplying, so with ``check_finite``
    off a NaN can reach an output of its tile whose window misses it (the
    default checks refuse NaN and infinity first).
    """
    from scipy.ndimage import binary_dilation

    from neuroplug_core import winograd as wg

    if not wg.available():
        pytest.skip("the Winograd kernels need AVX2 and FMA")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    x[0, 3, 5, 5] = np.nan
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    y = get_ops("cpu", check_finite=False, winograd="always").conv2d(x, w, padding=1)
    with np.errstate(invalid="ignore"):
        ref = Ops(check_finite=False).conv2d(
            x.astype(np.float64), w.astype(np.float64), padding=1
        )
    assert np.isnan(y[np.isnan(ref)]).all()
    near = binary_dilation(np.isnan(ref), iterations=2)
    assert np.isfinite(y[~near]).all()


def test_cpu_workspaces_are_reused_and_released():
    cpu = get_ops("cpu")
    for case in (CONV_CASES[9], CONV_CASES[0], CONV_CASES[9]):  # grow, shrink, reuse
        check_conv_case(cpu, case, np.float32)
    cpu.release_workspaces()
    check_conv_case(cpu, CONV_CASES[1], np.float32)


def test_cpu_ops_pickle():
    cpu = get_ops("cpu", n_threads=1)
    check_conv_case(cpu, CONV_CASES[0], np.float32)
    clone = pickle.loads(pickle.dumps(cpu))
    assert clone.n_threads == 1
    check_conv_case(clone, CONV_CASES[1], np.float32)


def test_cpu_results_are_fresh_arrays():
    cpu = get_ops("cpu")
    x, w, b, dy, kw = conv_data(CONV_CASES[1], np.float32)
    y1 = cpu.conv2d(x, w, b, **kw)
    y2 = cpu.conv2d(x, w, b, **kw)
    assert y1 is not y2 and not np.shares_memory(y1, y2)
    assert y1.flags.c_contiguous and y1.flags.writeable


def test_cpu_rejects_zero_threads():
    with pytest.raises(ValueError, match="n_threads=0"):
        get_ops("cpu", n_threads=0)


# ---------------------------------------------------------------------------
# Element-wise ops that backends override for speed (the cpu backend does)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [7, 300_001])  # one thread; several threads and blocks
def test_relu_matches_reference_exactly(ops, dtype, size):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(size).astype(dtype)
    dy = rng.standard_normal(size).astype(dtype)
    x[:4] = [-1.0, 0.0, 2.0, -2.0]
    if isinstance(ops, CythonOps):
        # The cpu backend also keeps the reference's arithmetic on NaN, inf and -0.0
        # (torch's relu keeps -0.0, and its fused threshold_backward passes dy where y is NaN).
        x[:7] = [np.nan, -1.0, 0.0, -0.0, 2.0, np.inf, -np.inf]
        dy[:7] = [1.0, np.nan, np.inf, 3.0, 4.0, 5.0, -np.inf]
    ref = Ops(check_finite=False)
    with np.errstate(invalid="ignore"):
        want_y, want_dx = ref.relu(x), ref.relu_backward(x, dy)
        got_y = ops.to_numpy(ops.relu(ops.asarray(x)))
        got_dx = ops.to_numpy(ops.relu_backward(ops.asarray(x), ops.asarray(dy)))
    assert got_y.dtype == got_dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got_y, want_y)  # NaN where the reference has NaN
    np.testing.assert_array_equal(got_dx, want_dx)
    if isinstance(ops, CythonOps):
        assert not np.signbit(got_y[3])  # relu(-0.0) is +0.0, as np.maximum(x, 0)
    # Strided views take the reference's path and give the same numbers.
    np.testing.assert_array_equal(
        ops.to_numpy(ops.relu(ops.asarray(x.reshape(-1, 1)[::2, 0]))), want_y[::2]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_overrides_match_reference(ops, dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 4, 5, 6)) * 30).astype(dtype)
    big = 800.0 if dtype == np.float64 else 100.0
    x.flat[:7] = [
        0.0,
        -0.0,
        1e-30,
        -big,
        big,
        -30.0,
        30.0,
    ]  # no overflow, tiny tails kept
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = REF.sigmoid(x.astype(np.float64))
    got = ops.to_numpy(ops.sigmoid(ops.asarray(x)))
    assert got.dtype == np.dtype(dtype)
    # relative accuracy down to the smallest normal number (subnormals carry fewer digits)
    np.testing.assert_allclose(
        got, y, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=np.finfo(dtype).tiny
    )
    y32 = y.astype(dtype)
    for name in ("sigmoid_backward", "tanh_backward"):
        out = ops.to_numpy(getattr(ops, name)(ops.asarray(y32), ops.asarray(dy)))
        assert out.dtype == np.dtype(dtype)
        assert_close(
            out,
            getattr(REF, name)(y32.astype(np.float64), dy.astype(np.float64)),
            dtype,
        )
