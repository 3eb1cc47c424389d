"""Fit a mixture to a .npy file larger than memory should need, and to the same array in memory.

Writes an N x 16 float32 ``.npy`` file (default N = 50,000,000, 3.2 GB) drawn
from a 16-component mixture, then runs each fit in its own child process so
that the peak resident memory (``VmHWM``) belongs to that fit alone:

(a) ``file``: ``GaussianMixture(...).fit(path)``, read block by block;
(b) ``memory``: the same fit on ``np.load(path)``, the whole array in memory;
(c) ``file+kmeans`` (unless ``--no-kmeans``): the default k-means start,
    drawn from a 100,000-row sample of the file, then ``--kmeans-iters`` EM
    iterations from the file, to show that initialisation stays bounded too.

(a) and (b) use K = 16, full covariance, ``tol=0``, ``--iters`` iterations
(default 5) and the same initial weights, means and precisions: those of a
default fit on ``--init-rows`` random rows of the file (100,000 by default),
saved to a ``.npz`` next to the data and passed to both.

Prints peak RSS, seconds per EM iteration (fit time / ``n_iter_``; the
in-memory child's ``np.load`` is not timed), their ratio, the final
``lower_bound_`` (mean log-likelihood) of each and their relative difference,
and writes every figure to JSON (``--json``, by default
``bench/results/bench_out_of_core-<timestamp>.json``).  See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import gaussmix
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import gaussmix

from gaussmix import ConvergenceWarning, GaussianMixture
from gaussmix.datasets import BlockDataset
from gaussmix.sources import NpyReader

D, K = 16, 16
# Rows generated and written per step while creating the file.
_WRITE_ROWS = 1 << 20


# ----------------------------------------------------------------- the data
def _mixture(seed: int):
    """Weights, means and covariance factors of a 16-component mixture in 16-D."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=2.5, size=(K, D))
    factors = []
    for _ in range(K):
        q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        scales = np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=D))
        factors.append(q * scales)  # covariance q diag(scales^2) q^T
    return weights, means, np.array(factors)


def write_npy(path: Path, n: int, seed: int) -> float:
    """Write ``n`` float32 rows in steps, never holding the whole array; returns seconds."""
    start = time.perf_counter()
    weights, means, factors = _mixture(seed)
    rng = np.random.default_rng(seed + 1)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
              "fortran_order": False, "shape": (n, D)}
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(file, header)
        for lo in range(0, n, _WRITE_ROWS):
            rows = min(_WRITE_ROWS, n - lo)
            labels = rng.choice(K, size=rows, p=weights)
            z = rng.standard_normal((rows, D), dtype=np.float32)
            X = np.empty((rows, D), dtype=np.float32)
            for k in range(K):
                mask = labels == k
                X[mask] = z[mask] @ factors[k].T.astype(np.float32) + means[k].astype(np.float32)
            X.tofile(file)
    return time.perf_counter() - start


def initial_parameters(path: Path, init_rows: int, seed: int, out: Path) -> float:
    """A default fit on random rows of the file, saved as ``*_init`` arrays; returns seconds."""
    start = time.perf_counter()
    reader = NpyReader(path)
    rng = np.random.RandomState(seed)
    rows = np.sort(rng.choice(reader.n_samples, size=min(init_rows, reader.n_samples),
                              replace=False))
    sample = reader.take(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(K, covariance_type="full", random_state=seed).fit(sample)
    np.savez(out, weights=gm.weights_, means=gm.means_, precisions=gm.precisions_)
    return time.perf_counter() - start


# ------------------------------------------------------------ child process
def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes; None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int:
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    # ru_maxrss is in kB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _current_rss_bytes() -> int:
    return _proc_status_bytes("VmRSS") or 0


def _cpu_seconds() -> float:
    """User and system CPU time of this process, all threads: less sensitive
    than wall time to other work on a shared machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, path: str, init: str, iters: int, block_rows: int | None,
          seed: int) -> dict:
    """One fit, in this process; returns its figures."""
    result = {"mode": mode, "rss_after_imports": _current_rss_bytes()}
    if mode == "file+kmeans":
        estimator = GaussianMixture(K, covariance_type="full", tol=0, max_iter=iters,
                                    random_state=seed)
    else:
        start = np.load(init)
        estimator = GaussianMixture(
            K, covariance_type="full", tol=0, max_iter=iters,
            weights_init=start["weights"], means_init=start["means"],
            precisions_init=start["precisions"],
        )
    if mode == "memory":
        load_start = time.perf_counter()
        X = np.load(path)
        result["load_s"] = time.perf_counter() - load_start
    else:
        X = path if block_rows is None else BlockDataset(NpyReader(path), block_rows=block_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cpu_start, fit_start = _cpu_seconds(), time.perf_counter()
        estimator.fit(X)
        result["fit_s"] = time.perf_counter() - fit_start
        result["cpu_s"] = _cpu_seconds() - cpu_start
    result.update(
        n_iter=int(estimator.n_iter_),
        s_per_iter=result["fit_s"] / max(estimator.n_iter_, 1),
        cpu_s_per_iter=result["cpu_s"] / max(estimator.n_iter_, 1),
        lower_bound=float(estimator.lower_bound_),
        lower_bounds=[float(v) for v in estimator.lower_bounds_],
        peak_rss=_peak_rss_bytes(),
    )
    return result


def run_child(args, mode: str, path: Path, init: Path, iters: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--path", str(path),
               "--init-file", str(init), "--iters", str(iters), "--seed", str(args.seed)]
    if args.block_rows:
        command += ["--block-rows", str(args.block_rows)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"The {mode} child failed with status {done.returncode}.")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------- report
def _gb(n_bytes: float) -> float:
    return n_bytes / 1e9


def report(results: dict, file_bytes: int) -> None:
    print(f"\ndata file: {_gb(file_bytes):.2f} GB")
    print(f"{'fit':<13}{'peak RSS GB':>12}{'RSS at start GB':>16}{'s/iter':>9}"
          f"{'CPU s/iter':>11}{'iters':>6}{'final LL':>14}")
    for mode, r in results.items():
        print(f"{mode:<13}{_gb(r['peak_rss']):>12.3f}{_gb(r['rss_after_imports']):>16.3f}"
              f"{r['s_per_iter']:>9.2f}{r['cpu_s_per_iter']:>11.2f}{r['n_iter']:>6d}"
              f"{r['lower_bound']:>14.6f}")
    a, b = results["file"], results["memory"]
    rel = abs(a["lower_bound"] - b["lower_bound"]) / max(abs(a["lower_bound"]),
                                                         abs(b["lower_bound"]))
    print(f"\nfile / memory: peak RSS {a['peak_rss'] / b['peak_rss']:.3f}, "
          f"s/iter {a['s_per_iter'] / b['s_per_iter']:.3f}, "
          f"CPU s/iter {a['cpu_s_per_iter'] / b['cpu_s_per_iter']:.3f}; "
          f"final LL relative difference {rel:.2e}")
    print(f"in-memory np.load: {b.get('load_s', float('nan')):.1f} s (not in s/iter)")
    results["summary"] = {
        "peak_rss_ratio_file_over_memory": a["peak_rss"] / b["peak_rss"],
        "s_per_iter_ratio_file_over_memory": a["s_per_iter"] / b["s_per_iter"],
        "cpu_s_per_iter_ratio_file_over_memory": a["cpu_s_per_iter"] / b["cpu_s_per_iter"],
        "lower_bound_rel_diff": rel,
        "file_peak_rss_below_1GB": a["peak_rss"] < 1e9,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=50_000_000, help="rows (default 5e7)")
    parser.add_argument("--iters", type=int, default=5, help="EM iterations of (a), (b)")
    parser.add_argument("--kmeans-iters", type=int, default=2, help="EM iterations of (c)")
    parser.add_argument("--init-rows", type=int, default=100_000)
    parser.add_argument("--block-rows", type=int, default=None,
                        help="rows per block of the file fits (default: gaussmix's)")
    parser.add_argument("--no-kmeans", action="store_true", help="skip (c)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--init-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.path, args.init_file, args.iters,
                               args.block_rows, args.seed)))
        return

    n = int(args.n)
    folder = Path(tempfile.mkdtemp(prefix="gaussmix-ooc-", dir=args.dir))
    path, init = folder / f"mixture-{n}x{D}-float32.npy", folder / "init.npz"
    print(f"gaussmix {gaussmix.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, "
          f"EM threads {gaussmix.get_num_threads()}, load {os.getloadavg()}")
    print(f"N={n}, D={D}, K={K}, full covariance, float32, tol=0, iters={args.iters}, "
          f"data in {folder}")
    record = {"n": n, "d": D, "k": K, "iters": args.iters, "seed": args.seed,
              "block_rows": args.block_rows, "cpus": os.cpu_count(),
              "threads": gaussmix.get_num_threads(),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        record["write_s"] = write_npy(path, n, args.seed)
        file_bytes = path.stat().st_size
        print(f"wrote {_gb(file_bytes):.2f} GB in {record['write_s']:.0f} s")
        record["init_s"] = initial_parameters(path, args.init_rows, args.seed, init)
        print(f"initial parameters from {args.init_rows} rows in {record['init_s']:.0f} s")
        results = {}
        modes = ["file", "memory"] + ([] if args.no_kmeans else ["file+kmeans"])
        for mode in modes:
            iters = args.kmeans_iters if mode == "file+kmeans" else args.iters
            results[mode] = run_child(args, mode, path, init, iters)
            results[mode]["load_after"] = os.getloadavg()
            print(f"  {mode}: {results[mode]['fit_s']:.1f} s, load {os.getloadavg()[0]:.1f}, peak RSS "
                  f"{_gb(results[mode]['peak_rss']):.3f} GB", flush=True)
        report(results, file_bytes)
        record.update(results=results, file_bytes=file_bytes, load_end=os.getloadavg())
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    out = args.json or Path(__file__).parent / "results" / (
        "bench_out_of_core-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
