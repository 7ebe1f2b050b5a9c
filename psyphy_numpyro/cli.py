"""The ``psyphy-numpyro`` command line: fit trial CSVs, summarise fits, read out thresholds.

Run ``psyphy-numpyro --help`` (or ``python -m psyphy_numpyro --help``) for
the subcommands. Every subcommand returns exit status 0 on success; bad input
(a missing file, a malformed CSV, an invalid setting) prints one line
``psyphy-numpyro: error: <message>`` to stderr and exits with status 2, the
status argparse uses for usage errors. A fit whose every restart diverged
exits with status 1.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import textwrap
import warnings

import numpy as np

__all__ = ["main", "build_parser"]

PROG = "psyphy-numpyro"
_AXES = ("x", "y", "z")


class CLIError(ValueError):
    """Bad command-line input detected by the CLI itself."""


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


_MODEL_OPTIONS = (
    ("basis_degree", int, "Chebyshev degree per axis"),
    ("extra_dims", int, "extra embedding dimensions"),
    ("variance_scale", float, "prior variance of the degree-0 weights"),
    ("decay_rate", float, "prior variance decay per degree"),
    ("diag_term", float, "added to the diagonal of Sigma(x)"),
    ("bandwidth", float, "logistic smoothing of the oddity rule"),
    ("num_samples", int, "estimator samples per trial for p(correct)"),
    ("estimator", str, "p(correct) estimator; nuts needs cv or reparam (docs/model.md)"),
)


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

    from .laplace import fit_laplace
    from .map_fit import fit_map
    from .mcmc import fit_mcmc
    from .model import WPPM

    wppm = {f.name: f.default for f in dataclasses.fields(WPPM)}
    return (wppm, _signature_defaults(fit_map), _signature_defaults(fit_laplace),
            _signature_defaults(fit_mcmc))


def _estimators():
    from .estimators import NAMES

    return NAMES


def _given(args, **names) -> dict:
    """Keyword arguments for the options the user gave (``names``: kwarg -> option dest)."""
    return {k: getattr(args, v) for k, v in names.items() if getattr(args, v) is not None}


def _wrap(text):
    return textwrap.fill(text, 78)


def build_parser() -> argparse.ArgumentParser:
    """The ``psyphy-numpyro`` argument parser (subcommands ``fit``, ``summary``, ``thresholds``).

    Returns
    -------
    argparse.ArgumentParser
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_wrap("Fit the Wishart Process Psychophysical Model (WPPM) to oddity-task "
                          "trials and read out the fitted field."),
        epilog=_MAIN_EPILOG,
        formatter_class=raw,
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # -- fit --------------------------------------------------------------------
    p = sub.add_parser(
        "fit",
        help="fit a WPPM to a trials CSV and save the fit (NetCDF)",
        description=_wrap("Fit a WPPM to the trials in a CSV file and save the fit as NetCDF."),
        epilog=_FIT_EPILOG,
        formatter_class=raw,
    )
    p.add_argument("trials", help="trials CSV (header ref_x,...,comparison_x,...,response)")
    p.add_argument("--out", "-o", required=True, help="output fit file (NetCDF, e.g. fit.nc)")
    p.add_argument("--method", choices=("map", "laplace", "nuts"), default="map",
                   help="inference method (default: map)")
    p.add_argument("--plot", metavar="PNG", help="also draw the fitted covariance field "
                   "(ellipses in 2-D, posterior bands for laplace/nuts) to this image")
    wppm, fmap, flap, fnuts = _library_defaults()
    m = p.add_argument_group("model (defaults: the WPPM's)")
    m.add_argument("--input-dim", type=int, default=None,
                   help="stimulus dimension; inferred from the CSV header (given: checked)")
    for name, typ, text in _MODEL_OPTIONS:
        kwargs = {"choices": _estimators()} if name == "estimator" else {"type": typ}
        m.add_argument("--" + name.replace("_", "-"), default=None,
                       help=f"{text} (default: {wppm[name]})", **kwargs)
    o = p.add_argument_group("inference (defaults: the fit functions')")
    o.add_argument("--steps", type=int, default=None,
                   help=f"MAP optimisation steps per restart (default: {fmap['steps']})")
    o.add_argument("--restarts", type=int, default=None,
                   help=f"MAP restarts (default: {fmap['num_restarts']})")
    o.add_argument("--learning-rate", type=float, default=None,
                   help="peak MAP learning rate in prior standard deviations "
                   f"(default: {fmap['learning_rate']})")
    o.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size for MAP steps, 0 = every trial every step "
                   f"(default: {fmap['batch_size']!r})")
    o.add_argument("--draws", type=int, default=None,
                   help=f"laplace: Gaussian draws (default: {flap['num_draws']}); nuts: draws "
                   f"per chain (default: {fnuts['num_samples']})")
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
    p.set_defaults(func=_cmd_fit)

    # -- summary ------------------------------------------------------------------
    p = sub.add_parser(
        "summary",
        help="describe a saved fit",
        description=_wrap("Print the kind, model configuration and data of a saved fit; for "
                          "MAP fits the final loss, for laplace/nuts fits the ArviZ summary "
                          "of Sigma on a grid."),
        epilog="example:\n  psyphy-numpyro summary fit.nc",
        formatter_class=raw,
    )
    p.add_argument("fit", help="fit file written by 'psyphy-numpyro fit' or fit.save()")
    p.set_defaults(func=_cmd_summary)

    # -- thresholds -----------------------------------------------------------------
    p = sub.add_parser(
        "thresholds",
        help="threshold ellipses of a saved fit",
        description=_wrap("Discrimination thresholds of a saved fit: the contour where "
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
    p.add_argument("--plot", metavar="PNG", help="draw the threshold ellipses (1-D/2-D) to "
                   "this image")
    p.set_defaults(func=_cmd_thresholds)
    return parser


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _progress(args):
    return False if getattr(args, "no_progress", False) else None


def _check_input_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory")


def _check_output_path(path, what):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{what} {path}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path}: is a directory")


def _enable_x64_for(path):
    """Switch JAX to float64 when the saved weights are float64 (identical read-outs)."""
    import jax

    try:
        import xarray as xr

        with xr.open_dataset(path, group="posterior", engine="h5netcdf") as ds:
            dtype = ds["W"].dtype
    except Exception:  # noqa: BLE001 - load_fit reports unreadable files properly
        return
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)


def _load(path):
    from .persist import load_fit

    _check_input_file(path)
    _enable_x64_for(path)
    return load_fit(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(d, points_per_axis):
    from .arviz_io import default_grid

    if points_per_axis < 1:
        raise CLIError(f"--points-per-axis must be >= 1, got {points_per_axis}")
    return default_grid(d, points_per_axis)


def _read_refs(path, d):
    """Reference points (R, d) from a CSV (header optional)."""
    _check_input_file(path)
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(v.strip() for v in r)]
    if not rows:
        raise CLIError(f"{path}: no reference points")
    header = None
    try:
        float(rows[0][0])
    except ValueError:
        header = [h.strip() for h in rows[0]]
        rows = rows[1:]
    axes = _AXES[:d]
    named = None
    if header is not None:
        for candidate in ([f"ref_{a}" for a in axes], list(axes)):
            if all(n in header for n in candidate):
                named = candidate
                break
    if named is not None:
        names, cols, ncols = named, [header.index(n) for n in named], len(header)
    elif header is None or len(header) == d:
        names = list(header) if header else [f"column {j + 1}" for j in range(d)]
        cols, ncols = list(range(d)), d
    else:
        raise CLIError(
            f"{path}: reference CSV header {','.join(header)!r} needs columns "
            f"{','.join(f'ref_{a}' for a in axes)} (or {','.join(axes)}) for a {d}-D fit"
        )
    if not rows:
        raise CLIError(f"{path}: no reference points")
    out = np.empty((len(rows), d))
    for i, row in enumerate(rows, start=1):
        if len(row) != ncols:
            raise CLIError(f"{path}: row {i} has {len(row)} fields, expected {ncols} for a "
                           f"{d}-D fit")
        for k, (j, name) in enumerate(zip(cols, names, strict=True)):
            try:
                v = float(row[j])
            except ValueError:
                raise CLIError(f"{path}: row {i}, column {name!r}: {row[j]!r} is not a "
                               "number") from None
            if not math.isfinite(v) or abs(v) > 1.0:
                raise CLIError(f"{path}: row {i}, column {name!r} = {row[j]!r} is outside "
                               "[-1, 1]")
            out[i - 1, k] = v
    return out


def _kind_name(fit):
    """The fit kind for display (``persist.fit_kind``, NUTS named)."""
    from .persist import fit_kind

    kind = fit_kind(fit)
    return {"mcmc": "mcmc (nuts)", "posterior": "posterior draws"}.get(kind, kind)


def _model_line(model):
    import dataclasses

    return ", ".join(f"{f.name}={getattr(model, f.name)!r}" for f in dataclasses.fields(model))


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def _cmd_fit(args):
    import jax

    from .data import TrialData
    from .laplace import fit_laplace
    from .map_fit import fit_map
    from .mcmc import fit_mcmc
    from .model import WPPM

    _check_input_file(args.trials)
    _check_output_path(args.out, "--out")
    if args.plot:
        _check_output_path(args.plot, "--plot")
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    data = TrialData.from_csv(args.trials)
    d = data.input_dim
    if args.input_dim is not None and args.input_dim != d:
        raise CLIError(f"--input-dim {args.input_dim} does not match {args.trials}, whose "
                       f"columns are {d}-D")
    if args.plot and d == 3:
        raise CLIError("--plot draws 1-D and 2-D fits; this data is 3-D")
    model = WPPM(input_dim=d, **_given(args, **{n: n for n, _, _ in _MODEL_OPTIONS}))
    progress = _progress(args)
    seed = _given(args, seed="seed")
    if args.batch_size == 0:
        args.batch_size = None
        full_batch = {"batch_size": None}
    else:
        full_batch = {}
    print(f"{len(data)} trials ({d}-D) from {args.trials}; method {args.method}", flush=True)
    fit = fit_map(data, model, progress=progress, **seed, **full_batch,
                  **_given(args, steps="steps", num_restarts="restarts",
                           learning_rate="learning_rate", batch_size="batch_size"))
    loss = float(fit.restart_losses[fit.best_restart])
    print(f"MAP: final loss {loss:.6g} ({loss / len(data):.6g} per trial), kept restart "
          f"{fit.best_restart} (numbered from 0) of {len(fit.restart_losses)}", flush=True)
    if args.method == "laplace":
        fit = fit_laplace(data, model, init=fit, progress=progress, **seed,
                          **_given(args, num_draws="draws"))
        print(f"Laplace: {fit.num_draws} draws ({fit.curvature} curvature, "
              f"{fit.num_floored} eigenvalues floored)", flush=True)
    elif args.method == "nuts":
        fit = fit_mcmc(data, model, init=fit, progress=progress, **seed,
                       **_given(args, num_warmup="warmup", num_samples="draws",
                                num_chains="chains"))
        chains, draws = fit.draws.shape[:2]
        print(f"NUTS: {chains} chain{'s' if chains != 1 else ''} x {draws} draws, "
              f"{fit.divergences} divergences", flush=True)
    if args.method == "map":
        fit.save(args.out)
    else:
        fit.save(args.out, log_likelihood=not args.no_log_likelihood)
    print(f"saved {args.out}", flush=True)
    if args.plot:
        _plot_field(fit, args.plot)
        print(f"plotted {args.plot}", flush=True)
    return 0


def _plot_field(fit, path):
    from .plotting import auto_scale, grid_points, plot_field, plot_field_band

    plt = _pyplot()
    d = fit.model.input_dim
    kind = _kind_name(fit)
    fig, ax = plt.subplots(figsize=(6, 6) if d == 2 else (7, 4))
    try:
        if d == 2:
            grid = grid_points(5)
            S = np.asarray(fit.covariance(grid), dtype=float)
            if S.ndim == 4:  # draws
                med = np.median(S, axis=0)
                scale = auto_scale(grid, med)
                plot_field_band(S, grid, ax=ax, scale=scale, color="C0", label="90% band")
                plot_field(med, grid, ax=ax, scale=scale, color="C0", lw=1.2,
                           label="posterior median")
            else:
                plot_field(S, grid, ax=ax, color="C3", lw=1.2, label="MAP")
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_xlabel("stimulus x")
            ax.set_ylabel("stimulus y")
            ax.legend(loc="upper right", fontsize=8)
        else:
            x = np.linspace(-1, 1, 101)[:, None]
            S = np.asarray(fit.covariance(x), dtype=float)
            sd = np.sqrt(S[..., 0, 0])
            if sd.ndim == 2:
                lo, mid, hi = np.percentile(sd, [5, 50, 95], axis=0)
                ax.fill_between(x[:, 0], lo, hi, color="C0", alpha=0.3, lw=0, label="90% band")
                ax.plot(x[:, 0], mid, color="C0", label="posterior median")
            else:
                ax.plot(x[:, 0], sd, color="C3", label="MAP")
            ax.set_xlabel("stimulus x")
            ax.set_ylabel("sqrt Sigma(x)")
            ax.legend()
        ax.set_title(f"WPPM covariance field ({kind}, {len(fit.data)} trials)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------
def _upper_triangle(label) -> bool:
    """Keep ``Sigma[g, i, j]`` rows with ``i <= j`` (Sigma is symmetric)."""
    try:
        _, i, j = (part.strip() for part in label[label.index("[") + 1 : -1].split(","))
        return _AXES.index(i) <= _AXES.index(j)
    except ValueError:
        return True


def _grid_text(d):
    from .arviz_io import default_grid

    grid = default_grid(d)
    per_axis = round(len(grid) ** (1 / d))
    return (f"grid point g of a {per_axis}^{d} grid over [-0.8, 0.8]^{d} "
            f"(psyphy_numpyro.arviz_io.default_grid({d})[g])")


def _cmd_summary(args):
    fit = _load(args.fit)
    data = fit.data
    print(f"file: {args.fit}")
    print(f"kind: {_kind_name(fit)}")
    print(f"model: WPPM({_model_line(fit.model)})")
    print(f"trials: {len(data)} ({data.input_dim}-D), proportion correct "
          f"{float(np.mean(data.responses)):.4f}")
    for line in fit.describe():
        print(line)
    if fit.point:
        return 0
    import logging

    import arviz as az
    import pandas as pd

    # ArviZ logs "shape validation failed" for a single chain (its own Logger instance)
    logger = getattr(az, "_log", None)
    level = logger.level if isinstance(logger, logging.Logger) else None
    if level is not None:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # r_hat / ESS warnings for one chain
            table = fit.summary()
    finally:
        if level is not None:
            logger.setLevel(level)
    table = table[[_upper_triangle(label) for label in table.index]]
    print(f"summary of Sigma[g, i, j] (i <= j) at {_grid_text(fit.model.input_dim)}:")
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(table.to_string())
    return 0


# ---------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------
def _axes_2d(E):
    """semi_major, semi_minor, angle (deg in [0, 180)) of 2x2 ellipses (..., 2, 2)."""
    ok = np.all(np.isfinite(E), axis=(-1, -2))
    safe = np.where(ok[..., None, None], E, np.eye(2))
    lam, vec = np.linalg.eigh(safe)
    major = np.sqrt(np.maximum(lam[..., 1], 0.0))
    minor = np.sqrt(np.maximum(lam[..., 0], 0.0))
    angle = np.degrees(np.arctan2(vec[..., 1, 1], vec[..., 0, 1])) % 180.0
    nan = np.where(ok, 1.0, np.nan)
    return major * nan, minor * nan, angle * nan


def _axes_nd(E):
    ok = np.all(np.isfinite(E), axis=(-1, -2))
    d = E.shape[-1]
    safe = np.where(ok[..., None, None], E, np.eye(d))
    lam = np.linalg.eigvalsh(safe)[..., ::-1]
    return np.sqrt(np.maximum(lam, 0.0)) * np.where(ok, 1.0, np.nan)[..., None]


def _nanquantile(x, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(x, q, axis=0)


def threshold_table(th, refs=None) -> tuple[list[str], np.ndarray]:
    """Column names and rows (R, C) of ellipse parameters for a :class:`Thresholds`.

    Parameters
    ----------
    th : Thresholds
        From :func:`psyphy_numpyro.thresholds`.
    refs : array (R, d), optional
        The references as given (``th.refs`` holds them in the fit's dtype).

    Returns
    -------
    names : list of str
    values : numpy array (R, C)
        See ``psyphy-numpyro thresholds --help`` for the columns.
    """
    refs = np.asarray(th.refs if refs is None else refs, dtype=float)
    d = refs.shape[1]
    axes = _AXES[:d]
    names = [f"ref_{a}" for a in axes]
    cols = [refs[:, k] for k in range(d)]
    med = np.asarray(th.median_ellipses, dtype=float)
    q = [(1 - th.level) / 2, (1 + th.level) / 2] if th.has_draws else None
    if d == 1:
        names += ["lower", "upper"]
        cols += [med[:, 0], med[:, 1]]
        if th.has_draws:
            E = np.asarray(th.ellipses, dtype=float)  # (S, R, 2)
            for j, n in enumerate(("lower", "upper")):
                lo, hi = _nanquantile(E[..., j], q)
                names += [f"{n}_lo", f"{n}_hi"]
                cols += [lo, hi]
    else:
        iu, ju = np.triu_indices(d)
        for i, j in zip(iu, ju, strict=True):
            names.append(f"E_{axes[i]}{axes[j]}")
            cols.append(med[:, i, j])
        if d == 2:
            major, minor, angle = _axes_2d(med)
            names += ["semi_major", "semi_minor", "angle_deg"]
            cols += [major, minor, angle]
            if th.has_draws:
                dmaj, dmin, _ = _axes_2d(np.asarray(th.ellipses, dtype=float))
                for n, v in (("semi_major", dmaj), ("semi_minor", dmin)):
                    lo, hi = _nanquantile(v, q)
                    names += [f"{n}_lo", f"{n}_hi"]
                    cols += [lo, hi]
        else:
            ax = _axes_nd(med)
            names += [f"axis_{k + 1}" for k in range(d)]
            cols += [ax[:, k] for k in range(d)]
            if th.has_draws:
                dax = _axes_nd(np.asarray(th.ellipses, dtype=float))
                for k in range(d):
                    lo, hi = _nanquantile(dax[..., k], q)
                    names += [f"axis_{k + 1}_lo", f"axis_{k + 1}_hi"]
                    cols += [lo, hi]
    lengths = th.median if th.has_draws else th.lengths
    names.append("missing_rays")
    cols.append(np.sum(np.isnan(lengths), axis=-1).astype(float))
    return names, np.stack(cols, axis=1)


def _format_rows(names, values):
    out = []
    for row in values:
        cells = []
        for n, v in zip(names, row, strict=True):
            if n == "missing_rays":
                cells.append(str(int(v)))
            elif np.isnan(v):
                cells.append("nan")
            else:
                cells.append(f"{v:.6g}")
        out.append(cells)
    return out


def _cmd_thresholds(args):
    from .readout import thresholds

    fit = _load(args.fit)
    d = fit.model.input_dim
    if args.out:
        _check_output_path(args.out, "--out")
    if args.plot:
        _check_output_path(args.plot, "--plot")
        if d == 3:
            raise CLIError("--plot draws 1-D and 2-D thresholds; this fit is 3-D")
    if args.refs == "grid":
        refs = _grid(d, args.points_per_axis)
    else:
        refs = _read_refs(args.refs, d)
    th = thresholds(fit, refs, target=args.target, num_directions=args.num_directions,
                    key=args.seed, num_samples=args.num_samples, level=args.level)
    names, values = threshold_table(th, refs)
    rows = _format_rows(names, values)
    # float32 fits carry about 7 significant digits; 9 round-trip a float32 exactly
    single = np.asarray(th.lengths).dtype == np.float32

    def cell(n, v):
        if n == "missing_rays":
            return int(v)
        return f"{v:.9g}" if single and not n.startswith("ref_") else repr(float(v))

    if args.out:
        tmp = args.out + ".tmp"
        try:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(names)
                for row in values:
                    writer.writerow([cell(n, v) for n, v in zip(names, row, strict=True)])
            os.replace(tmp, args.out)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        print(f"thresholds at p(correct) = {args.target:.4g} for {len(refs)} references "
              f"({_kind_name(fit)} fit) written to {args.out}")
    else:
        print(",".join(names))
        for cells in rows:
            print(",".join(cells))
    if args.plot:
        from .plotting import plot_thresholds

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 6) if d == 2 else (7, 4))
        try:
            plot_thresholds(th, ax=ax)
            if d == 2:
                ax.set_xlim(-1, 1)
                ax.set_ylim(-1, 1)
            ax.set_title(f"thresholds at p(correct) = {args.target:.3g} ({_kind_name(fit)})")
            fig.tight_layout()
            fig.savefig(args.plot, dpi=120)
        finally:
            plt.close(fig)
        if args.out:
            print(f"plotted {args.plot}")
    return 0


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------
def _message(exc) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


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
    from .map_fit import FitDivergedError

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _showwarning
        try:
            return args.func(args)
        except BrokenPipeError:  # e.g. "psyphy-numpyro summary fit.nc | head"
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except FitDivergedError as exc:
            print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
            return 1
        except (FileNotFoundError, IsADirectoryError, PermissionError, ValueError,
                TypeError) as exc:
            print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
