"""Spark MLlib's GaussianMixture against gaussmix on the same data, K = 16, full covariance.

Data: ``--n`` rows x 16 features from a 16-component mixture
(``bench_em.make_mixture``, well separated), then put on mixed scales as
real tables often are: column ``j`` is multiplied by a scale log-uniform in
[1e-2, 1e3] and shifted by an offset uniform in [-1e3, 1e3] ("raw").  The
"standardised" version is the raw data centred and divided by each column's
standard deviation.  Each version is written once to Parquet.

Per version:

- Spark: ``pyspark.ml.clustering.GaussianMixture(k=16, seed=0)`` in
  ``local[2]``, reading the Parquet file (``VectorAssembler``).  Spark stops
  when the *total* log-likelihood gains less than ``tol``; ``tol = 1e-3 * n``
  is gaussmix's default criterion (1e-3 on the mean), ``--spark-max-iter``
  caps the iterations (100, gaussmix's default).  Its fitted weights, means
  and covariances (``weights``, ``gaussiansDF``) are scored by gaussmix on
  the same rows (mean log-likelihood); components with weight < 1e-3
  count as collapsed.
- gaussmix: ``GaussianMixture(16, random_state=0)`` (default k-means start
  from a 1e5-row sample, tol 1e-3, max_iter 100) on the same rows as a dask
  array on a 2-worker ``LocalCluster`` (processes, one thread each), the
  counterpart of ``local[2]``; its time includes the start.

Run from the repository root (needs ``pip install pyspark`` and Java 17)::

    /work/venv/bin/python bench/bench_spark.py --n 1e6
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import make_mixture  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402

K = 16
COLLAPSED_WEIGHT = 1e-3


def datasets(n: int, d: int) -> dict[str, np.ndarray]:
    """The raw (mixed scales) and standardised versions of one sample."""
    X = make_mixture(n, d, K, 10.0, seed=0)
    rng = np.random.default_rng(1)
    X *= np.exp(rng.uniform(np.log(1e-2), np.log(1e3), d))
    X += rng.uniform(-1e3, 1e3, d)
    standardised = (X - X.mean(axis=0)) / X.std(axis=0)
    return {"raw": X, "standardised": standardised}


def write_parquet(X: np.ndarray, path: Path, rows_per_group: int = 1_000_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"x{j}" for j in range(X.shape[1])]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, X.shape[0], rows_per_group):
            block = X[start:start + rows_per_group]
            writer.write_table(pa.table({name: block[:, j] for j, name in enumerate(names)}))


def distinct(means: np.ndarray) -> int:
    """Components left after merging those with (almost) the same mean."""
    scale = np.max(np.abs(means)) or 1.0
    return len(np.unique(np.round(means / scale, 6), axis=0))


def score_params(X, weights, means, covariances) -> tuple[float, str]:
    """gaussmix's mean log-likelihood of ``X`` under the given mixture."""
    try:
        precisions = np.linalg.inv(covariances)
        np.linalg.cholesky(precisions)
    except np.linalg.LinAlgError:
        return float("nan"), "a covariance is not positive definite"
    model = GaussianMixture(len(weights), max_iter=0, weights_init=weights / weights.sum(),
                            means_init=means, precisions_init=precisions)
    try:
        model.fit(X[:1000])  # max_iter=0: the parameters stay as given
    except ValueError as error:
        return float("nan"), str(error)
    return model.score(X), ""


def run_spark(parquet: Path, n: int, X: np.ndarray, max_iter: int, memory: str) -> dict:
    from pyspark.ml.clustering import GaussianMixture as SparkGaussianMixture
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("bench_spark")
             .config("spark.driver.memory", memory)
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        frame = spark.read.parquet(str(parquet))
        features = VectorAssembler(inputCols=frame.columns, outputCol="features").transform(frame)
        features = features.select("features")
        estimator = SparkGaussianMixture(k=K, seed=0, tol=1e-3 * n, maxIter=max_iter)
        begin = time.perf_counter()
        model = estimator.fit(features)
        seconds = time.perf_counter() - begin
        summary = model.summary
        weights = np.asarray(model.weights, dtype=np.float64)
        rows = model.gaussiansDF.collect()
        means = np.stack([row["mean"].toArray() for row in rows])
        covariances = np.stack([row["cov"].toArray() for row in rows])
        n_iter, spark_ll = summary.numIter, summary.logLikelihood / n
    finally:
        spark.stop()
    score, problem = score_params(X, weights, means, covariances)
    return {"seconds": seconds, "n_iter": n_iter, "spark_mean_log_likelihood": spark_ll,
            "gaussmix_score": score, "score_problem": problem,
            "collapsed": int(np.sum(weights < COLLAPSED_WEIGHT)),
            "distinct": distinct(means), "min_weight": float(weights.min())}


def run_gaussmix(X: np.ndarray, workers: int) -> dict:
    import dask
    import dask.array as da
    import distributed

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None, silence_logs=logging.ERROR) \
            as cluster, distributed.Client(cluster) as client:
        block_rows = 524_288
        futures = client.scatter([X[i:i + block_rows] for i in range(0, len(X), block_rows)])
        X_dask = da.concatenate([
            da.from_delayed(f, shape=(min(block_rows, len(X) - i), X.shape[1]), dtype=X.dtype)
            for f, i in zip(futures, range(0, len(X), block_rows))])
        model = GaussianMixture(K, random_state=0)
        begin = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X_dask)
        seconds = time.perf_counter() - begin
    return {"seconds": seconds, "n_iter": model.n_iter_, "converged": bool(model.converged_),
            "lower_bound": model.lower_bound_, "gaussmix_score": model.score(X),
            "collapsed": int(np.sum(model.weights_ < COLLAPSED_WEIGHT)),
            "distinct": distinct(model.means_), "min_weight": float(model.weights_.min())}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--spark-max-iter", type=int, default=100)
    parser.add_argument("--spark-memory", default="8g")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--versions", nargs="+", default=["raw", "standardised"])
    parser.add_argument("--skip-gaussmix", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    n = int(args.n)
    results: dict = {"n": n, "d": args.d, "k": K, "spark_max_iter": args.spark_max_iter}
    with tempfile.TemporaryDirectory(prefix="bench_spark-") as folder:
        for version, X in datasets(n, args.d).items():
            if version not in args.versions:
                continue
            parquet = Path(folder) / f"{version}.parquet"
            write_parquet(X, parquet)
            spark = run_spark(parquet, n, X, args.spark_max_iter, args.spark_memory)
            print(f"{version} spark: {spark}", flush=True)
            gm = None if args.skip_gaussmix else run_gaussmix(X, args.workers)
            print(f"{version} gaussmix: {gm}", flush=True)
            results[version] = {"spark": spark, "gaussmix": gm}
            parquet.unlink()

    print(f"\nN = {n}, D = {args.d}, K = {K}, full covariance\n")
    print("| data | library | seconds | iterations | mean log-lik (gaussmix score) "
          "| collapsed (w < 1e-3) | distinct means | min weight |")
    print("|---|---|---|---|---|---|---|---|")
    for version in args.versions:
        for library in ("spark", "gaussmix"):
            r = results[version][library]
            if r is None:
                continue
            note = f" ({r['score_problem']})" if r.get("score_problem") else ""
            print(f"| {version} | {library} | {r['seconds']:.1f} | {r['n_iter']} "
                  f"| {r['gaussmix_score']:.6g}{note} | {r['collapsed']} | {r['distinct']} "
                  f"| {r['min_weight']:.3g} |")
    path = args.json or Path(__file__).resolve().parent / "results" / (
        "bench_spark-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    results["loadavg"] = os.getloadavg()
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":  # dask worker processes import this module: keep the guard
    main()
