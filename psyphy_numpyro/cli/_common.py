"""What the command line's parser and its subcommand modules share: the program name,
the error type, the model options and small argument helpers (no subcommand imports it
back, so parser.py -> experiment_parser.py -> _common.py has no cycle)."""

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
    "parse_columns",
    "parse_response_values",
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


def _pairs(text, option, example):
    """``a=b,c=d`` (or a JSON object) as a dict of strings to strings."""
    import json

    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"{option}: not a JSON object ({exc.msg}); "
                                             f"e.g. {example}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{option}: expected a JSON object, e.g. {example}")
        return value
    out = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(
                f"{option}: expected name=value pairs separated by commas, e.g. {example}, got "
                f"{item.strip()!r}")
        if key in out:
            raise argparse.ArgumentTypeError(f"{option}: {key!r} is given twice")
        out[key] = value
    return out


def parse_columns(text):
    """``--columns``: the library's column name -> the file's, as ``library=file`` pairs
    (``response=correct,ref_x=x0``) or a JSON object (``{"response": "correct"}``); the
    names are checked by :meth:`TrialData.from_csv <psyphy_numpyro.TrialData.from_csv>`."""
    columns = _pairs(text, "--columns", "response=correct,ref_x=x0")
    bad = [k for k, v in columns.items() if not isinstance(v, str)]
    if bad:
        raise argparse.ArgumentTypeError(f"--columns: the file's column names must be strings, "
                                         f"got {columns[bad[0]]!r} for {bad[0]!r}")
    return columns


def parse_response_values(text):
    """``--response-values``: what the response words mean (1 = correct), as ``word=1/0``
    pairs (``yes=1,no=0``), two bare words, the correct one first (``yes,no``), or a JSON
    object (``{"yes": 1, "no": 0}``)."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip().startswith("{") and len(items) == 2 and not any("=" in t for t in items):
        if not all(items) or items[0].lower() == items[1].lower():
            raise argparse.ArgumentTypeError(
                f"--response-values: two different words, the correct one first (e.g. yes,no), "
                f"got {text!r}")
        return {items[0]: 1, items[1]: 0}
    words = _pairs(text, "--response-values", "yes=1,no=0 (1 = correct) or yes,no")
    out = {}
    for word, value in words.items():
        value = str(value).strip() if not isinstance(value, bool) else value
        if value not in ("0", "1", 0, 1) or isinstance(value, bool):
            raise argparse.ArgumentTypeError(
                f"--response-values: {word!r} must mean 1 (correct) or 0 (incorrect), got "
                f"{value!r}")
        out[word] = int(value)
    return out


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
