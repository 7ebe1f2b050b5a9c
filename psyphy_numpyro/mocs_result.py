"""The result of a MOCS validation: :class:`MOCSValidation`.

:func:`psyphy_numpyro.mocs.validate_mocs` compares a WPPM fit's thresholds with
Weibull fits to held-out constant-stimuli trials and returns this record of the
per-condition thresholds and their agreement (slope and Pearson r with
bootstrap intervals), with its summary line, table, CSV writer and plot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .csvio import write_csv

__all__ = ["MOCSValidation"]

_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class MOCSValidation:
    """Result of :func:`~psyphy_numpyro.validate_mocs`: per-condition thresholds, their agreement.

    Attributes
    ----------
    refs, directions : numpy arrays (C, d)
        Reference and unit direction of every condition.
    weibull : list of WeibullFit
        The Weibull fit of every condition.
    weibull_threshold : numpy array (C,)
    weibull_interval : numpy array (2, C)
        Central ``level`` bootstrap interval (trials resampled within each level).
    fit_threshold : numpy array (C,)
        The WPPM fit's threshold along each condition's ray (the posterior
        median for draw-based fits); NaN where p(correct) never reaches
        ``target`` inside the domain.
    fit_interval : numpy array (2, C) or None
        Central ``level`` credible interval of a draw-based fit; ``None`` for
        a point fit.
    in_range : bool array (C,)
        Whether the Weibull threshold lies within the condition's tested levels.
    used : bool array (C,)
        Conditions entering ``slope`` and ``pearson_r``: finite thresholds and,
        unless ``include_out_of_range``, ``in_range``.
    slope : float
        No-intercept least-squares slope of fit thresholds on Weibull
        thresholds, ``sum(w f) / sum(w^2)``; 1 means no bias.
    slope_interval : numpy array (2,)
    pearson_r : float
        NaN with fewer than 3 used conditions.
    r_interval : numpy array (2,)
    level : float
        Probability of every interval.
    target : float
        p(correct) of the thresholds.
    num_bootstrap : int
    bootstrap_slope, bootstrap_r : numpy arrays (num_bootstrap,)
        Replicates behind ``slope_interval`` and ``r_interval``.
    weibull_bootstrap : numpy array (num_bootstrap, C)
        Bootstrap thresholds behind ``weibull_interval``.
    """

    refs: np.ndarray = field(repr=False)
    directions: np.ndarray = field(repr=False)
    weibull: list = field(repr=False)
    weibull_threshold: np.ndarray = field(repr=False)
    weibull_interval: np.ndarray = field(repr=False)
    fit_threshold: np.ndarray = field(repr=False)
    fit_interval: np.ndarray | None = field(repr=False)
    in_range: np.ndarray = field(repr=False)
    used: np.ndarray = field(repr=False)
    slope: float
    slope_interval: np.ndarray
    pearson_r: float
    r_interval: np.ndarray
    level: float
    target: float
    num_bootstrap: int
    bootstrap_slope: np.ndarray = field(repr=False)
    bootstrap_r: np.ndarray = field(repr=False)
    weibull_bootstrap: np.ndarray = field(repr=False)

    @property
    def num_conditions(self) -> int:
        return int(len(self.refs))

    @property
    def has_draws(self) -> bool:
        """True when the fit was draw-based (``fit_interval`` is set)."""
        return self.fit_interval is not None

    def summary(self) -> str:
        """One line: slope and r with their intervals, and how many conditions were used."""
        pct = f"{100 * self.level:.0f}%"
        s_lo, s_hi = self.slope_interval
        r_lo, r_hi = self.r_interval
        return (
            f"slope {self.slope:.3f} [{s_lo:.3f}, {s_hi:.3f}], r {self.pearson_r:.3f} "
            f"[{r_lo:.3f}, {r_hi:.3f}] ({pct} bootstrap intervals; "
            f"{int(self.used.sum())} of {self.num_conditions} conditions)"
        )

    def table(self) -> tuple[list[str], np.ndarray]:
        """One row per condition.

        Returns
        -------
        names : list of str
            ``condition``, ``ref_x ...``, ``dir_x ...``, ``num_levels``,
            ``num_trials``, ``level_min``, ``level_max``, ``weibull_alpha``,
            ``weibull_beta``, ``weibull_threshold``, ``weibull_lo``,
            ``weibull_hi``, ``fit_threshold``, for draw-based fits ``fit_lo``
            and ``fit_hi``, then ``in_range`` and ``used`` (1/0).
        values : numpy array (C, len(names))
        """
        axes = _AXES[: self.refs.shape[1]]
        wf = self.weibull
        cols = {"condition": np.arange(self.num_conditions, dtype=float)}
        cols.update({f"ref_{a}": self.refs[:, j] for j, a in enumerate(axes)})
        cols.update({f"dir_{a}": self.directions[:, j] for j, a in enumerate(axes)})
        cols["num_levels"] = [len(w.levels) for w in wf]
        cols["num_trials"] = [w.num_trials.sum() for w in wf]
        cols["level_min"] = [w.levels.min() for w in wf]
        cols["level_max"] = [w.levels.max() for w in wf]
        cols["weibull_alpha"] = [w.alpha for w in wf]
        cols["weibull_beta"] = [w.beta for w in wf]
        cols["weibull_threshold"] = self.weibull_threshold
        cols["weibull_lo"], cols["weibull_hi"] = self.weibull_interval
        cols["fit_threshold"] = self.fit_threshold
        if self.has_draws:
            cols["fit_lo"], cols["fit_hi"] = self.fit_interval
        cols["in_range"] = self.in_range
        cols["used"] = self.used
        names = list(cols)
        return names, np.stack([np.asarray(cols[n], dtype=float) for n in names], axis=1)

    def to_csv(self, path) -> None:
        """Write :meth:`table` to a CSV file, atomically; floats keep full precision."""
        names, values = self.table()
        ints = {"condition", "num_levels", "num_trials", "in_range", "used"}
        write_csv(path, names,
                  ([int(v) if n in ints else repr(float(v))
                    for n, v in zip(names, row, strict=True)] for row in values))

    def plot(self, ax=None, **kwargs):
        """Scatter of fit against Weibull thresholds (:func:`~psyphy_numpyro.plotting.plot_mocs`).

        Returns
        -------
        matplotlib Figure
        """
        from .plotting.mocs import plot_mocs

        return plot_mocs(self, ax=ax, **kwargs)
