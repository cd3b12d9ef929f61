"""Benchmark of the compiled conv/pool kernels against PyTorch CPU and a plain NumPy im2col.

Not a test: run it by hand on an otherwise idle machine,

    python benchmarks/bench_kernels.py [--threads 1 2] [--repeat 15] [--shapes a b c] [--stat median|min]

For each thread count it times, in float32 and NCHW:

* a float32 GEMM (2048^3, NumPy's BLAS) for the machine's GEMM peak;
* conv2d forward, and forward + backward (input, weight and bias gradients),
  on three LeNet/CIFAR-sized layers:
  (a) batch 128, 1x28x28, 20 filters 5x5;
  (b) batch 128, 20x12x12, 50 filters 5x5;
  (c) batch 64, 32x32x32, 64 filters 3x3, padding 1;
* 2x2 max pooling forward + backward on each layer's output,

for neuroplug's ``cpu`` backend (``CythonOps``), PyTorch (``F.conv2d`` /
``F.max_pool2d`` with autograd, when torch is installed) and a plain NumPy
im2col (sliding windows + one matmul; pooling: the NumPy reference Ops),
all in the same process, the implementations taking turns in blocks of
calls (see ``interleaved``), so that a busy machine slows them alike.  It prints medians (or
minima), GFLOP/s,
the ratio neuroplug / torch (< 1 is faster) and the fraction of the GEMM
peak, then the targets of issue 3 at the largest thread count.

neuroplug runs with ``check_finite=False``, as a network runs its inner
layers (the input check is one extra pass over the input).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from neuroplug.backends import get_ops  # noqa: E402
from neuroplug.ops import Ops  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch columns are left out
    torch = None

SHAPES = {
    "a": dict(n=128, c=1, h=28, w=28, f=20, k=5, pad=0),
    "b": dict(n=128, c=20, h=12, w=12, f=50, k=5, pad=0),
    "c": dict(n=64, c=32, h=32, w=32, f=64, k=3, pad=1),
}

# Issue 3 targets at the largest thread count: (what, limit on neuroplug / torch).
TARGETS = {
    "fwd": {"a": 1.0, "b": 1.0, "c": 1.0},
    "fwd+bwd": {"a": 0.5, "b": 0.5, "c": 1.0},
    "pool": {"a": 1.0, "b": 1.0, "c": 1.0},
}


STAT = statistics.median
SETTLE_S = 0.3


def interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, rounds: int = 3
) -> dict[str, float]:
    """Seconds per call of each function (median, or ``--stat min``) over ``repeat`` timed calls.

    The implementations take turns in ``rounds`` blocks of calls, each block
    after one untimed call, so that a busy machine slows them alike.  They
    do not alternate call by call: each library keeps its own thread pool
    (neuroplug's libgomp, PyTorch's bundled OpenMP, NumPy's OpenBLAS), whose
    threads busy-wait for a while after a call, and on a 2-core machine the
    call that follows another library's would find its cores taken.  Each
    block starts after a pause of ``SETTLE_S`` for the same reason.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for name, fn in fns.items():
            # Let the threads of the library that ran before stop spinning
            # (OpenBLAS spins for about 0.1 s after a call, OpenMP for less).
            time.sleep(SETTLE_S)
            fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: STAT(ts) for name, ts in times.items()}


# ---------------------------------------------------------------------------
# Plain NumPy im2col convolution (stride 1), the baseline a NumPy user writes
# ---------------------------------------------------------------------------
def np_conv_forward(x, w, b, pad):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n, c, oh, ow, kh, kw
    oh, ow = win.shape[2], win.shape[3]
    col = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)  # copies
    y = col @ w.reshape(f, -1).T + b  # (n*oh*ow, f)
    return np.ascontiguousarray(y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)), col


def np_conv_backward(dy, x, w, col, pad):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = dy.shape[2], dy.shape[3]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(n * oh * ow, f)
    dw = (dy2.T @ col).reshape(w.shape)
    db = dy2.sum(axis=0)
    dcol = (dy2 @ w.reshape(f, -1)).reshape(n, oh, ow, c, kh, kw)
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + oh, j : j + ow] += dcol[:, :, :, :, i, j].transpose(
                0, 3, 1, 2
            )
    return dxp[:, :, pad : pad + h, pad : pad + wd], dw, db


def gemm_gflops(threads: int, repeat: int) -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        t = interleaved({"gemm": lambda: a @ a}, max(3, repeat // 3))["gemm"]
    return 2 * 2048**3 / t / 1e9


def bench(threads: int, repeat: int, shapes: list[str]) -> dict:
    ops = get_ops("cpu", n_threads=threads, check_finite=False)
    ref = Ops(check_finite=False)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    results = {"gemm": gemm_gflops(threads, repeat)}
    print(
        f"\n=== {threads} thread(s): float32 GEMM 2048^3 (NumPy BLAS) {results['gemm']:.0f} GFLOP/s ==="
    )
    header = f"{'':4}{'op':9}{'neuroplug ms':>13}{'GFLOP/s':>9}{'torch ms':>10}{'numpy ms':>10}{'np/torch':>10}{'of peak':>9}"
    print(header)
    for name in shapes:
        s = SHAPES[name]
        n, c, h, w, f, k, pad = (
            s[key] for key in ("n", "c", "h", "w", "f", "k", "pad")
        )
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        wt = (rng.standard_normal((f, c, k, k), dtype=np.float32) * 0.1).astype(
            np.float32
        )
        b = rng.standard_normal(f, dtype=np.float32)
        y = ops.conv2d(x, wt, b, padding=pad)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        flops = 2.0 * n * f * y.shape[2] * y.shape[3] * c * k * k

        def np_fwd():
            return ops.conv2d(x, wt, b, padding=pad)

        def np_fb():
            ops.conv2d(x, wt, b, padding=pad)
            ops.conv2d_backward_input(dy, wt, x.shape, padding=pad)
            ops.conv2d_backward_weights(dy, x, wt.shape, padding=pad)

        def nump_fwd():
            return np_conv_forward(x, wt, b, pad)

        def nump_fb():
            _, col = np_conv_forward(x, wt, b, pad)
            np_conv_backward(dy, x, wt, col, pad)

        def np_pool():
            p, am = ops.maxpool2d(y, 2)
            ops.maxpool2d_backward(p, am, y.shape)

        def ref_pool():
            p, am = ref.maxpool2d(y, 2)
            ref.maxpool2d_backward(p, am, y.shape)

        fwd = {"neuroplug": np_fwd, "numpy": nump_fwd}
        fb = {"neuroplug": np_fb, "numpy": nump_fb}
        pool = {"neuroplug": np_pool, "numpy": ref_pool}
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_()
            wtt = torch.from_numpy(wt).requires_grad_()
            bt = torch.from_numpy(b).requires_grad_()
            dyt = torch.from_numpy(dy)
            yt = torch.from_numpy(y).requires_grad_()

            def t_fwd():
                with torch.no_grad():
                    return F.conv2d(xt, wtt, bt, padding=pad)

            def t_fb():
                out = F.conv2d(xt, wtt, bt, padding=pad)
                out.backward(dyt)

            def t_pool():
                z = F.max_pool2d(yt, 2)
                z.backward(torch.ones_like(z))

            fwd["torch"], fb["torch"], pool["torch"] = t_fwd, t_fb, t_pool
        # The BLAS of the NumPy baseline runs on `threads` threads too.
        with threadpool_limits(limits=threads, user_api="blas"):
            t_f = interleaved(fwd, repeat)
            t_fb_ = interleaved(fb, repeat)
            t_p = interleaved(pool, repeat)
        results[name] = {"fwd": t_f, "fwd+bwd": t_fb_, "pool": t_p, "flops": flops}
        for op, t, fl in (
            ("fwd", t_f, flops),
            ("fwd+bwd", t_fb_, 3 * flops),
            ("pool", t_p, None),
        ):
            torch_ms = t.get("torch", float("nan")) * 1e3
            ratio = t["neuroplug"] / t["torch"] if "torch" in t else float("nan")
            gf = f"{fl / t['neuroplug'] / 1e9:9.0f}" if fl else f"{'':9}"
            peak = (
                f"{fl / t['neuroplug'] / 1e9 / results['gemm']:9.0%}"
                if fl
                else f"{'':9}"
            )
            print(
                f"({name}) {op:9}{t['neuroplug'] * 1e3:13.2f}{gf}{torch_ms:10.2f}{t['numpy'] * 1e3:10.2f}{ratio:10.2f}{peak}"
            )
    return results


def print_kernels(shapes: list[str]) -> None:
    """Say which shapes' products run the Winograd kernels (the others run neuroplug_core.conv)."""
    from neuroplug_core import conv, winograd

    ops = get_ops("cpu")
    simd = ops.simd != "blas" and len(conv.available_isas()) > 1
    mode = {"never": 0, "auto": 1, "always": 2}[ops.winograd]
    for name in shapes:
        s = SHAPES[name]
        n, c, h, w, f, k, pad = (
            s[key] for key in ("n", "c", "h", "w", "f", "k", "pad")
        )
        products = [
            label
            for kind, label in enumerate(
                ("forward", "input gradient", "weight gradient")
            )
            if winograd.pays(kind, n, c, h, w, f, k, k, 1, 1, pad, pad, 1, simd, mode)
        ]
        if not products:
            print(f"({name}) all products on neuroplug_core.conv")
            continue
        rest = "" if len(products) == 3 else "; the others on neuroplug_core.conv"
        print(f"({name}) on Winograd F(2x2, {k}x{k}): {', '.join(products)}{rest}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--repeat",
        type=int,
        default=15,
        help="timed rounds per measurement (median reported)",
    )
    parser.add_argument(
        "--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES)
    )
    parser.add_argument(
        "--stat",
        choices=["median", "min"],
        default="median",
        help="statistic over the rounds (min resists a busy machine better)",
    )
    args = parser.parse_args(argv)
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    from neuroplug_core import conv

    print(
        f"neuroplug cpu backend: {get_ops('cpu')!r}; float32 kernels available: "
        f"{', '.join(conv.available_isas())}"
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"torch {torch.__version__ if torch is not None else 'not installed'}"
    )
    print(
        f"times are {args.stat}s in ms; np/torch < 1 means neuroplug is faster; "
        "'of peak' = conv GFLOP/s / GEMM GFLOP/s, the conv counted as direct\n"
        "summation (2 N F C KH KW OH OW flops), so it tops 100% where a layer runs\n"
        "Winograd F(2x2, RxR), which does (R+1)^2 instead of 4 R^2 multiplications per 2x2 outputs"
    )
    print_kernels(args.shapes)
    results = {t: bench(t, args.repeat, args.shapes) for t in args.threads}
    if torch is None:
        return
    top = max(args.threads)
    print(f"\nIssue 3 targets at {top} thread(s):")
    r = results[top]
    for op, limits in TARGETS.items():
        for name, limit in limits.items():
            if name not in r:
                continue
            ratio = r[name][op]["neuroplug"] / r[name][op]["torch"]
            print(
                f"  {op:8} ({name}) neuroplug/torch {ratio:5.2f}  <= {limit:.1f}  {'ok' if ratio <= limit else 'MISSED'}"
            )
    for name in ("b", "c"):
        if name in r:
            frac = r[name]["flops"] / r[name]["fwd"]["neuroplug"] / 1e9 / r["gemm"]
            print(
                f"  fwd      ({name}) fraction of GEMM peak {frac:5.0%} >= 50%  {'ok' if frac >= 0.5 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
