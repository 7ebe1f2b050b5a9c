"""The subcommands ``fit``, ``summary`` and ``thresholds``: a thin shell over the library.

Each command validates paths, calls library functions and prints; nothing
here computes what the library does not expose.
"""

from __future__ import annotations

import os
import warnings

from ._common import MODEL_OPTIONS, CLIError, given_options
from .experiment import run as _cmd_experiment
from .serve import run as _cmd_serve

__all__ = ["COMMANDS"]


def _progress(args):
    return False if getattr(args, "no_progress", False) else None


def _check_input_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory")


def _check_figure(path):
    from ..plotting._base import check_figure_path

    _check_output_path(path, "--plot")
    check_figure_path(path)


def _check_output_path(path, what):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{what} {path}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path}: is a directory")


def _weights_dtype(path):
    """The dtype of the saved weights ``W``, read where the fit-file format keeps them
    (format 2: ``unconstrained_posterior``, format 1: ``posterior``); ``None`` for a file
    that is not NetCDF-4 or holds no ``W`` (:func:`load_fit` then reports it)."""
    import h5netcdf
    import numpy as np

    from ..arviz_io import WEIGHTS_GROUP

    try:
        fh = h5netcdf.File(path, "r")
    except OSError:  # not an HDF5 (NetCDF-4) file
        return None
    with fh:
        for name in (WEIGHTS_GROUP, "posterior"):
            group = fh.groups.get(name)
            if group is not None and "W" in group.variables:
                return np.dtype(group.variables["W"].dtype)
    return None


def _enable_x64_for(path):
    """Switch JAX to float64 when the saved weights are float64 (identical read-outs)."""
    import jax
    import numpy as np

    if _weights_dtype(path) == np.float64:
        jax.config.update("jax_enable_x64", True)


def _load(path):
    from ..persist import load_fit

    _check_input_file(path)
    _enable_x64_for(path)
    return load_fit(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(d, points_per_axis):
    from ..arviz_io import default_grid

    if points_per_axis < 1:
        raise CLIError(f"--points-per-axis must be >= 1, got {points_per_axis}")
    return default_grid(d, points_per_axis)


def _kind_name(fit):
    """The fit kind for display (``persist.fit_kind``, NUTS named)."""
    from ..persist import fit_kind

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

    from ..hyperparameters import choose_hyperparameters
    from ..laplace import fit_laplace
    from ..map_fit import fit_map
    from ..mcmc import fit_mcmc
    from ..wppm import WPPM

    _check_input_file(args.trials)
    _check_output_path(args.out, "--out")
    if args.plot:
        _check_figure(args.plot)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    data = _read_trials(args)
    d = data.input_dim
    if args.input_dim is not None and args.input_dim != d:
        raise CLIError(f"--input-dim {args.input_dim} does not match {args.trials}, whose "
                       f"columns are {d}-D")
    options = given_options(args, **{n: n for n, _, _ in MODEL_OPTIONS})
    # variance_scale and diag_term not given: chosen from the data (kept when given)
    choice = choose_hyperparameters(data, WPPM(input_dim=d, **options),
                                    fixed=[k for k in ("variance_scale", "diag_term")
                                           if k in options])
    model = choice.model
    progress = _progress(args)
    seed = given_options(args, seed="seed")
    if args.batch_size == 0:
        args.batch_size = None
        full_batch = {"batch_size": None}
    else:
        full_batch = {}
    print(f"{len(data)} trials ({d}-D) from {args.trials}; method {args.method}", flush=True)
    fit = fit_map(data, model, progress=progress, **seed, **full_batch,
                  **given_options(args, steps="steps", num_restarts="restarts",
                                  optimizer="optimizer", learning_rate="learning_rate",
                                  batch_size="batch_size"))
    if len(choice.fixed) < 2:
        fit.hyperparameters = choice.to_dict()
    for line in fit.describe():
        if line.startswith("hyperparameters from the data"):
            print(line, flush=True)
    for line in fit.loss_lines():
        print(f"MAP {line}", flush=True)
    print(f"MAP: kept restart {fit.best_restart} (numbered from 0) of "
          f"{len(fit.restart_losses)}", flush=True)
    if model.learns_lapse:
        print(f"MAP lapse rate: {fit.lapse_rate:.4g} (prior Beta{tuple(model.lapse_prior)})",
              flush=True)
    if args.method == "laplace":
        fit = fit_laplace(data, model, init=fit, progress=progress, **seed,
                          **given_options(args, num_draws="draws"))
        print(f"Laplace: {fit.num_draws} draws ({fit.curvature} curvature, "
              f"{fit.num_floored} eigenvalues floored)", flush=True)
    elif args.method == "nuts":
        fit = fit_mcmc(data, model, init=fit, progress=progress, **seed,
                       **given_options(args, num_warmup="warmup", num_draws="draws",
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


def _read_trials(args):
    """The trials CSV of ``fit``, read with ``--columns`` and ``--response-values``; the
    library's advice on ``columns=`` / ``response_values=`` is given as those options."""
    from ..data import TrialData
    from ..errors import InvalidInput

    try:
        return TrialData.from_csv(args.trials, columns=args.columns,
                                  response_values=args.response_values)
    except InvalidInput as exc:
        import re

        msg = str(exc)
        hints = []
        if "columns=" in msg or "columns:" in msg or "columns maps" in msg:
            # the message's own example, e.g. columns={'ref_x': '<your column>'}
            found = re.search(r"(?<!_)columns=\{([^}]*)\}", msg)
            pairs = re.findall(r"'([^']*)': '([^']*)'", found.group(1)) if found else []
            pairs = pairs or [("response", "<your column>"), ("ref_x", "<your column>")]
            hints.append("--columns " + ",".join(f"{k}={v}" for k, v in pairs) + ",...")
        if "response_values" in msg:
            hints.append("--response-values yes=1,no=0 (or yes,no; 1 = correct)")
        if not hints:
            raise
        raise CLIError(f"{msg} (on the command line: {'; '.join(hints)})") from None


def _plot_field(fit, path):
    from ..plotting import plot_fit, save_figure

    plt = _pyplot()
    fig = plot_fit(fit)
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------
def _grid_text(d):
    from ..arviz_io import default_grid

    grid = default_grid(d)
    per_axis = round(len(grid) ** (1 / d))
    return (f"grid point g of a {per_axis}^{d} grid over [-0.8, 0.8]^{d} "
            f"(psyphy_numpyro.arviz_io.default_grid({d})[g])")


def _cmd_summary(args):
    import numpy as np

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
    import pandas as pd

    from ..arviz_io import sigma_entries

    with warnings.catch_warnings():  # one chain: fit.summary() has no r_hat and no warnings;
        warnings.simplefilter("ignore")  # several: ArviZ's own r_hat / ESS warnings
        table = fit.summary()
    print(f"summary of the unique entries Sigma[g, ij] (ij in "
          f"{', '.join(sigma_entries(fit.model.input_dim))}) at "
          f"{_grid_text(fit.model.input_dim)}, columns grid_x ... its position; "
          "3 significant figures:")
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(table.to_string())
    return 0


# ---------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------
def _format_rows(names, values):
    import numpy as np

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
    from ..data import read_points
    from ..readout import thresholds

    fit = _load(args.fit)
    d = fit.model.input_dim
    if args.out:
        _check_output_path(args.out, "--out")
    if args.plot:
        _check_figure(args.plot)
    if args.refs == "grid":
        refs = _grid(d, args.points_per_axis)
    else:
        _check_input_file(args.refs)
        refs = read_points(args.refs, d)
    th = thresholds(fit, refs, target=args.target, num_directions=args.num_directions,
                    key=args.seed, num_samples=args.num_samples, level=args.level)
    if args.out:
        th.to_csv(args.out, refs)
        print(f"thresholds at p(correct) = {args.target:.4g} for {len(refs)} references "
              f"({_kind_name(fit)} fit) written to {args.out}")
    else:
        from ..contours import threshold_table

        names, values = threshold_table(th, refs)
        print(",".join(names))
        for cells in _format_rows(names, values):
            print(",".join(cells))
    if args.plot:
        _plot_thresholds(th, args.target, _kind_name(fit), args.plot)
        if args.out:
            print(f"plotted {args.plot}")
    return 0


def _plot_thresholds(th, target, kind, path):
    """Threshold ellipses (3-D: three slices) at a non-overlapping, stated scale."""
    from ..plotting import plot_thresholds, save_figure, threshold_scale
    from ..plotting._base import figure_legend, legend_outside, unit_ticks

    plt = _pyplot()
    d = th.input_dim
    scale = threshold_scale(th)
    if d == 3:
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 5.2), layout="constrained")
    else:
        fig, axes = plt.subplots(figsize=(7.6, 6) if d == 2 else (7.5, 4), layout="constrained")
    try:
        label = f"{kind} median" if th.has_draws else kind
        plot_thresholds(th, ax=axes, scale=scale, draws="ribbon", show_points=False,
                        label=label)
        title = f"Thresholds at p(correct) = {target:.3g} ({kind} fit, {len(th.refs)} references)"
        what = ("intervals at true size" if d == 1 else
                f"ellipses: {100 * target:.3g}%-correct thresholds, drawn at {scale:.3g} x "
                "true size (no overlap)")
        if d == 3:
            for ax in axes:
                ax.set(xlim=(-1, 1), ylim=(-1, 1))
                unit_ticks(ax)
            figure_legend(fig, axes, f"{what}; sections of the threshold ellipsoids by "
                          "each slice")
            fig.suptitle(title)
        else:
            if d == 2:
                axes.set(xlim=(-1, 1), ylim=(-1, 1))
                unit_ticks(axes)
            axes.set_title(title, fontsize=10)
            legend_outside(axes, title=what.replace(", drawn", ",\ndrawn"), title_fontsize=8)
        save_figure(fig, path)
    finally:
        plt.close(fig)


COMMANDS = {"fit": _cmd_fit, "summary": _cmd_summary, "thresholds": _cmd_thresholds,
            "experiment": _cmd_experiment, "serve": _cmd_serve}
