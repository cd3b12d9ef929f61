"""A long Hypothesis fuzz run of every compiled kernel and both file loaders, outside the test suite.

Runs tests/test_fuzz_kernels.py (the CythonOps entry points against the
NumPy reference, spoiled inputs refused with ValueError/TypeError) and
tests/test_fuzz_loaders.py (damaged and forged model and IDX files refused
with ModelFormatError/ValueError, in bounded memory) with many more examples
than CI uses and a random seed, then prints how many examples each test ran
and the verdict::

    python benchmarks/fuzz_long.py                      # 2000 examples per test
    python benchmarks/fuzz_long.py --target loaders     # only neuroplug.load and load_idx
    python benchmarks/fuzz_long.py --examples 10000 --seed 123
    NEUROPLUG_DEBUG=1 python setup.py build_ext --inplace && python benchmarks/fuzz_long.py
                                                        # with Cython bounds checks on

The exit status is non-zero when any example failed; Hypothesis prints the
shrunk failing example above the summary.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "kernels": "tests/test_fuzz_kernels.py",
    "loaders": "tests/test_fuzz_loaders.py",
}
_TEST = re.compile(r"^\S*test_fuzz_\w+\.py::(\w+):\s*$")
# Hypothesis before 6.1xx: "12 passing examples, 0 failing examples, 1 invalid examples";
# 6.170: "12 passing, 0 failing, and 1 invalid test cases".
_COUNTS = re.compile(
    r"(\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?,? (?:and )?(\d+) invalid"
)


def parse_statistics(text: str) -> dict[str, list[int]]:
    """``{test: [passing, failing, invalid]}`` summed over Hypothesis' phases, from ``--hypothesis-show-statistics``."""
    stats: dict[str, list[int]] = {}
    current = None
    for line in text.splitlines():
        m = _TEST.match(line.strip())
        if m:
            current = m.group(1)
            stats.setdefault(current, [0, 0, 0])
            continue
        m = _COUNTS.search(line)
        if m and current is not None:
            for i in range(3):
                stats[current][i] += int(m.group(i + 1))
    return stats


def main(argv: list[str] | None = None) -> int:
    """Run the long fuzz session; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", type=int, default=2000, help="examples per op (default: 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="Hypothesis seed (default: random)"
    )
    parser.add_argument(
        "-k",
        dest="keyword",
        default=None,
        help="only the ops whose test name matches (pytest -k)",
    )
    parser.add_argument(
        "--target",
        choices=(*MODULES, "all"),
        default="all",
        help="fuzz the compiled kernels, the file loaders (neuroplug.load, load_idx) or both (default)",
    )
    args = parser.parse_args(argv)

    env = dict(
        os.environ,
        NEUROPLUG_FUZZ_EXAMPLES=str(args.examples),
        NEUROPLUG_FUZZ_RANDOM="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    modules = list(MODULES.values()) if args.target == "all" else [MODULES[args.target]]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *modules,
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
    ]
    if args.seed is not None:
        cmd.append(f"--hypothesis-seed={args.seed}")
    if args.keyword:
        cmd += ["-k", args.keyword]
    print(f"$ {' '.join(cmd)}  (NEUROPLUG_FUZZ_EXAMPLES={args.examples})", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    stats = parse_statistics(proc.stdout)
    failed_tests = set(re.findall(r"FAILED \S*::(\w+)", proc.stdout))
    if proc.returncode not in (0, 1) or not stats:
        print(proc.stdout[-5000:], proc.stderr[-3000:], sep="\n")
        print(
            f"fuzz_long: pytest exited with status {proc.returncode} and no statistics"
        )
        return proc.returncode or 1
    if failed_tests:
        # The shrunk failing examples, as Hypothesis reported them.
        print(proc.stdout[: proc.stdout.find("Hypothesis Statistics")][-20000:])
    width = max(len(name) for name in stats)
    print(
        f"\n{'op test':<{width}}  {'passing':>8}  {'failing':>7}  {'invalid':>7}  verdict"
    )
    totals = [0, 0, 0]
    for name in sorted(stats):
        passing, failing, invalid = stats[name]
        totals = [t + v for t, v in zip(totals, stats[name])]
        verdict = "FAIL" if name in failed_tests or failing else "ok"
        print(f"{name:<{width}}  {passing:>8}  {failing:>7}  {invalid:>7}  {verdict}")
    print(f"{'total':<{width}}  {totals[0]:>8}  {totals[1]:>7}  {totals[2]:>7}")
    seed = re.search(r"hypothesis-seed=(\d+)", proc.stdout)
    print(
        f"\n{len(stats)} ops, {totals[0]} passing examples, {len(failed_tests)} failing op(s) "
        f"in {elapsed:.0f} s; max_examples={args.examples}"
        + (
            f", seed={args.seed}"
            if args.seed is not None
            else (f", seed={seed.group(1)}" if seed else ", random seed")
        )
    )
    return 1 if failed_tests or proc.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
