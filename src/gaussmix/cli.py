"""The ``gaussmix`` command line: one function per subcommand.

User errors (bad options, unwritable paths) print one line on stderr and
return exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

__all__ = ["main"]

PROG = "gaussmix"
USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in the command line or its arguments, reported in one line."""


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = _Parser(prog=PROG, description="Gaussian mixture models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
    demo.set_defaults(handler=cmd_demo)
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
        0 on success, 2 on a user error; suitable for :func:`sys.exit`.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help and --version exit through argparse; hand back their status.
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        return _report(exc)
    try:
        return args.handler(args)
    except UsageError as exc:
        return _report(exc)


def _report(error: UsageError) -> int:
    message = " ".join(str(error).split())
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return USAGE_ERROR
