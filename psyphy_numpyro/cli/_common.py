"""What the command line's parser and its subcommand modules share: the program name,
the error type, the model options and small argument helpers (no subcommand imports it
back, so parser.py -> experiment.py -> _common.py has no cycle)."""

from __future__ import annotations

import argparse
import textwrap

from .. import errors

__all__ = [
    "PROG",
    "CLIError",
    "LazyParser",
    "MODEL_OPTIONS",
    "parse_lapse_rate",
    "estimator_names",
    "given_options",
    "wrap",
    "error_message",
]

PROG = "psyphy-numpyro"


class CLIError(errors.InvalidInput):
    """Bad command-line input detected by the CLI itself."""


class LazyParser(argparse.ArgumentParser):
    """A parser whose arguments are added on first use (parsing, help, usage).

    Some subcommands show the library's defaults in their help, which imports
    JAX; built lazily, they cost nothing to a call of another subcommand
    (``experiment status`` starts without JAX).

    Parameters
    ----------
    populate : callable, optional
        ``populate(parser)`` adds the arguments; called once.
    """

    def __init__(self, *args, populate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populate(self):
        """Add the arguments now (once)."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, args=None, namespace=None):
        self.populate()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self.populate()
        return super().format_help()

    def format_usage(self):
        self.populate()
        return super().format_usage()


MODEL_OPTIONS = (
    ("basis_degree", int, "Chebyshev degree per axis"),
    ("extra_dims", int, "extra embedding dimensions"),
    ("variance_scale", float, "prior variance of the degree-0 weights"),
    ("decay_rate", float, "prior variance decay per degree"),
    ("diag_term", float, "added to the diagonal of Sigma(x)"),
    ("bandwidth", float, "logistic smoothing of the oddity rule"),
    ("num_samples", int, "estimator samples per trial for p(correct)"),
    ("estimator", str, "p(correct) estimator; nuts needs cv or reparam (docs/model.md)"),
    ("lapse_rate", "lapse", "fixed lapse rate in [0, 0.5), or 'learn' to estimate it "
     "(Beta(2, 50) prior; docs/observers.md)"),
)


def parse_lapse_rate(text):
    """``--lapse-rate`` value: a number (the model checks its range) or the word ``learn``."""
    if text.strip().lower() == "learn":
        return "learn"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 0.5) or 'learn', got {text!r}") from None


def estimator_names():
    from ..estimators import NAMES

    return NAMES


def given_options(args, **names) -> dict:
    """Keyword arguments for the options the user gave (``names``: kwarg -> option dest)."""
    return {k: getattr(args, v) for k, v in names.items() if getattr(args, v) is not None}


def wrap(text):
    """``text`` filled to 78 columns (help descriptions)."""
    return textwrap.fill(text, 78)


def error_message(exc) -> str:
    """The one-line message of an error: ``"<file>: <reason>"`` for an operating-system
    error about a file, else the error's text (its type's name when it has none)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())
