"""A population fit as one figure: :func:`plot_population`.

One concept: the population's field beside every observer's, at one scale,
so a reader sees at a glance who is like the population and where.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from ..validation import check_int, check_real
from ._base import PALETTE, _plt, figure_legend, unit_ticks
from .field import auto_scale, grid_points, plot_field, plot_field_band, scale_text
from .fit_plot import space_extent

__all__ = ["plot_population", "radius_deviation"]

_DIRECTIONS = np.stack([np.cos(np.linspace(0, np.pi, 16, endpoint=False)),
                        np.sin(np.linspace(0, np.pi, 16, endpoint=False))], -1)


def radius_deviation(S, S_pop) -> float:
    """Median ``|log(r_i / r_pop)|`` of the ellipse radii ``r = 1 / sqrt(u' Sigma^-1 u)``
    of two fields ``(G, 2, 2)`` over 16 directions ``u`` at every point: how far one field's
    ellipses (and equal-covariance thresholds) are from the other's, as a log ratio."""

    def radii(M):
        P = np.linalg.inv(np.asarray(M, np.float64))
        return 1.0 / np.sqrt(np.einsum("ki,gij,kj->gk", _DIRECTIONS, P, _DIRECTIONS))

    return float(np.median(np.abs(np.log(radii(S) / radii(S_pop)))))


def _fields(fit, grid, space):
    """Covariance draws (or one point) at ``grid`` (model units), in the space's units."""
    S = np.asarray(fit.covariance(grid), dtype=float)
    return S if space is None else space.covariance_to_lab(S)


def _check(pop, observers, level, points_per_axis, scale):
    from ..population_fit import PopulationFit

    if not isinstance(pop, PopulationFit):
        raise InvalidType(f"plot_population needs a PopulationFit, got {type(pop).__name__}")
    if pop.model.input_dim != 2:
        raise InvalidInput("plot_population draws 2-D fields; this population is "
                           f"{pop.model.input_dim}-D (plot each member with pn.plot_fit)")
    K = pop.num_observers
    chosen = list(range(K)) if observers is None else [check_int("observers[i]", i, 0)
                                                         for i in observers]
    if not chosen or any(i >= K for i in chosen) or len(set(chosen)) != len(chosen):
        raise InvalidInput(f"observers must be distinct indices below {K}, got {observers!r}")
    check_int("points_per_axis", points_per_axis, 1)
    return chosen, check_real("level", level, 0.0, 1.0), (
        None if scale is None else check_real("scale", scale, 0.0))


def plot_population(pop, *, observers=None, points_per_axis: int = 5, level: float = 0.9,
                    scale=None, ncols: int = 3):
    """The population's field and every observer's, as small multiples.

    The first panel overlays every observer's ellipses (thin, one colour each)
    on the population's (black); each further panel is one observer (its
    median and ``level`` band for a Laplace or NUTS population fit) over the
    population's (dashed), titled with its trial count, its deviation scale
    ``tau_i`` and how far its ellipses are from the population's
    (:func:`radius_deviation`, as a percentage). One ellipse scale for all
    panels, stated on the figure; a 2-D population only (a space's units when
    the observers' data have one).

    Parameters
    ----------
    pop : PopulationFit
    observers : list of int, optional
        Which observers get a panel (default all).
    points_per_axis : int
        Grid points per axis.
    level : float
        Central probability of the bands (posterior fits).
    scale : float, optional
        Mahalanobis radius of the ellipses (default: fitted to the population).
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib Figure
    """
    chosen, level, scale = _check(pop, observers, level, points_per_axis, scale)
    ncols = check_int("ncols", ncols, 1)
    space = getattr(pop.observers[0].data, "space", None)
    grid = grid_points(points_per_axis)
    centers = grid
    if space is not None:
        lo, hi = space_extent(space)
        centers = lo + 0.5 * (grid + 1.0) * (hi - lo)
        grid = np.clip(space.to_model(centers, check=False), -1.0, 1.0)
    S_pop = _fields(pop.population, grid, space)
    med_pop = S_pop if pop.population.point else np.median(S_pop, axis=0)
    per = {i: _fields(pop.observers[i], grid, space) for i in chosen}
    med = {i: S if pop.observers[i].point else np.median(S, axis=0) for i, S in per.items()}
    if scale is None:
        scale = auto_scale(centers, np.concatenate([med_pop, *med.values()]))
    plt = _plt()
    n = 1 + len(chosen)
    rows = -(-n // min(ncols, n))
    fig, axes = plt.subplots(rows, min(ncols, n), figsize=(3.6 * min(ncols, n), 3.7 * rows),
                             layout="constrained", squeeze=False, sharex=True, sharey=True)
    colors = {i: PALETTE[k % len(PALETTE)] for k, i in enumerate(chosen)}
    ax0 = axes.flat[0]
    for i in chosen:
        plot_field(med[i], centers, ax=ax0, scale=scale, color=colors[i], lw=0.8, alpha=0.8)
    plot_field(med_pop, centers, ax=ax0, scale=scale, color="k", lw=1.8, label="population")
    ax0.set_title(f"population and {len(chosen)} observers", fontsize=10)
    for ax, i in zip(axes.flat[1:], chosen, strict=False):
        fit = pop.observers[i]
        if not fit.point:
            plot_field_band(per[i], centers, ax=ax, scale=scale, level=level, color=colors[i],
                            label=f"{100 * level:.0f}% band")
        plot_field(med[i], centers, ax=ax, scale=scale, color=colors[i], lw=1.3,
                   label="observer" if fit.point else "observer (median)")
        plot_field(med_pop, centers, ax=ax, scale=scale, color="k", lw=1.0, ls="--",
                   label="population")
        ax.set_title(f"observer {i}: {len(fit.data)} trials, tau_i = {pop.observer_taus[i]:.2g}\n"
                     f"ellipses {100 * radius_deviation(med[i], med_pop):.0f}% from the "
                     "population", fontsize=9)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    cols = axes.shape[1]
    for k, ax in enumerate(axes.flat[:n]):
        if space is None:
            unit_ticks(ax)
        if k + cols < n:  # a panel below carries the x labels
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
        else:
            ax.tick_params(labelbottom=True)
        if k % cols:
            ax.set_ylabel("")
    figure_legend(fig, list(axes.flat[1:n]), title=scale_text(scale, pop.model))
    kind = {"map": "MAP", "laplace": "Laplace", "nuts": "NUTS"}.get(pop.inference, pop.inference)
    fig.suptitle(f"Population fit ({kind}), {pop.num_observers} observers, "
                 f"tau = {pop.tau:.2g}")
    return fig
