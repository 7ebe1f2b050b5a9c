"""The ``psyphy-numpyro`` argument parser: subcommands, options, defaults read from the library."""

from __future__ import annotations

import argparse

from ._common import (
    MODEL_OPTIONS,
    PROG,
    CLIError,
    LazyParser,
    estimator_names,
    parse_columns,
    parse_lapse_rate,
    parse_response_values,
    wrap,
)

__all__ = ["build_parser", "CLIError", "PROG"]

# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------
_MAIN_EPILOG = """\
examples:
  psyphy-numpyro fit trials.csv --method map --out fit.nc --plot field.png
  psyphy-numpyro fit trials.csv --method laplace --out laplace.nc
  psyphy-numpyro fit trials.csv --method nuts --warmup 500 --draws 500 --chains 2 --out nuts.nc
  psyphy-numpyro summary fit.nc
  psyphy-numpyro thresholds fit.nc --refs grid --points-per-axis 5 --out thresholds.csv
  psyphy-numpyro thresholds fit.nc --refs refs.csv --target 0.75 --plot thresholds.png
  psyphy-numpyro experiment ask observer1.sqlite --n 20    (adaptive sessions, JSON)
  psyphy-numpyro serve --port 8765 --root sessions/         (per-trial sessions over HTTP)

The trials CSV has a header: ref_x,ref_y,comparison_x,comparison_y,response
(1-D: ref_x,comparison_x,response; 3-D adds _z columns), stimuli in [-1, 1],
response 1 = correct. Fits are saved as NetCDF (ArviZ InferenceData) and load
in Python with psyphy_numpyro.load_fit(path).
"""

_FIT_EPILOG = """\
methods:
  map      MAP fit (SVI, --steps per restart, --restarts restarts)
  laplace  MAP fit, then a Gaussian posterior at the MAP (--draws draws)
  nuts     MAP fit, then NUTS from the MAP (--warmup, --draws per chain, --chains);
           NUTS samples a smooth surrogate likelihood (see docs/inference.md)

examples:
  psyphy-numpyro fit trials.csv --out fit.nc
  psyphy-numpyro fit trials.csv --method map --steps 3000 --basis-degree 3 --out fit.nc \\
      --plot field.png
  psyphy-numpyro fit trials.csv --method nuts --x64 --chains 4 --out nuts.nc
  psyphy-numpyro fit lab.csv --columns ref_x=rx,ref_y=ry,comparison_x=cx,comparison_y=cy,\
response=answer --response-values yes,no --out fit.nc
"""

_THRESH_EPILOG = """\
output columns (one row per reference):
  ref_x[,ref_y[,ref_z]]        the reference
  2-D: E_xx,E_xy,E_yy,semi_major,semi_minor,angle_deg
       threshold ellipse {v : v' E^-1 v = 1} around the reference, its semi-axes and
       the direction of the major axis (degrees from the x axis, in [0, 180))
  3-D: E_xx,...,E_zz,axis_1,axis_2,axis_3 (semi-axes, largest first)
  1-D: lower,upper             the threshold interval
  missing_rays                 rays that never reach --target inside the domain
  posterior fits: the ellipse of the posterior-median threshold lengths, and
  <quantity>_lo/<quantity>_hi, the central --level interval of the semi-axes
  (1-D: of lower and upper) over the posterior draws

examples:
  psyphy-numpyro thresholds fit.nc
  psyphy-numpyro thresholds fit.nc --refs grid --points-per-axis 7 --out thresholds.csv
  psyphy-numpyro thresholds fit.nc --refs refs.csv --target 0.75 --plot thresholds.png

A reference CSV holds one point per row: columns ref_x,ref_y (or x,y), or
exactly d unnamed numeric columns.
"""


def _signature_defaults(fn) -> dict:
    import inspect

    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _library_defaults():
    """Defaults of WPPM, fit_map, fit_laplace and fit_mcmc (shown in --help)."""
    import dataclasses

    from ..laplace import fit_laplace
    from ..map_fit import fit_map
    from ..mcmc import fit_mcmc
    from ..wppm import WPPM

    wppm = {f.name: f.default for f in dataclasses.fields(WPPM)}
    return (wppm, _signature_defaults(fit_map), _signature_defaults(fit_laplace),
            _signature_defaults(fit_mcmc))


def build_parser() -> argparse.ArgumentParser:
    """The ``psyphy-numpyro`` argument parser: ``fit``, ``summary``, ``thresholds``, ``experiment``.

    Returns
    -------
    argparse.ArgumentParser
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=wrap("Fit the Wishart Process Psychophysical Model (WPPM) to oddity-task "
                         "trials and read out the fitted field."),
        epilog=_MAIN_EPILOG,
        formatter_class=raw,
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # LazyParser: a subcommand's arguments (some show the library's defaults, which
    # imports JAX) are built only when that subcommand runs or shows its help
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=LazyParser)
    _add_fit(sub, raw)
    _add_summary(sub, raw)
    _add_thresholds(sub, raw)
    from .experiment_parser import add_parser as _add_experiment

    _add_experiment(sub, raw)
    from .serve import add_parser as _add_serve

    _add_serve(sub, raw)
    return parser


def _add_fit(sub, raw):
    p = sub.add_parser(
        "fit",
        help="fit a WPPM to a trials CSV and save the fit (NetCDF)",
        description=wrap("Fit a WPPM to the trials in a CSV file and save the fit as NetCDF."),
        epilog=_FIT_EPILOG,
        formatter_class=raw,
        populate=_add_inference_options,  # the library's defaults: imported on first use
    )
    p.add_argument("trials", help="trials CSV (header ref_x,...,comparison_x,...,response)")
    p.add_argument("--out", "-o", required=True, help="output fit file (NetCDF, e.g. fit.nc)")
    p.add_argument("--method", choices=("map", "laplace", "nuts"), default="map",
                   help="inference method (default: map)")
    p.add_argument("--plot", metavar="FIGURE", help="also draw the fitted covariance field "
                   "(ellipses in 2-D, three slices in 3-D, posterior bands for laplace/nuts) "
                   "to this PNG, PDF or SVG file")
    c = p.add_argument_group("reading the trials CSV")
    c.add_argument("--columns", metavar="MAP", type=parse_columns, default=None,
                   help="the CSV names columns differently: library=file pairs, e.g. "
                   "response=correct,ref_x=x0 (or a JSON object); library names: ref_x, "
                   "ref_y, ref_z, comparison_x, comparison_y, comparison_z, response")
    c.add_argument("--response-values", metavar="WORDS", type=parse_response_values,
                   default=None,
                   help="what the response words mean: word=1/0 pairs (1 = correct), e.g. "
                   "yes=1,no=0, or two words, the correct one first, e.g. yes,no (or a JSON "
                   "object); 0/1 and true/false are always read")
    p.set_defaults(command="fit")


def _add_inference_options(p):
    wppm, fmap, flap, fnuts = _library_defaults()
    m = p.add_argument_group("model (defaults: the WPPM's)")
    m.add_argument("--input-dim", type=int, default=None,
                   help="stimulus dimension; inferred from the CSV header (given: checked)")
    for name, typ, text in MODEL_OPTIONS:
        if name == "estimator":
            kwargs = {"choices": estimator_names()}
        else:
            kwargs = {"type": parse_lapse_rate if typ == "lapse" else typ}
        m.add_argument("--" + name.replace("_", "-"), default=None,
                       help=f"{text} (default: {wppm[name]})", **kwargs)
    o = p.add_argument_group("inference (defaults: the fit functions')")
    o.add_argument("--optimizer", choices=("lbfgs", "adam"), default=None,
                   help="MAP route: lbfgs (deterministic, fixed estimator noise) or adam "
                   "(fresh noise every step; the default beyond 16 384 trials) (default: lbfgs)")
    o.add_argument("--steps", type=int, default=None,
                   help="MAP optimisation steps per restart (default: at most 150 L-BFGS "
                   "steps, or 2000 Adam steps)")
    o.add_argument("--restarts", type=int, default=None,
                   help=f"MAP restarts (default: {fmap['num_restarts']})")
    o.add_argument("--learning-rate", type=float, default=None,
                   help="peak Adam learning rate in prior standard deviations "
                   f"(default: {fmap['learning_rate']})")
    o.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size for MAP steps, 0 = every trial every step "
                   f"(default: {fmap['batch_size']!r})")
    o.add_argument("--draws", type=int, default=None,
                   help=f"laplace: Gaussian draws (default: {flap['num_draws']}); nuts: draws "
                   f"per chain (default: {fnuts['num_draws']})")
    o.add_argument("--warmup", type=int, default=None,
                   help=f"nuts: warm-up iterations (default: {fnuts['num_warmup']})")
    o.add_argument("--chains", type=int, default=None,
                   help=f"nuts: chains (default: {fnuts['num_chains']})")
    o.add_argument("--seed", type=int, default=None,
                   help=f"random seed (default: {fmap['seed']})")
    o.add_argument("--x64", action="store_true",
                   help="compute in float64 (recommended for nuts and laplace)")
    o.add_argument("--no-log-likelihood", action="store_true",
                   help="laplace/nuts: do not store the pointwise log-likelihood per draw in "
                   "the file (faster save; not needed to reload the fit)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_summary(sub, raw):
    p = sub.add_parser(
        "summary",
        help="describe a saved fit",
        description=wrap("Print the kind, model configuration and data of a saved fit; for "
                         "MAP fits the final loss, for laplace/nuts fits the ArviZ summary "
                         "of Sigma on a grid."),
        epilog="example:\n  psyphy-numpyro summary fit.nc",
        formatter_class=raw,
    )
    p.add_argument("fit", help="fit file written by 'psyphy-numpyro fit' or fit.save()")
    p.set_defaults(command="summary")


def _add_thresholds(sub, raw):
    p = sub.add_parser(
        "thresholds",
        help="threshold ellipses of a saved fit",
        description=wrap("Discrimination thresholds of a saved fit: the contour where "
                         "p(correct) reaches --target around each reference, as ellipse "
                         "parameters (CSV)."),
        epilog=_THRESH_EPILOG,
        formatter_class=raw,
    )
    p.add_argument("fit", help="fit file written by 'psyphy-numpyro fit' or fit.save()")
    p.add_argument("--refs", default="grid",
                   help="'grid' (regular grid over [-0.8, 0.8]^d, the default) or a CSV of "
                   "reference points")
    p.add_argument("--points-per-axis", type=int, default=5,
                   help="grid points per axis for --refs grid (default: 5)")
    p.add_argument("--target", type=float, default=2.0 / 3.0,
                   help="p(correct) of the threshold contour (default: 0.6667)")
    p.add_argument("--num-directions", type=int, default=16,
                   help="rays per reference in 2-D/3-D (default: 16)")
    p.add_argument("--level", type=float, default=0.9,
                   help="central credible level for posterior fits (default: 0.9)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="estimator samples (default: max(model num_samples, 1024))")
    p.add_argument("--seed", type=int, default=0, help="seed of the estimator noise "
                   "(default: 0)")
    p.add_argument("--out", "-o", help="write the table to this CSV (default: print it)")
    p.add_argument("--plot", metavar="FIGURE", help="draw the threshold ellipses (1-D intervals, "
                   "3-D three slices) to this PNG, PDF or SVG file")
    p.set_defaults(command="thresholds")
