"""``gaussmix fit`` and ``gaussmix select``: read data, fit or select, write results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

from ._cli_data import Table, UsageError, read_table, refuse_overwriting, write_table
from ._cli_model import Preprocessing, log_likelihood_quantiles, row_log_likelihood
from ._progress import ProgressBar
from .acceleration import supported_acceleration
from .covariance import covariance_model_names, get_covariance_model
from .estimator import GaussianMixture
from .validation import check_squares_in_range

__all__ = ["cmd_fit", "cmd_select"]

# Pair plots grow as D^2 panels; beyond this many features they are unreadable.
_MAX_PAIR_FEATURES = 6


# ------------------------------------------------------------ option values
def covariance_types(text: str, n_features: int, single: bool) -> list[str]:
    """The models named by ``--covariance``; ``all`` is every registered one once."""
    from .selection import _check_covariance_types, default_covariance_types

    names = [t.strip() for t in text.split(",")]
    if names == ["all"]:
        names = list(default_covariance_types(n_features))
    unknown = [n for n in names if n not in covariance_model_names()]
    if unknown:
        raise UsageError(
            f"unknown covariance model(s) {', '.join(map(repr, unknown))}; choose from "
            f"all, {', '.join(covariance_model_names())}"
        )
    if single and len(names) > 1:
        raise UsageError(
            f"--covariance {text!r} names {len(names)} models but --k is fixed; give one "
            "model, or compare them with --k auto"
        )
    try:
        return _check_covariance_types(names, n_features)  # one name per model
    except ValueError as exc:
        raise UsageError(f"--covariance {text!r}: {exc}") from None


# ---------------------------------------------------------------- the work
def _fitted_space(args: argparse.Namespace, table: Table) -> tuple[Preprocessing, np.ndarray]:
    """The preprocessing (``--standardize`` or none) and the rows it gives, checked.

    Raises
    ------
    UsageError
        Where a column spans more than float64's squares hold: the library
        would refuse it and advise a scaler, which ``--standardize`` is here.
    """
    prep = Preprocessing.standardizing(table.X, table.names) if args.standardize else (
        Preprocessing()
    )
    Z = prep.transform(table.X)
    try:
        check_squares_in_range(Z)
    except ValueError:
        with np.errstate(over="ignore"):
            spans = Z.max(axis=0).astype(np.float64) - Z.min(axis=0).astype(np.float64)
        column = int(np.argmax(spans))
        raise UsageError(
            f"column {table.names[column]!r} of {table.path!r} spans {spans[column]:.3g}, "
            "more than float64's squares hold; fit with --standardize"
        ) from None
    return prep, Z


def _read(args: argparse.Namespace) -> Table:
    table = read_table(
        args.data, args.columns, args.drop_non_numeric, args.drop_missing, header=args.header
    )
    if not args.quiet:
        if table.dropped_columns:
            print(f"gaussmix: dropped non-numeric column(s): {', '.join(table.dropped_columns)}",
                  file=sys.stderr)
        if table.dropped_rows:
            print(f"gaussmix: dropped {table.dropped_rows} row(s) with missing values",
                  file=sys.stderr)
    return table


def _gmm_options(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator's options; ``tol`` and ``max_iter`` only where given.

    Left out, they take the defaults of what runs: GaussianMixture's for one
    fit, select_model's tighter ones where fits are compared.
    """
    options = {
        "n_init": args.n_init, "random_state": args.seed, "reg_covar": args.reg_covar,
        "acceleration": "squarem" if args.squarem else None,
    }  # fmt: skip
    for name in ("tol", "max_iter"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _check_rows(n_rows: int, k_max: int, path: str) -> None:
    if n_rows < max(k_max, 2):
        raise UsageError(
            f"{path!r} has {n_rows} usable row(s); K={k_max} needs at least {max(k_max, 2)} "
            "(lower --k or --k-range)"
        )


def _check_k_range(k_range: list[int], n_rows: int, path: str, quiet: bool) -> None:
    """Refuse a --k-range of which no K fits the rows; say which Ks will fail.

    As in :func:`gaussmix.select_model`, a K above the number of rows is a
    cell of the table that failed, not a reason to refuse the whole grid.
    """
    if n_rows < 2:  # select_model needs two rows whatever K
        raise UsageError(f"{path!r} has {n_rows} usable row(s); select needs at least 2")
    if min(k_range) > n_rows:
        raise UsageError(
            f"{path!r} has {n_rows} usable row(s), fewer than every K of --k-range; "
            f"K can be at most {n_rows}: use --k-range 1..{n_rows}"
        )
    too_large = [k for k in k_range if k > n_rows]
    if too_large and not quiet:
        print(f"gaussmix: {n_rows} usable row(s) allow K up to {n_rows}; the cells with "
              f"K={','.join(map(str, too_large))} are reported as failed", file=sys.stderr)


def _select(args: argparse.Namespace, Z: np.ndarray, table: Table):
    from .selection import select_model

    _check_k_range(args.k_range, Z.shape[0], table.path, args.quiet)
    types = covariance_types(args.covariance or "all", Z.shape[1], single=False)
    n_cells = len(types) * len(args.k_range)
    with ProgressBar(n_cells, "selecting", enabled=False if args.quiet else None) as bar:
        def progress(n_done: int, n_cells: int, row: dict) -> None:
            bar.update(n_done, f"{row['covariance_type']} K={row['n_components']}")

        result = select_model(
            Z, args.k_range, types, criterion=args.criterion, n_jobs=args.n_jobs,
            progress=progress, **_gmm_options(args),
        )  # fmt: skip
    if result.best_estimator_ is None:
        error = next(row["error"] for row in result.table if row["error"])
        raise UsageError(f"no (model, K) of the grid could be fitted; the first failure: {error}")
    return result


def _fit_one(args: argparse.Namespace, Z: np.ndarray, table: Table) -> GaussianMixture:
    from ._reporting import fit_progress

    _check_rows(Z.shape[0], args.k, table.path)
    (covariance,) = covariance_types(args.covariance or "full", Z.shape[1], single=True)
    options = _gmm_options(args)
    options["acceleration"] = supported_acceleration(
        options["acceleration"], get_covariance_model(covariance)
    )
    gmm = GaussianMixture(args.k, covariance_type=covariance, **options)
    max_iter = max(gmm.max_iter, 1)
    total = args.n_init * max_iter
    with ProgressBar(total, "fitting", enabled=False if args.quiet else None) as bar:
        def progress(event: str, init: int, n_iter: int) -> None:
            done = (init + 1) * max_iter if event == "end" else init * max_iter + n_iter
            bar.update(done, f"start {init + 1}/{args.n_init}, iteration {n_iter}")

        try:
            with fit_progress(progress):
                gmm.fit(Z)
        except ValueError as exc:
            raise UsageError(f"the fit failed: {exc} (see --reg-covar, --k)") from exc
    return gmm


def _selection_rows(result) -> tuple[list[str], list[list[str]]]:
    best = (result.best_params_["covariance_type"], result.best_params_["n_components"])
    headers = ["model", "K", "log-lik", "params", "BIC", "AIC", "ICL", "converged", ""]
    rows = []
    for row in result.table:
        key = (row["covariance_type"], row["n_components"])
        failed = row["error"] is not None
        rows.append([
            row["covariance_type"], str(row["n_components"]),
            *("failed" if failed else f"{row[c]:.2f}" for c in ("log_likelihood",)),
            str(row["n_parameters"]),
            *("-" if failed else f"{row[c]:.2f}" for c in ("bic", "aic", "icl")),
            "yes" if row["converged"] else "no",
            f"<- best by {result.criterion.upper()}" if key == best else "",
        ])  # fmt: skip
    return headers, rows


def _json_table(result) -> list[dict]:
    def clean(value):
        return None if isinstance(value, float) and not np.isfinite(value) else value

    return [{k: clean(v) for k, v in row.items()} for row in result.table]


# --------------------------------------------------------------- the output
def _save_figure(draw, path: str, figsize: tuple[float, float], grid=(1, 1)) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(*grid, squeeze=grid == (1, 1))
    draw(axes)
    fig.savefig(path, dpi=100)


def _plottable(gmm: GaussianMixture, names: list[str]) -> GaussianMixture:
    """A copy with feature names, which label the axes.

    The copy keeps the model's own ``covariance_type``: the plots read every
    model's covariances by its kernel family, and a fitted model refuses to
    predict under another name than its own.
    """
    import copy

    plottable = copy.copy(gmm)
    plottable.feature_names_in_ = np.asarray(names, dtype=object)
    return plottable


def _plots(out: str, gmm: GaussianMixture, Z: np.ndarray, result, names) -> list[str]:
    import warnings

    with warnings.catch_warnings():
        # The plots predict on the plain array Z with a model that has names.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return _draw_plots(out, _plottable(gmm, names), Z, result)


def _draw_plots(out: str, gmm: GaussianMixture, Z: np.ndarray, result) -> list[str]:
    from . import plotting

    written = []

    def save(name, draw, figsize, grid=(1, 1)):
        path = os.path.join(out, name)
        _save_figure(draw, path, figsize, grid)
        written.append(path)

    d = Z.shape[1]
    if d == 1:
        save("density.png", lambda ax: plotting.plot_density(gmm, Z, ax=ax), (7, 5))
    elif d == 2:
        save("clusters.png", lambda ax: plotting.plot_clusters(gmm, Z, ax=ax), (7, 6))
    elif d > 2:
        shown = list(range(min(d, _MAX_PAIR_FEATURES)))
        size = 2.2 * len(shown)
        save("pairs.png", lambda axes: plotting.plot_pairs(gmm, Z, features=shown, axes=axes),
             (size, size), (len(shown), len(shown)))
    # One feature: the uncertainty against it, as mclust draws it.
    save("uncertainty.png", lambda ax: plotting.plot_uncertainty(gmm, Z, ax=ax), (7, 6))
    if len(gmm.lower_bounds_):
        save("log_likelihood.png", lambda ax: plotting.plot_log_likelihood_trace(gmm, ax=ax),
             (7, 4.5))
    if result is not None:
        save("criterion.png", lambda ax: result.plot(ax=ax), (8, 5))
    return written


def _write_json(document: Any, path: str) -> None:
    """Strict JSON: non-finite numbers (a bound of -inf with --max-iter 0) as null."""

    def strict(value):
        if isinstance(value, dict):
            return {key: strict(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [strict(item) for item in value]
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    with open(path, "w", encoding="utf-8") as f:
        json.dump(strict(document), f, indent=2, allow_nan=False)


def _summary(gmm, table: Table, Z, X, prep, labels, ll, result, files) -> dict[str, Any]:
    k, d = gmm.means_.shape
    summary: dict[str, Any] = {
        "data": {
            "path": table.path, "n_samples": int(X.shape[0]), "columns": table.names,
            "dropped_columns": table.dropped_columns, "dropped_rows": table.dropped_rows,
            "standardized": prep.center is not None,
        },
        "model": {
            "covariance_type": gmm.covariance_type, "n_components": int(k),
            "n_features": int(d), "weights": gmm.weights_.tolist(),
            "means": gmm.means_.tolist(),
            "component_sizes": np.bincount(labels, minlength=k).tolist(),
        },
        "training": {
            "converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_),
            "lower_bound": float(gmm.lower_bound_),
            "log_likelihood": float(np.sum(ll)), "mean_log_likelihood": float(np.mean(ll)),
            "log_likelihood_quantiles": {
                str(q): float(np.quantile(ll, q)) for q in (0.001, 0.01, 0.05, 0.5)
            },
        },
        "criteria": {"bic": gmm.bic(Z), "aic": gmm.aic(Z), "icl": gmm.icl(Z)},
        "files": files,
    }  # fmt: skip
    if result is not None:
        summary["selection"] = {
            "criterion": result.criterion, "best": result.best_params_,
            "table": _json_table(result),
        }
    return summary


def _summary_text(summary: dict, names: list[str]) -> str:
    data, model, training = summary["data"], summary["model"], summary["training"]
    scaled = " (standardized)" if data["standardized"] else ""
    lines = [
        f"Fitted a {model['n_components']}-component {model['covariance_type']!r} mixture "
        f"to {data['n_samples']} rows x {model['n_features']} columns of {data['path']}.",
        f"EM {'converged' if training['converged'] else 'did NOT converge'} after "
        f"{training['n_iter']} iteration(s); mean log-likelihood per row "
        f"{training['mean_log_likelihood']:.4f}.",
    ]
    if "selection" in summary:
        best = summary["selection"]["best"]
        n_cells = len(summary["selection"]["table"])
        lines.append(
            f"Chosen by {summary['selection']['criterion'].upper()} among {n_cells} "
            f"(model, K) fits: {best['covariance_type']} with K={best['n_components']}."
        )
    shown = names[:_MAX_PAIR_FEATURES]
    rows = [
        [str(k), f"{w:.3f}", str(size), *(f"{m:.3g}" for m in mean[: len(shown)])]
        for k, (w, size, mean) in enumerate(
            zip(model["weights"], model["component_sizes"], model["means"])
        )
    ]
    from .cli import format_table

    lines += ["", f"Components{scaled}:", format_table(
        ["component", "weight", "rows", *(f"mean {n}" for n in shown)], rows
    )]  # fmt: skip
    criteria = summary["criteria"]
    lines += ["", f"BIC {criteria['bic']:.2f}   AIC {criteria['aic']:.2f}   "
              f"ICL {criteria['icl']:.2f}   (lower is better{scaled})"]
    return "\n".join(lines)


def _write_outputs(args, out: str, gmm, table: Table, Z, prep, result) -> dict:
    from .io import save

    labels = gmm.predict(Z)
    proba = gmm.predict_proba(Z)
    ll = row_log_likelihood(gmm, prep, table.X)
    ext = "parquet" if args.format == "parquet" else "csv"
    files = {"model": os.path.join(out, "model.json"),
             "assignments": os.path.join(out, f"assignments.{ext}")}
    columns = {"label": labels, **{f"proba_{k}": proba[:, k] for k in range(proba.shape[1])}}
    write_table(columns, files["assignments"])
    if not args.no_plots:
        files["plots"] = _plots(out, gmm, Z, result, table.names)
    files["summary"] = [os.path.join(out, "summary.txt"), os.path.join(out, "summary.json")]
    summary = _summary(gmm, table, Z, table.X, prep, labels, ll, result, files)
    metadata = {
        "data": {**summary["data"], "header": table.header},
        "preprocessing": prep.to_metadata(),
        "training_log_likelihood": log_likelihood_quantiles(ll),
    }
    if result is not None:
        metadata["selection"] = {"criterion": result.criterion, "best": result.best_params_}
    # Names only now: scikit-learn warns when a model with feature names
    # predicts on a plain array, as above.
    gmm.feature_names_in_ = np.asarray(table.names, dtype=object)
    save(gmm, files["model"], metadata=metadata)
    text = _summary_text(summary, table.names)
    with open(files["summary"][0], "w", encoding="utf-8") as f:
        f.write(text + "\n")
    _write_json(summary, files["summary"][1])
    return {"text": text, "files": files}


def _make_out_dir(out: str) -> None:
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory {out!r}: {exc.strerror or exc}")


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a mixture (fixed K, or selected) and write the model, labels, summary, plots."""
    refuse_overwriting(args.data, *(
        os.path.join(args.out, name)
        for name in ("model.json", "assignments.csv", "assignments.parquet",
                     "summary.txt", "summary.json")
    ))
    table = _read(args)
    prep, Z = _fitted_space(args, table)
    _make_out_dir(args.out)
    if args.k == "auto":
        result = _select(args, Z, table)
        gmm = result.best_estimator_
    else:
        result, gmm = None, _fit_one(args, Z, table)
    try:
        written = _write_outputs(args, args.out, gmm, table, Z, prep, result)
    except OSError as exc:
        raise UsageError(f"cannot write to {args.out!r}: {exc.strerror or exc}") from exc
    print(written["text"])
    files = written["files"]
    listed = [files["model"], files["assignments"], *files.get("plots", []), *files["summary"]]
    print(f"\nWrote {len(listed)} files to {args.out}/: "
          + ", ".join(os.path.basename(p) for p in listed))
    return 0


def _check_writable(*paths: str | None) -> None:
    """Refuse, before any fit, an output file whose folder does not exist."""
    for path in paths:
        if path and path != "-":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise UsageError(
                    f"cannot write {path!r}: the folder {folder!r} does not exist"
                )


def cmd_select(args: argparse.Namespace) -> int:
    """Fit every (model, K) of the grid and print the criteria table."""
    from .cli import format_table

    _check_writable(args.json, None if args.no_plot else args.plot)
    table = _read(args)
    prep, Z = _fitted_space(args, table)
    result = _select(args, Z, table)
    headers, rows = _selection_rows(result)
    best = result.best_params_
    scaled = ", standardized" if args.standardize else ""
    print(f"{len(rows)} fits on {Z.shape[0]} rows x {Z.shape[1]} columns of {table.path}"
          f"{scaled} (lower criteria are better):")
    print(format_table(headers, rows))
    print(f"\nBest by {result.criterion.upper()}: {best['covariance_type']} with "
          f"K={best['n_components']}")
    try:
        if args.json:
            _write_json({"criterion": result.criterion, "best": best,
                         "table": _json_table(result)}, args.json)
            print(f"Wrote {args.json}")
        if not args.no_plot:
            _save_figure(lambda ax: result.plot(ax=ax), args.plot, (8, 5))
            print(f"Wrote {args.plot}")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename!r}: {exc.strerror or exc}") from exc
    return 0
