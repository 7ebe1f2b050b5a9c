"""``PopulationFit``: the result of a population fit, whichever the inference.

One concept: what :func:`~psyphy_numpyro.fit_population` (MAP),
:func:`~psyphy_numpyro.fit_population_laplace` and
:func:`~psyphy_numpyro.fit_population_mcmc` return: the population's and every
observer's fit, the deviation scale ``tau`` (and the observers' own ``tau_i``), the
read-outs across members (:meth:`PopulationFit.deviation`, ArviZ), a new observer's
prior, and the NetCDF file (:mod:`.populationfile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fits import MAPFit
from .populationfile import read_population, write_population
from .wppm import WPPM

__all__ = ["PopulationFit"]



@dataclass
class PopulationFit:
    """Result of :func:`~psyphy_numpyro.fit_population`.

    Attributes
    ----------
    population : MAPFit
        The population field (the observers' mean, ``W_pop / sqrt(1 + tau^2)``;
        its data: every observer's trials
        pooled), with every read-out of a fit (``pn.thresholds``, plots ...).
    observers : list of MAPFit
        Each observer's field ``(W_pop + delta_i) / sqrt(1 + tau^2)`` with that
        observer's data.
    tau : float
        The (shared, typical) deviation scale, learned or fixed: observers stray
        from the population by about ``tau`` prior standard deviations per weight.
        A new observer's prior (:meth:`new_observer_prior`) uses it.
    learned_tau : bool
    model : WPPM
    loss_history : numpy array (steps,)
        The SVI loss (negative log joint) at every step.
    seed : int
    timings : dict
        Seconds: ``pooled`` (the pooled MAP start), ``information`` (the Fisher
        eigenvalues, learned ``tau``), ``compile``, ``steps``.
    observer_taus : numpy array (K,)
        Each observer's own deviation scale ``tau_i = tau kappa_i``; all ``tau``
        without observer scales. The largest marks the observer least like the rest.
    observer_scales : bool
        Whether the ``tau_i`` were learned (``fit_population(observer_scales=True)``).
    inference : str
        ``"map"`` (:func:`~psyphy_numpyro.fit_population`: every member a MAPFit), ``"laplace"``
        (:func:`~psyphy_numpyro.fit_population_laplace`: LaplaceFits) or ``"nuts"``
        (:func:`~psyphy_numpyro.fit_population_mcmc`: MCMCFits, draws with intervals).
    tau_draws : numpy array (chain, draw) or None
        Posterior draws of ``tau`` (NUTS with a learned ``tau``; ``tau`` is then
        their median).
    """

    population: MAPFit
    observers: list
    tau: float
    learned_tau: bool
    model: WPPM
    loss_history: np.ndarray = field(repr=False, default=None)
    seed: int = 0
    timings: dict = field(repr=False, default_factory=dict)
    observer_taus: np.ndarray = None
    observer_scales: bool = False
    inference: str = "map"
    tau_draws: np.ndarray | None = field(repr=False, default=None)

    def __post_init__(self):
        self.loss_history = np.asarray([] if self.loss_history is None else self.loss_history,
                                       np.float64)
        if self.observer_taus is None:
            self.observer_taus = np.full(len(self.observers), float(self.tau))
        self.observer_taus = np.asarray(self.observer_taus, np.float64).reshape(-1)

    @property
    def num_observers(self) -> int:
        return len(self.observers)

    def with_members(self, population, observers, *, inference: str, **changes) -> PopulationFit:
        """This fit with other members (posterior fits of the same model and data)."""
        from dataclasses import replace

        return replace(self, population=population, observers=list(observers),
                       inference=inference, **changes)

    def deviation(self, refs, directions=None, **kwargs) -> np.ndarray:
        """How far each observer is from the population, in threshold terms.

        Returns
        -------
        numpy array (K, R, D)
            ``log(threshold_i / threshold_pop)`` of every observer at the
            references ``refs (R, d)`` along ``directions`` (``pn.thresholds``'
            defaults; ``kwargs`` are passed on): 0 means the population's
            threshold, 0.1 a threshold 10.5% larger.
        """
        from .readout import thresholds

        pop = thresholds(self.population, refs, directions=directions, **kwargs).lengths
        return np.stack([np.log(thresholds(f, refs, directions=directions, **kwargs).lengths
                                / pop) for f in self.observers])

    def new_observer_prior(self, *, mean_uncertainty: float = 0.0):
        """The prior this population gives a new observer's weights (a
        :class:`~psyphy_numpyro.WeightPrior`): ``N(W_mean, tau^2 / (1 + tau^2)
        prior_std^2)``; see :meth:`WeightPrior.from_population
        <psyphy_numpyro.WeightPrior.from_population>`. Use it through
        ``pn.fit_map(data, prior=pop)``, ``pop.model.with_prior(pop)`` or
        ``pn.Experiment(path, prior=pop)``."""
        from .prior import WeightPrior

        return WeightPrior.from_population(self, mean_uncertainty=mean_uncertainty)

    def to_arviz(self, grid=None):
        """ArviZ data: the population's (``Sigma_pop``) and every observer's ``Sigma`` on a
        grid (dim ``observer``), and ``tau``, in the ``posterior`` group (one chain, one
        draw for a MAP fit; the draws of a Laplace or NUTS fit), with each observer's
        ``observer_tau`` (dim ``observer``)."""
        import xarray as xr

        from .arviz_io import add_group, group

        idata = self.population.to_arviz(grid=grid)
        post = group(idata, "posterior")
        shape = (post.sizes["chain"], post.sizes["draw"])
        per = [group(f.to_arviz(grid=grid, log_likelihood=False), "posterior")["Sigma"]
               for f in self.observers]  # only their Sigma is kept
        out = post.rename({"Sigma": "Sigma_pop"})
        out["Sigma"] = xr.concat(per, dim="observer").transpose("chain", "draw", "observer", ...)
        out = out.assign_coords(observer=np.arange(self.num_observers))
        tau = (np.full(shape, self.tau) if self.tau_draws is None
               else np.asarray(self.tau_draws).reshape(shape))
        out["tau"] = (("chain", "draw"), tau)
        taus = self.observer_taus[None, None] * (tau / self.tau)[..., None]
        out["observer_tau"] = (("chain", "draw", "observer"), taus)
        add_group(idata, "posterior", out)
        return idata

    def save(self, path) -> None:
        """Write the fit to one NetCDF file (read it back with :meth:`load`)."""
        write_population(self, path)

    @classmethod
    def load(cls, path) -> PopulationFit:
        """A fit written by :meth:`save` (a file from before the per-observer scales loads
        with every ``observer_taus[i] = tau``)."""
        return read_population(cls, path)

    def describe(self) -> list[str]:
        kind = "" if self.inference == "map" else f" ({self.inference})"
        lines = [f"population fit of {self.num_observers} observers{kind} "
                 f"({', '.join(str(len(f.data)) for f in self.observers)} trials); "
                 f"tau = {self.tau:.3g} ({'learned' if self.learned_tau else 'fixed'})",
                 f"L-BFGS steps: {len(self.loss_history)}; seed {self.seed}"]
        if self.observer_scales:
            lines.insert(1, "observer tau_i: " + ", ".join(f"{t:.3g}"
                                                          for t in self.observer_taus))
        return lines

    def __repr__(self):
        return "PopulationFit(" + "; ".join(self.describe()) + ")"
