"""Hyperparameters from the data: the prior scale and ``diag_term`` from a quick isotropic pre-fit.

The WPPM prior sets the scale of the field: ``variance_scale`` the typical
size of ``Sigma(x)`` and ``diag_term`` a floor under it. A 66.7% oddity
threshold can never be below ``k sqrt(diag_term)`` (``k`` ~ 2.5, the
Mahalanobis distance at which the equal-covariance p(correct) is 2/3), and a
prior whose typical ``Sigma`` is 100 times too large (or too small) must be
overcome by the data before the fit sees the field. Observers differ by more
than that: thresholds in ``[-1, 1]`` units range from ~0.003 to ~0.3.

:func:`choose_hyperparameters` measures the observer's scale before the
fit, cheaply (milliseconds, no compilation):

1. The references are binned into cells (``g^d`` equal cells of the
   bounding box of the references, ``g`` chosen so that a cell holds at
   least ``min_trials_per_cell`` trials, at most 4 per axis).
2. In each cell an *isotropic* observer ``Sigma = s^2 I`` is fitted by
   maximum likelihood over a log grid of ``s``: p(correct) is the
   equal-covariance function ``f(|comparison - ref| / s)`` (the table of
   the ``"table"`` estimator) with 2% lapses for robustness. Its 66.7%
   threshold is ``k s``.
3. ``variance_scale`` is set so that the prior mean of ``Sigma_ii(x)``
   (averaged over the domain) equals ``s^2`` of the typical (geometric mean)
   cell, and ``diag_term`` so that the threshold floor ``k sqrt(diag_term)``
   is a quarter of the smallest cell threshold (cells average over the
   field, so the true smallest threshold is lower). ``decay_rate`` and the
   basis are kept.

The choice is reported: ``fit.hyperparameters`` of a :func:`fit_map` that
chose them (and :meth:`HyperparameterChoice.describe`). A user-given model is
never changed; :func:`check_floor` warns when its ``diag_term`` floor is
above the thresholds the data imply.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .data import as_trial_data
from .errors import InvalidInput, InvalidType
from .validation import check_int

__all__ = ["HyperparameterChoice", "choose_hyperparameters", "pooled_choice", "threshold_floor",
           "check_floor", "floor_is_high", "isotropic_scales"]

_GUESS_LAPSE = 0.02
_S_GRID = np.geomspace(1e-4, 3.0, 241)
_BLOCK = 8192  # trials per block of the pre-fit's likelihood grid
FLOOR_FRACTION = 0.25
"""The threshold floor ``k sqrt(diag_term)`` chosen as this fraction of the smallest cell
threshold."""


def _table(d: int, bandwidth: float):
    from ._kernels import equal_cov_table

    return equal_cov_table(d, float(bandwidth))


def threshold_constant(input_dim: int, bandwidth: float = 1e-2, target: float = 2 / 3) -> float:
    """``k``: the Mahalanobis distance at which the equal-covariance p(correct) is ``target``."""
    q, f = _table(input_dim, bandwidth)
    return float(np.sqrt(np.interp(target, f, q)))


def threshold_floor(model) -> float:
    """The smallest 66.7% threshold the model can express: ``k sqrt(diag_term)``."""
    return threshold_constant(model.input_dim, model.bandwidth) * math.sqrt(model.diag_term)


def reference_cells(ref, min_trials, max_per_axis=4):
    """Cells of reference space with enough trials each: ``(cell index of every trial,
    cell centres, g)``.

    The bounding box of ``ref`` (N, d) is cut into ``g^d`` equal cells, ``g``
    as large as ``max_per_axis`` allows with about ``min_trials`` trials per
    cell. The hyperparameter pre-fit measures one threshold per cell; cross-
    validation stratifies its folds by cell.
    """
    n, d = ref.shape
    g = int(max(1, min(max_per_axis, math.floor((n / min_trials) ** (1.0 / d)))))
    lo, hi = ref.min(0), ref.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    idx = np.clip(((ref - lo) / span * g).astype(int), 0, g - 1)
    flat = np.ravel_multi_index(idx.T, (g,) * d)
    centres = lo + (np.stack(np.unravel_index(np.arange(g**d), (g,) * d), 1) + 0.5) * span / g
    return flat, centres, g


def isotropic_scales(data, *, min_trials_per_cell: int = 150, bandwidth: float = 1e-2):
    """Maximum-likelihood isotropic noise scale ``s`` per cell of reference space.

    Returns
    -------
    centres : array (C, d)
    scales : array (C,)
        ``s`` of ``Sigma = s^2 I`` in each cell (NaN for a cell without trials).
    counts : array (C,)
        Trials per cell.
    """
    data = as_trial_data(data)
    check_int("min_trials_per_cell", min_trials_per_cell, 1)
    ref, comp = data.model_stimuli[:, 0], data.model_stimuli[:, 1]
    y = np.asarray(data.responses, float)
    d = data.input_dim
    q_tab, f_tab = _table(d, bandwidth)
    dist2 = np.sum((comp - ref) ** 2, -1)
    cell, centres, _ = reference_cells(ref, min_trials_per_cell)
    C = len(centres)
    per_cell = np.zeros((len(_S_GRID), C))
    for lo in range(0, len(y), _BLOCK):  # (S, block) at a time: memory does not grow with N
        sl = slice(lo, lo + _BLOCK)
        p = np.interp(dist2[None, sl] / _S_GRID[:, None] ** 2, q_tab, f_tab, right=f_tab[-1])
        p = np.clip((1 - _GUESS_LAPSE) * p + _GUESS_LAPSE / 3, 1e-9, 1 - 1e-9)
        ll = y[sl] * np.log(p) + (1 - y[sl]) * np.log1p(-p)
        np.add.at(per_cell.T, cell[sl], ll.T)
    counts = np.bincount(cell, minlength=C)
    best = np.argmax(per_cell, 0)
    scales = np.where(counts > 0, _S_GRID[best], np.nan)
    return centres, scales, counts


@dataclass(frozen=True)
class HyperparameterChoice:
    """What :func:`choose_hyperparameters` chose, and why.

    Attributes
    ----------
    model : WPPM
        The base model with ``variance_scale`` and ``diag_term`` set from the data.
    centres, thresholds, counts : arrays (C, d), (C,), (C,)
        The cells of reference space, the isotropic pre-fit's 66.7% threshold
        in each and its trial count.
    typical_threshold, smallest_threshold : float
        Geometric mean (weighted by trials) and minimum of the cell thresholds.
    threshold_floor : float
        ``k sqrt(diag_term)`` of the chosen model.
    fixed : tuple of str
        Settings the user fixed (kept as given).
    """

    model: object  # the WPPM (wppm.py imports this module, so no import of WPPM here)
    centres: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    typical_threshold: float = math.nan
    smallest_threshold: float = math.nan
    threshold_floor: float = math.nan
    fixed: tuple = ()
    method: str = "isotropic pre-fit per cell of reference space"

    def describe(self) -> list[str]:
        """Lines for a report (the CLI and ``MAPFit.describe`` print them)."""
        m = self.model
        kept = f" (kept as given: {', '.join(self.fixed)})" if self.fixed else ""
        return [
            f"hyperparameters from the data ({self.method}, {len(self.thresholds)} cells): "
            f"typical threshold {self.typical_threshold:.3g}, smallest "
            f"{self.smallest_threshold:.3g}",
            f"  -> variance_scale={m.variance_scale:.3g}, diag_term={m.diag_term:.3g} "
            f"(threshold floor {self.threshold_floor:.3g}){kept}",
        ]

    def to_dict(self) -> dict:
        """A JSON-ready summary (stored in fit files)."""
        return {
            "method": self.method,
            "variance_scale": float(self.model.variance_scale),
            "diag_term": float(self.model.diag_term),
            "typical_threshold": float(self.typical_threshold),
            "smallest_threshold": float(self.smallest_threshold),
            "threshold_floor": float(self.threshold_floor),
            "fixed": list(self.fixed),
            "cell_thresholds": [float(t) for t in self.thresholds],
            "cell_counts": [int(c) for c in self.counts],
        }


def pooled_choice(datas, base) -> HyperparameterChoice:
    """One model for several observers' data sets (one compiled program serves them all):
    :func:`choose_hyperparameters` of ``base`` (e.g. the default WPPM) on every trial
    pooled (in the box)."""
    from .data import TrialData

    datas = [as_trial_data(d) for d in datas]
    pooled = TrialData(np.concatenate([d.model_stimuli for d in datas]),
                       np.concatenate([d.responses for d in datas]))
    return choose_hyperparameters(pooled, base)


def choose_hyperparameters(data, base, *, fixed=(),
                           min_trials_per_cell: int = 150) -> HyperparameterChoice:
    """Set ``variance_scale`` and ``diag_term`` of ``base`` from the data (see the module).

    ``WPPM.for_data(data, **settings)`` is the usual way to call this (it
    returns the model); this function also returns the report.

    Parameters
    ----------
    data : TrialData
    base : WPPM
        The other settings (e.g. ``pn.WPPM(input_dim=2)``).
    fixed : iterable of str
        Names among ``"variance_scale"``, ``"diag_term"`` to keep as in ``base``.
    min_trials_per_cell : int
        Fewest trials per cell of the pre-fit (fewer trials: fewer cells).

    Returns
    -------
    HyperparameterChoice
    """
    data = as_trial_data(data)
    if not all(hasattr(base, k) for k in ("variance_scale", "diag_term", "replace")):
        raise InvalidType(f"base must be a psyphy_numpyro.WPPM, got {type(base).__name__}")
    if base.input_dim != data.input_dim:
        raise InvalidInput(f"data has stimulus dimension {data.input_dim} but the model has "
                           f"input_dim={base.input_dim}")
    fixed = tuple(fixed)
    unknown = sorted(set(fixed) - {"variance_scale", "diag_term"})
    if unknown:
        raise InvalidInput(f"fixed names unknown hyperparameters {unknown}; the choice sets "
                           "'variance_scale' and 'diag_term'")
    centres, scales, counts = isotropic_scales(data, min_trials_per_cell=min_trials_per_cell,
                                               bandwidth=base.bandwidth)
    k = threshold_constant(base.input_dim, base.bandwidth)
    ok = counts > 0
    th = k * scales
    typical = float(np.exp(np.sum(counts[ok] * np.log(th[ok])) / counts[ok].sum()))
    smallest = float(np.min(th[ok]))
    changes = {}
    if "variance_scale" not in fixed:
        s_typ = typical / k
        changes["variance_scale"] = float(s_typ**2 / base.prior_mean_variance(unit_scale=True))
    if "diag_term" not in fixed:
        changes["diag_term"] = float((FLOOR_FRACTION * smallest / k) ** 2)
    model = base.replace(**changes)
    return HyperparameterChoice(
        model=model, centres=centres, thresholds=th, counts=counts, typical_threshold=typical,
        smallest_threshold=smallest, threshold_floor=threshold_floor(model), fixed=fixed,
    )


def floor_is_high(data, model):
    """``(high, choice)``: whether the model's ``diag_term`` floor ``k sqrt(diag_term)``
    is above half of the smallest cell threshold of the isotropic pre-fit (then it
    would hold the fit's thresholds up), and the pre-fit's choice (``None`` under 50
    trials, which are too few to tell)."""
    if len(data) < 50:
        return False, None
    choice = choose_hyperparameters(data, model, fixed=("variance_scale",))
    return threshold_floor(model) > 0.5 * choice.smallest_threshold, choice


def check_floor(data, model, *, stacklevel: int = 3) -> None:
    """Warn when the model's ``diag_term`` floor is above thresholds the data imply.

    The floor ``k sqrt(diag_term)`` is compared with the smallest cell threshold
    of the isotropic pre-fit; a floor above half of it would hold the fit's
    thresholds up there (:func:`floor_is_high`).
    """
    high, choice = floor_is_high(data, model)
    if high:
        floor = threshold_floor(model)
        warnings.warn(
            f"model.diag_term={model.diag_term:g} puts a floor of {floor:.3g} under every "
            f"threshold, more than half of the smallest threshold the data imply "
            f"(~{choice.smallest_threshold:.3g}): thresholds near it are held up by the floor. "
            f"Use WPPM.for_data(data) (or fit_map without a model) to choose the "
            f"hyperparameters from the data, or set diag_term <= {choice.model.diag_term:.2g}",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
