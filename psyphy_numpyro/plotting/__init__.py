"""Matplotlib figures for papers: covariance fields, thresholds, checks, learning curves.

matplotlib is imported lazily so that the numerical core never needs it.

- :mod:`.fit_plot`: :func:`plot_fit` (a whole fit, 1-D, 2-D or three slices of a
  3-D fit);
- :mod:`.field`: :func:`plot_field`, :func:`plot_field_band`, :func:`grid_points`,
  :func:`ellipse_points`, :func:`auto_scale`;
- :mod:`.threshold_plot`: :func:`plot_thresholds`, :func:`threshold_scale`;
- :mod:`.curves`: :func:`plot_learning_curve`, :func:`plot_psychometric`,
  :func:`plot_trials`;
- :mod:`.ppc`: :func:`plot_ppc` and :func:`binned_ppc` (binned observed vs
  predicted proportion correct, from a fit or ArviZ data);
- :mod:`.mocs`: :func:`plot_mocs` (MOCS validation: fit vs Weibull thresholds);
- :mod:`.population_plot`: :func:`plot_population` (a population fit: the
  population's and every observer's field, small multiples);
- :func:`save_figure` writes PNG (300 dpi), PDF or SVG.

Publication defaults: every axis is labelled with its units (stimulus
coordinates are model units, ``[-1, 1]``), colours come from :data:`PALETTE`
(Okabe & Ito's colour-blind-safe colours), ellipse scales are stated on the
figure, and legends sit outside the data.
"""

from ._base import COLORS, PALETTE, figure_legend, legend_outside, plane_covariances, save_figure
from .curves import plot_learning_curve, plot_psychometric, plot_trials
from .field import (
    SLICE_PLANES,
    auto_scale,
    ellipse_points,
    grid_points,
    plot_field,
    plot_field_band,
    scale_text,
)
from .fit_plot import plot_fit
from .mocs import plot_mocs
from .population_plot import plot_population
from .ppc import BinnedPPC, binned_ppc, plot_ppc
from .threshold_plot import plot_thresholds, threshold_scale

__all__ = [
    "COLORS",
    "PALETTE",
    "SLICE_PLANES",
    "BinnedPPC",
    "binned_ppc",
    "ellipse_points",
    "auto_scale",
    "plane_covariances",
    "plot_field",
    "plot_field_band",
    "plot_fit",
    "plot_learning_curve",
    "grid_points",
    "plot_ppc",
    "plot_thresholds",
    "threshold_scale",
    "plot_psychometric",
    "plot_trials",
    "save_figure",
    "plot_mocs",
    "plot_population",
    "figure_legend",
    "legend_outside",
    "scale_text",
]
