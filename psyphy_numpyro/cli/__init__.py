"""The ``psyphy-numpyro`` command line: fit trial CSVs, summarise fits, read out thresholds.

Run ``psyphy-numpyro --help`` (or ``python -m psyphy_numpyro --help``) for
the subcommands. Every subcommand returns exit status 0 on success; bad input
(a missing file, a malformed CSV, an invalid setting) prints one line
``psyphy-numpyro: error: <message>`` to stderr and exits with status 2, the
status argparse uses for usage errors. A fit whose every restart diverged,
or whose curvature or draws are not finite, exits with status 1. Only the
package's own errors (:mod:`psyphy_numpyro.errors`) and operating-system
errors are reported this way; anything else is a bug and keeps its traceback.

Layout: :mod:`.parser` builds the argument parser, :mod:`.commands` holds the
subcommands, and :func:`main` runs one.
"""

from __future__ import annotations

import os
import sys
import warnings

from .. import errors
from ._common import PROG, CLIError, error_message
from .commands import COMMANDS
from .parser import build_parser

__all__ = ["main", "build_parser", "CLIError"]


def _showwarning(message, category, filename, lineno, file=None, line=None):
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """Run the ``psyphy-numpyro`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad input (one line
        ``psyphy-numpyro: error: ...`` on stderr), 1 when the fit diverged.
        Argparse usage errors exit with status 2 through ``SystemExit``.

    Examples
    --------
    >>> main(["summary", "fit.nc"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _showwarning
        try:
            return COMMANDS[args.command](args)
        except BrokenPipeError:  # e.g. "psyphy-numpyro summary fit.nc | head"
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except (errors.FitDivergedError, errors.FitFailedError) as exc:
            print(f"{PROG}: error: {error_message(exc)}", file=sys.stderr)
            return 1
        except (errors.Error, OSError) as exc:
            # only the package's own errors and the operating system's: anything else is
            # a bug and keeps its traceback
            print(f"{PROG}: error: {error_message(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
