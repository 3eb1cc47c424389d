"""The ``gaussmix`` command line: the parser and the dispatch to the subcommands.

``demo`` lives here; ``fit`` and ``select`` in :mod:`._cli_fit`, ``predict``
and ``info`` in :mod:`._cli_predict`, data files in :mod:`._cli_data`.
User errors (bad options, unreadable files, bad data) print one line on
stderr and return exit status 2; an unexpected exception prints one line
saying it is an internal error and returns 1.  ``--debug`` re-raises both,
with their tracebacks.  Warnings of the library (say, a fit that did not
converge) are printed as one line each, unless ``--quiet``.
"""

from __future__ import annotations

import argparse
import errno
import os
import importlib
import sys
import warnings
from collections.abc import Sequence

from . import __version__
from ._cli_data import HEADER_CHOICES, UsageError

__all__ = ["UsageError", "format_table", "main"]

PROG = "gaussmix"
USAGE_ERROR = 2
INTERNAL_ERROR = 1
# Errors of the storage written to (stdout or a file), reported as user
# errors; not EIO, which reading the data can raise too.
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# A selection grid can repeat one warning per cell; a few lines say enough.
_MAX_WARNINGS = 5


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage and exits; one line and a return code
    # are friendlier in a shell and testable without catching SystemExit.
    def error(self, message: str):
        raise UsageError(message)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"invalid seed {value}: must be in [0, 2**32 - 1]")
    return value


# Values of K one command compares at most: each costs a fit per covariance type.
MAX_K_VALUES = 1000


def _is_digits(text: str) -> bool:
    """Only the ASCII digits that ``int`` reads: ``"²".isdigit()`` holds too."""
    return text.isascii() and text.isdigit()


def _parse_k(text: str) -> int | str:
    """``--k``: a positive integer, or ``auto``."""
    if text == "auto":
        return text
    if not _is_digits(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid K {text!r}: a positive integer or 'auto'")
    return int(text)


def _parse_k_range(text: str) -> list[int]:
    """``--k-range``: ``A..B``, or a comma-separated list of positive integers."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split(".."))
            values = range(low, high + 1)
        else:
            values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) > MAX_K_VALUES:
        raise argparse.ArgumentTypeError(
            f"K range {text!r} holds {len(values)} values; compare at most {MAX_K_VALUES} "
            "(each is a fit per covariance type)"
        )
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid K range {text!r}: use A..B with 1 <= A <= B (e.g. 1..9), "
            "or a list such as 2,3,5"
        )
    return sorted(set(values))


def _figure_path(text: str) -> str:
    """``--plot``: a file name whose extension matplotlib writes; none means PNG.

    Checked before the fits run, which may take long; matplotlib itself
    adds ``.png`` to a name without one, which the message must name.  A
    folder (an existing one, or a name ending in a separator) gets
    ``selection.png`` inside it, not a hidden ``.png`` or a file beside it.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        return os.path.join(text, "selection.png")
    suffix = os.path.splitext(text)[1].lower().lstrip(".")
    if not suffix:
        return text + ".png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise argparse.ArgumentTypeError(
            f"cannot write a figure as {text!r}: use one of the extensions "
            f"{', '.join(sorted(formats))}"
        )
    return text


def _parse_quantile(text: str) -> float:
    """``--anomaly-threshold``: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"invalid quantile {text!r}: a number between 0 and 1 exclusive, e.g. 0.01"
        )
    return value


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns, two spaces apart, with a rule under the headers.

    Trailing blanks are dropped, so an empty last column leaves no padding.

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequences of str
        Already formatted cells, one sequence per row.

    Returns
    -------
    table : str
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells) -> str:
        text = "  ".join(str(cell).rjust(width) for cell, width in zip(cells, widths))
        return text.rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo on generated data and print its numbers and figure paths."""
    import matplotlib

    matplotlib.use("Agg")
    from .demo import run_demo

    try:
        result = run_demo(args.out, random_state=args.seed)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"cannot write the figures to {args.out!r}: {reason}") from None

    print(
        f"GaussianMixture(n_components=3) fitted to {result['n_samples']} "
        f"generated points (seed {args.seed}):"
    )
    rows = [
        [str(k), f"{weight:.3f}", *(f"{m:.3f}" for m in mean)]
        for k, (weight, mean) in enumerate(zip(result["weights"], result["means"]))
    ]
    print(format_table(["component", "weight", "mean x", "mean y"], rows))

    print("\nInformation criteria, covariance_type='full' (lower is better):")
    rows = []
    for row in result["table"]:
        k = row["n_components"]
        best = {"BIC": result["best_k"], "AIC": result["best_k_aic"]}
        marks = [name for name, best_k in best.items() if k == best_k]
        note = f"<- best {' and '.join(marks)}" if marks else ""
        rows.append([str(k), f"{row['bic']:.2f}", f"{row['aic']:.2f}", note])
    print(format_table(["K", "BIC", "AIC", ""], rows))
    print(f"\nBest K by BIC: {result['best_k']}  (by AIC: {result['best_k_aic']})")

    print("\nFigures:")
    for path in result["paths"].values():
        print(f"  {path}")
    return 0


def _positive_int(text: str) -> int:
    if not _is_digits(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a positive integer")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not _is_digits(text):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: an integer >= 0")
    return int(text)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a finite number >= 0")
    return value


def _n_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"invalid --n-jobs {text!r}: a non-zero integer")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar, notices or warnings on stderr")
    # SUPPRESS: absent here, it keeps the value of the global --debug.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")


def _add_header_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--header", choices=HEADER_CHOICES, default="auto",
                        help="whether the first row of a CSV/TSV file holds the column "
                        "names: 'auto' (default) tells from the rows below (a text cell "
                        "over numbers); say 'yes' for numeric names such as years, "
                        "'no' for a text first row that is data")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA",
                        help="data file: .csv, .tsv, .parquet or .npy (format from the "
                        "extension); CSV/TSV may have a header row")
    parser.add_argument("--columns", metavar="A,B,...",
                        help="columns to use: names, or 0-based indices (default: all)")
    _add_header_option(parser)
    parser.add_argument("--drop-non-numeric", action="store_true",
                        help="leave out non-numeric columns instead of refusing them")
    parser.add_argument("--drop-missing", action="store_true",
                        help="leave out rows with missing or infinite values instead of "
                        "refusing them; in CSV/TSV, empty cells and pandas' markers (NA, "
                        "N/A, NULL, NaN, nan, None, ...) are missing")
    parser.add_argument("--standardize", action="store_true",
                        help="z-score every column before fitting; stored in the model "
                        "file, so that predict applies the same transform")


def _add_fit_options(parser: argparse.ArgumentParser, selecting_only: bool) -> None:
    covariance_help = (
        "covariance model(s) to compare: 'all' (every registered model: mclust's "
        "EII ... VVV and the scikit-learn names not aliased by them) or a list such "
        "as full,diag,VVV (default: all)"
    )
    if not selecting_only:
        covariance_help = ("with a fixed --k, one covariance model such as full, diag, "
                           "tied, spherical or an mclust name like VVV (default: full); "
                           "with --k auto, " + covariance_help.replace("covariance ", "", 1))
    parser.add_argument("--covariance", metavar="MODELS", help=covariance_help)
    parser.add_argument("--k-range", metavar="A..B", type=_parse_k_range, default="1..9",
                        help="numbers of components to compare: A..B or a list like "
                        "2,3,5 (default: 1..9)")
    parser.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic",
                        help="criterion that picks the best (model, K); lower is better "
                        "(default: bic)")
    parser.add_argument("--n-init", metavar="N", type=_positive_int, default=1,
                        help="EM starts per fit, the best kept (default: 1)")
    parser.add_argument("--seed", metavar="N", type=_seed, default=0,
                        help="random seed of the initialisation (default: 0)")
    parser.add_argument("--max-iter", metavar="N", type=_non_negative_int, default=None,
                        help="most EM iterations per start (default: 100 for one fit, "
                        "1000 where fits are compared: select, --k auto)")
    parser.add_argument("--tol", metavar="X", type=_non_negative_float, default=None,
                        help="convergence threshold on the mean log-likelihood gain "
                        "(default: 1e-3 for one fit, 1e-5 where fits are compared: "
                        "select, --k auto)")
    parser.add_argument("--reg-covar", metavar="X", type=_non_negative_float, default=1e-6,
                        help="added to the covariance diagonals for stability "
                        "(default: 1e-6)")
    parser.add_argument("--squarem", action="store_true",
                        help="extrapolate EM along its own steps (SQUAREM): fewer passes "
                        "where clusters overlap; for full, tied, diag, spherical, EII and "
                        "EEI, the other models run plain EM (default: plain EM, as "
                        "scikit-learn)")
    parser.add_argument("--n-jobs", metavar="N", type=_n_jobs, default=None,
                        help="(model, K) fits run at once in worker processes; -1 or "
                        "unset: every core, 1: one after another")


def _command(module: str, name: str):
    """A handler that imports ``name`` from ``module`` when the command runs."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module, __package__), name)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    # The commands' modules import scikit-learn (about a second): only the
    # command that runs loads its module, so --help and --version stay quick.
    cmd_fit = _command("._cli_fit", "cmd_fit")
    cmd_select = _command("._cli_fit", "cmd_select")
    cmd_predict = _command("._cli_predict", "cmd_predict")
    cmd_info = _command("._cli_predict", "cmd_info")

    parser = _Parser(prog=PROG, description="Gaussian mixture models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks of errors instead of one line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="fit generated 2-D blobs, select K by BIC/AIC, write two PNG figures",
        description="Fit a 3-component mixture to 300 generated points, compute "
        "BIC and AIC for K = 1..6, and write clusters.png and criteria.png.",
    )
    demo.add_argument("--out", metavar="DIR", default="gaussmix-demo",
                      help="directory for the figures, created if missing "
                      "(default: ./gaussmix-demo/)")
    demo.add_argument("--seed", metavar="N", type=_seed, default=0,
                      help="seed of the generated data and of the fits (default: 0)")
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                      help="show the Python traceback of an error")
    demo.set_defaults(handler=cmd_demo, quiet=False)

    fit = commands.add_parser(
        "fit", help="fit a mixture to a data file; write model, labels, summary, plots",
        description="Fit a Gaussian mixture with K components (or choose the model and "
        "K with --k auto) and write model.json, assignments.csv, summary.txt, "
        "summary.json and PNG plots into --out.",
    )
    _add_data_options(fit)
    fit.add_argument("--k", metavar="K", type=_parse_k, default=3,
                     help="number of components, or 'auto' to choose the covariance "
                     "model and K by --criterion over --k-range (default: 3)")
    _add_fit_options(fit, selecting_only=False)
    fit.add_argument("--out", metavar="DIR", default="gaussmix-fit",
                     help="output directory, created if missing (default: ./gaussmix-fit/)")
    fit.add_argument("--format", choices=("csv", "parquet"), default="csv",
                     help="format of the assignments file (default: csv)")
    fit.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    _add_common(fit)
    fit.set_defaults(handler=cmd_fit)

    select = commands.add_parser(
        "select", help="compare (covariance model, K) by BIC/AIC/ICL",
        description="Fit every (covariance model, K) of the grid, print BIC, AIC and ICL "
        "as a table with the best marked, and plot the criterion against K.",
    )
    _add_data_options(select)
    _add_fit_options(select, selecting_only=True)
    select.add_argument("--plot", metavar="FILE", default="selection.png", type=_figure_path,
                        help="the criterion against K, as a PNG, or as its extension says "
                        "(pdf, svg, ...; default: selection.png; a folder: selection.png "
                        "in it)")
    select.add_argument("--no-plot", action="store_true", help="write no plot")
    select.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    _add_common(select)
    select.set_defaults(handler=cmd_select)

    predict = commands.add_parser(
        "predict", help="labels, probabilities and log-likelihoods of data under a model",
        description="Apply a model file written by 'gaussmix fit' to data: columns are "
        "matched by name when the data has a header, else by position.  Writes label, "
        "proba_0..proba_{K-1} and log_likelihood (in the units of the original data) per row.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file (model.json from fit)")
    predict.add_argument("data", metavar="DATA",
                         help="data file: .csv, .tsv, .parquet or .npy")
    predict.add_argument("--columns", metavar="A,B,...",
                         help="columns to use, in the model's order: names or 0-based "
                         "indices (default: by the model's names, or all)")
    _add_header_option(predict)
    predict.add_argument("--out", metavar="FILE", default="predictions.csv",
                         help="output file: .csv, .tsv or .parquet by extension (others "
                         "are refused), or '-' for CSV on stdout (default: predictions.csv)")
    predict.add_argument("--anomaly-threshold", metavar="Q", type=_parse_quantile,
                         help="add an 'anomaly' column: 1 where a row's log-likelihood is "
                         "below the Q quantile (0 < Q < 1) of the training rows'")
    _add_common(predict)
    predict.set_defaults(handler=cmd_predict)

    info = commands.add_parser(
        "info", help="show what a model file holds",
        description="Print a model file's format, covariance type, K, features, weights, "
        "means, training summary and the preprocessing stored with it.",
    )
    info.add_argument("model", metavar="MODEL", help="model file (model.json from fit)")
    _add_common(info)
    info.set_defaults(handler=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gaussmix`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 on a user error, 1 on an internal error; suitable
        for :func:`sys.exit`.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help and --version exit through argparse; hand back their status.
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        return _report(exc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return args.handler(args)
        except UsageError as exc:
            if args.debug:
                raise
            return _report(exc)
        except BrokenPipeError:
            # Python's recipe: stdout to devnull, or the flush at exit fails again.
            _silence_stdout()
            return INTERNAL_ERROR
        except KeyboardInterrupt:
            if args.debug:
                raise
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            if args.debug:
                raise
            if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
                # A full or failing disk is the machine's state, not a fault
                # of gaussmix: one line, as the other output errors say it.
                _silence_stdout()
                return _report(UsageError(f"cannot write the output: {exc.strerror}"))
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            print(f"{PROG}: internal error: {message} (rerun with --debug for the "
                  "traceback, and please report it)", file=sys.stderr)
            return INTERNAL_ERROR
        finally:
            if not args.quiet:
                _show_warnings(caught)


def _silence_stdout() -> None:
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # no real stdout (captured in tests): nothing to silence


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning once, on one line, without the file and line noise."""
    messages = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    for message in messages[:_MAX_WARNINGS]:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    if len(messages) > _MAX_WARNINGS:
        print(f"{PROG}: ... and {len(messages) - _MAX_WARNINGS} more warning(s)",
              file=sys.stderr)


def _report(error: UsageError) -> int:
    message = " ".join(str(error).split())
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return USAGE_ERROR
