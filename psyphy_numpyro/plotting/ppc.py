"""Psychometric posterior predictive check: binned observed proportion correct vs predicted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..fits import Fit
from ..validation import check_int, check_real
from ._base import COLORS, _plt, legend_outside

__all__ = ["binned_ppc", "plot_ppc", "BinnedPPC"]

_MIN_REPLICATES = 20


@dataclass(frozen=True)
class BinnedPPC:
    """Trials in equal-count bins: observed and predicted proportion correct.

    Attributes
    ----------
    by : str
        ``"p"`` (bins of predicted p(correct)) or ``"distance"`` (bins of the
        reference-comparison distance).
    x : numpy array (B,)
        Mean of the binning variable in each bin.
    observed : numpy array (B,)
        Observed proportion correct.
    predicted : numpy array (B,)
        Predicted proportion correct (mean over trials of the posterior-mean
        response probability, lapses included).
    lower, upper : numpy arrays (B,)
        Central ``level`` interval of the proportion correct in replicated
        data (posterior draws and Bernoulli noise): where ``observed`` should
        fall ``level`` of the time if the model is right.
    counts : numpy array (B,)
        Trials per bin.
    level : float
    num_replicates : int
    """

    by: str
    x: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray
    level: float
    num_replicates: int

    @property
    def inside(self) -> np.ndarray:
        """Bins whose observed proportion lies inside the predictive interval."""
        return (self.lower <= self.observed) & (self.observed <= self.upper)


def _from_fit(fit, key, num_samples):
    if fit.data is None or len(fit.data) == 0:
        raise InvalidInput("plot_ppc needs a fit with its data (fit.data is empty)")
    from ..readout import DEFAULT_READOUT_SAMPLES

    data = fit.data
    if num_samples is None:
        num_samples = max(fit.model.num_samples, DEFAULT_READOUT_SAMPLES)
    model_stim = data.model_stimuli  # fit.p_correct speaks the box; distances stay in data units
    p = np.asarray(fit.p_correct(model_stim[:, 0], model_stim[:, 1], key=key,
                                 num_samples=num_samples, include_lapse=True), dtype=float)
    P = p[None] if fit.point else p.reshape(-1, len(data))
    dist = np.linalg.norm(np.asarray(data.comparison, float) - np.asarray(data.ref, float),
                          axis=-1)
    return np.asarray(data.responses, dtype=float), P, None, dist


def _group(idata, name):
    try:
        return idata[name]
    except (KeyError, TypeError, AttributeError):
        return None


def _from_idata(idata):
    obs, const, pp = (_group(idata, g) for g in
                      ("observed_data", "constant_data", "posterior_predictive"))
    if obs is None or const is None:
        raise InvalidType(
            "plot_ppc needs a fit or ArviZ data from fit.to_arviz() (groups observed_data and "
            f"constant_data), got {type(idata).__name__}"
        )
    if pp is None:
        raise InvalidInput(
            "the ArviZ data has no posterior_predictive group: make it with "
            "fit.to_arviz(posterior_predictive=True), or pass the fit itself"
        )
    try:
        y = np.asarray(obs["y"], dtype=float).ravel()
        ref = np.asarray(const["ref"], dtype=float)
        comp = np.asarray(const["comparison"], dtype=float)
        rep = np.asarray(pp["y"], dtype=float)
    except KeyError as exc:
        raise InvalidInput(f"the ArviZ data lacks {exc}: expected observed_data y, "
                           "constant_data ref/comparison and posterior_predictive y") from None
    n = len(y)
    if rep.size % max(n, 1) or rep.shape[-1] != n:
        raise InvalidInput(f"posterior_predictive y has shape {rep.shape}, expected "
                           f"(chain, draw, {n})")
    rep = rep.reshape(-1, n)
    if len(rep) < _MIN_REPLICATES:
        raise InvalidInput(
            f"plot_ppc needs at least {_MIN_REPLICATES} posterior predictive draws, the ArviZ "
            f"data has {len(rep)} (a MAP fit's holds one): pass the fit itself"
        )
    dist = np.linalg.norm(comp.reshape(n, -1) - ref.reshape(n, -1), axis=-1)
    return y, None, rep, dist


def binned_ppc(source, *, bins: int = 10, by: str = "p", level: float = 0.9,
               num_replicates: int = 1000, seed: int = 0, key=0,
               num_samples=None) -> BinnedPPC:
    """Observed vs predicted proportion correct in equal-count bins of trials.

    Trials are sorted by the binning variable and split into ``bins`` groups
    of (nearly) equal size, so every point rests on the same number of
    trials:

    - ``by="p"``: the predicted p(correct) of each trial (posterior mean,
      lapses included) -- a calibration check that needs no stimulus scale;
    - ``by="distance"``: the Euclidean reference-comparison distance in model
      units -- a psychometric function of distance pooled over references and
      directions.

    Parameters
    ----------
    source : fit or ArviZ data
        Any fit with its data (``p_correct`` gives each trial's probability
        per draw; replicated responses are drawn from it with ``seed``), or
        the output of ``fit.to_arviz(posterior_predictive=True)`` (ArviZ 0.x
        InferenceData or ArviZ >= 1.0 DataTree: groups are read as
        ``idata["observed_data"]["y"]``, ``idata["constant_data"]["ref"]`` /
        ``["comparison"]`` and ``idata["posterior_predictive"]["y"]``, whose
        replicates give both the predicted probability and the band).
    bins : int
        Number of bins (at most the number of trials).
    by : {"p", "distance"}
    level : float
        Central probability of the predictive interval.
    num_replicates : int
        Replicated data sets drawn from a fit (posterior draws are cycled).
    seed : int
        Seed of the replicated responses (fits only).
    key, num_samples
        Estimator noise and sample count of ``fit.p_correct`` (fits only;
        default ``max(model.num_samples, 1024)``, as for thresholds: the
        prediction must not carry the estimator's own noise).

    Returns
    -------
    BinnedPPC
    """
    if by not in ("p", "distance"):
        raise InvalidInput(f'by must be "p" or "distance", got {by!r}')
    bins = check_int("bins", bins, 1)
    level = check_real("level", level, 0.0, 1.0)
    num_replicates = check_int("num_replicates", num_replicates, 1)
    if isinstance(source, Fit):
        y, P, rep, dist = _from_fit(source, key, num_samples)
        pbar = P.mean(0)
    else:
        y, P, rep, dist = _from_idata(source)
        pbar = rep.mean(0)
    n = len(y)
    if bins > n:
        raise InvalidInput(f"bins must be <= the number of trials ({n}), got {bins}")
    order = np.argsort(pbar if by == "p" else dist, kind="stable")
    groups = np.array_split(order, bins)
    value = pbar if by == "p" else dist
    rng = np.random.default_rng(seed)
    q = 50 * (1 - level)
    cols = {k: np.empty(bins) for k in ("x", "observed", "predicted", "lower", "upper")}
    counts = np.array([len(g) for g in groups])
    for b, idx in enumerate(groups):
        if rep is None:
            which = np.arange(num_replicates) % len(P)
            sim = rng.random((num_replicates, len(idx))) < P[:, idx][which]
            props = sim.mean(1)
        else:
            props = rep[:, idx].mean(1)
        cols["x"][b] = value[idx].mean()
        cols["observed"][b] = y[idx].mean()
        cols["predicted"][b] = pbar[idx].mean()
        cols["lower"][b], cols["upper"][b] = np.percentile(props, [q, 100 - q])
    return BinnedPPC(by=by, counts=counts, level=level,
                     num_replicates=num_replicates if rep is None else len(rep), **cols)


def plot_ppc(source, *, ax=None, bins: int = 10, by: str = "p", level: float = 0.9,
             num_replicates: int = 1000, seed: int = 0, key=0, num_samples=None,
             color=None, title=None):
    """Psychometric posterior predictive check: binned observed vs predicted p(correct).

    Draws :func:`binned_ppc`: the observed proportion correct of each
    equal-count bin of trials (black points), the prediction (line) and the
    central ``level`` interval of replicated data (band: posterior draws and
    Bernoulli noise, so a MAP fit gets the binomial interval of its
    prediction) and chance, 1/3 (dashed). With ``by="p"`` the prediction is the diagonal, and points
    off the band are miscalibrated bins; with ``by="distance"`` it is a
    pooled psychometric function of the reference-comparison distance.

    Parameters
    ----------
    source : fit or ArviZ data
        See :func:`binned_ppc` (ArviZ data needs ``posterior_predictive``).
    ax : matplotlib Axes, optional
        Default a new figure.
    bins, by, level, num_replicates, seed, key, num_samples
        As in :func:`binned_ppc`.
    color : optional
        Colour of prediction and band (default the palette's blue).
    title : str, optional

    Returns
    -------
    matplotlib Figure
    """
    res = binned_ppc(source, bins=bins, by=by, level=level, num_replicates=num_replicates,
                     seed=seed, key=key, num_samples=num_samples)
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    else:
        fig = ax.figure
    color = COLORS["blue"] if color is None else color
    pct = f"{100 * res.level:.0f}%"
    order = np.argsort(res.x)
    x = res.x[order]
    xp = res.predicted[order] if by == "p" else x
    ax.fill_between(xp, res.lower[order], res.upper[order], color=color, alpha=0.3, lw=0,
                    label=f"{pct} interval of replicated data")
    if by == "p":
        lo = min(res.lower.min(), res.observed.min(), res.predicted.min()) - 0.03
        ax.plot([lo, 1.0], [lo, 1.0], color=color, lw=1.2, label="predicted (identity)")
        ax.set_xlim(lo, 1.0)
        ax.set_xlabel("predicted p(correct), bin mean (lapses included)")
    else:
        ax.plot(x, res.predicted[order], color=color, lw=1.5, marker=".",
                label="predicted (posterior mean)")
        ax.set_xlabel("reference-comparison distance, bin mean (model units)")
    ax.axhline(1 / 3, color="0.35", ls="--", lw=0.8, label="chance (1/3)")
    ax.plot(xp, res.observed[order], "o", color="k", ms=5, zorder=3,
            label="observed proportion")
    ax.set_ylabel("proportion correct")
    top = max(1.0, float(res.upper.max()))
    ax.set_ylim(min(ax.get_ylim()[0], float(res.lower.min()) - 0.03, 1 / 3 - 0.03), top + 0.02)
    n = int(res.counts.sum())
    per = f"{res.counts.min()}" if res.counts.min() == res.counts.max() else \
        f"{res.counts.min()}-{res.counts.max()}"
    what = "predicted p" if by == "p" else "distance"
    ax.set_title(title if title is not None else
                 f"Posterior predictive check: {n} trials in {len(res.x)} bins of {what} "
                 f"({per} trials each)", fontsize=9)
    legend_outside(ax)
    return fig
