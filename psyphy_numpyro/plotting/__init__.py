"""Matplotlib figures: covariance-field ellipses, learning curves, read-outs and trials.

matplotlib is imported lazily so that the numerical core never needs it.

- :mod:`.field`: :func:`plot_fit` (a whole fit), :func:`plot_field`,
  :func:`plot_field_band`, :func:`grid_points`, :func:`ellipse_points`,
  :func:`auto_scale`;
- :mod:`.curves`: :func:`plot_learning_curve`, :func:`plot_thresholds`,
  :func:`plot_psychometric`, :func:`plot_trials`;
- :mod:`.mocs`: :func:`plot_mocs` (MOCS validation: fit vs Weibull thresholds);
- :func:`save_figure` writes PNG (300 dpi), PDF or SVG.
"""

from ._base import save_figure
from .curves import plot_learning_curve, plot_psychometric, plot_thresholds, plot_trials
from .field import (
    auto_scale,
    ellipse_points,
    grid_points,
    plot_field,
    plot_field_band,
    plot_fit,
)
from .mocs import plot_mocs

__all__ = [
    "ellipse_points",
    "auto_scale",
    "plot_field",
    "plot_field_band",
    "plot_fit",
    "plot_learning_curve",
    "grid_points",
    "plot_thresholds",
    "plot_psychometric",
    "plot_trials",
    "save_figure",
    "plot_mocs",
]
