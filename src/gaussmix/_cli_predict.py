"""``gaussmix predict`` and ``gaussmix info``: use and describe a model file."""

from __future__ import annotations

import argparse

import numpy as np

from ._cli_data import (
    UsageError,
    output_format,
    read_raw,
    read_table,
    refuse_overwriting,
    write_table,
)
from ._cli_model import Preprocessing, anomaly_threshold, load_model, row_log_likelihood, unnamed

__all__ = ["cmd_info", "cmd_predict"]


def _columns_for(
    model, metadata: dict, raw, data_path: str, explicit: str | None
) -> str | list[int] | None:
    """The ``--columns`` selection that lines the data up with the model's features.

    By name when both the data and the model have real column names, else by
    position (``None``: all columns, whose count is checked afterwards).
    """
    if explicit is not None:
        return explicit
    names = getattr(model, "feature_names_in_", None)
    trained_with_header = (metadata.get("data") or {}).get("header", names is not None)
    if names is None or not trained_with_header:
        return None
    if not raw.header:
        return None
    missing = [n for n in names if n not in raw.names]
    if missing:
        raise UsageError(
            f"{data_path!r} lacks the model's column(s) {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(raw.names)}"
        )
    return [raw.names.index(n) for n in names]


def _header_of_model_names(raw, model, args: argparse.Namespace):
    """``raw`` re-read with a header where its first row holds the model's column names.

    'auto' takes a first row of numbers for data, so names that are numbers
    (years, as ``--header yes`` fits them) would be predicted as a row.
    Where the model has names and the first row repeats them, in any order,
    it is the header.
    """
    names = getattr(model, "feature_names_in_", None)
    if args.header != "auto" or raw.header or raw.lines is None or names is None:
        return raw
    # Names that are not all numbers would have made 'auto' find the header;
    # the file is read again only where its first row holds the names'
    # numbers, so that their spelling is compared as text.
    try:
        numbers = sorted(float(name) for name in names)
    except ValueError:
        return raw
    first = [column[0] if isinstance(column, np.ndarray) else None for column in raw.columns]
    if None in first or sorted(first) != numbers:
        return raw
    try:
        headed = read_raw(args.data, "yes")
    except UsageError:
        return raw
    return headed if sorted(headed.names) == sorted(map(str, names)) else raw


def cmd_predict(args: argparse.Namespace) -> int:
    """Labels, probabilities and log-likelihoods of new data under a model file."""
    output_format(args.out)  # refuse an unknown --out extension before any work
    refuse_overwriting(args.data, args.out)
    model, doc = load_model(args.model)
    metadata = doc.get("metadata") or {}
    n_features = model.means_.shape[1]
    threshold = None
    if args.anomaly_threshold is not None:
        threshold = anomaly_threshold(metadata, args.anomaly_threshold, args.model)
    raw = _header_of_model_names(read_raw(args.data, args.header), model, args)
    spec = _columns_for(model, metadata, raw, args.data, args.columns)
    table = read_table(args.data, spec, drop_non_numeric=None, drop_missing=None, raw=raw)
    if table.X.shape[1] != n_features:
        raise UsageError(
            f"{args.data!r} has {table.X.shape[1]} numeric column(s) but the model expects "
            f"{n_features}; choose them with --columns"
        )
    prep = Preprocessing.from_metadata(metadata)  # checked by load_model
    Z = prep.transform(table.X)
    if not np.all(np.isfinite(Z)):
        raise UsageError(
            f"standardizing {args.data!r} with the scale stored in {args.model!r} overflows; "
            "refit the model on data in comparable units"
        )
    fitted = unnamed(model)
    with np.errstate(all="ignore"):  # rows too far out are refused below
        proba = fitted.predict_proba(Z)
        labels = fitted.predict(Z)
        ll = row_log_likelihood(model, prep, table.X)
    undefined = np.flatnonzero(np.isnan(proba).any(axis=1))
    if undefined.size:
        raise UsageError(
            f"data row {undefined[0] + 1} of {args.data!r} lies too far from every component "
            f"for {proba.dtype} (its squared distances overflow), so its probabilities are "
            f"undefined ({undefined.size} such row(s)); check the data's units"
        )
    columns = {"label": labels, **{f"proba_{k}": proba[:, k] for k in range(proba.shape[1])},
               "log_likelihood": ll}
    if threshold is not None:
        columns["anomaly"] = (ll < threshold).astype(np.int64)
    try:
        write_table(columns, args.out)
    except BrokenPipeError:
        raise  # the reader of stdout has gone, as `| head` does: main ends quietly
    except OSError as exc:
        raise UsageError(f"cannot write {args.out!r}: {exc.strerror or exc}") from exc
    if args.out != "-":
        sizes = np.bincount(labels, minlength=proba.shape[1])
        print(f"Wrote {len(labels)} predictions to {args.out} "
              f"(rows per component: {', '.join(map(str, sizes))})")
        if threshold is not None:
            n = int(columns["anomaly"].sum())
            print(f"{n} row(s) ({n / len(labels):.2%}) below the training log-likelihood's "
                  f"{args.anomaly_threshold:g} quantile ({threshold:.4f}) flagged as anomalies")
    return 0


def _compact(values, digits: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def cmd_info(args: argparse.Namespace) -> int:
    """Print what a model file holds."""
    model, doc = load_model(args.model)
    metadata = doc.get("metadata") or {}
    k, d = model.means_.shape
    names = getattr(model, "feature_names_in_", None)
    training = doc["training"]
    out = [
        f"model file:       {args.model}",
        f"format version:   {doc['format_version']} (written by gaussmix {doc['gaussmix_version']})",
        f"covariance type:  {model.covariance_type}",
        f"components (K):   {k}",
        f"features (D):     {d}",
        f"dtype:            {doc['dtype']}",
        f"feature names:    {', '.join(names) if names is not None else '(none)'}",
        f"weights:          {_compact(model.weights_)}",
        "means:",
        *(f"  {i}: {_compact(mean)}" for i, mean in enumerate(model.means_)),
        f"training:         converged={training['converged']}, n_iter={training['n_iter']}, "
        f"lower_bound={training['lower_bound']}",
    ]
    params = {key: value for key, value in doc["params"].items() if value is not None}
    out.append("params:           " + ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())))
    data = metadata.get("data")
    if data:
        out.append(f"trained on:       {data.get('path')} ({data.get('n_samples')} rows)")
    prep = metadata.get("preprocessing")
    if prep is not None:
        if prep.get("standardize"):
            out.append(f"standardized:     yes, center {_compact(prep['center'])}, "
                       f"scale {_compact(prep['scale'])}")
        else:
            out.append("standardized:     no")
    stored = metadata.get("training_log_likelihood")
    if stored:
        probs, qs = stored["probabilities"], stored["quantiles"]
        shown = ", ".join(f"{q:g}: {np.interp(q, probs, qs):.4f}" for q in (0.01, 0.05, 0.5))
        out.append(f"row log-lik:      mean {stored['mean']:.4f}; quantiles {shown} "
                   f"({len(qs)} stored, for --anomaly-threshold)")
    selection = metadata.get("selection")
    if selection:
        best = selection["best"]
        out.append(f"selected by:      {selection['criterion'].upper()} "
                   f"({best['covariance_type']}, K={best['n_components']})")
    other = sorted(set(metadata) - {"data", "preprocessing", "training_log_likelihood",
                                    "selection"})
    if other:
        out.append(f"other metadata:   {', '.join(other)}")
    print("\n".join(out))
    return 0
