"""Fits represented by posterior draws of ``W`` (NUTS and Laplace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .data import TrialData
from .model import WPPM
from .validation import as_key, check_int, check_points

__all__ = ["PosteriorFit", "MCMCFit", "LaplaceFit"]


@dataclass
class PosteriorFit:
    """Common interface of draw-based fits.

    Attributes
    ----------
    model : WPPM
    data : TrialData
    draws : numpy array (chains, draws_per_chain, *weight_shape)
        Posterior draws of ``W`` grouped by chain.
    """

    model: WPPM
    data: TrialData
    draws: np.ndarray = field(repr=False)

    @property
    def samples(self) -> dict:
        """``{"W": array (num_draws, *weight_shape)}`` with chains concatenated."""
        return {"W": self.draws.reshape((-1,) + self.draws.shape[2:])}

    @property
    def num_draws(self) -> int:
        return int(self.draws.shape[0] * self.draws.shape[1])

    def weight_draws(self) -> np.ndarray:
        """Draws of ``W`` grouped by chain, ``(chains, draws, *weight_shape)``."""
        return self.draws

    def covariance(self, x) -> jnp.ndarray:
        """``Sigma(x)`` per draw, shape ``(num_draws, ..., d, d)``."""
        x = check_points(x, self.model.input_dim, "x")
        W = jnp.asarray(self.samples["W"])
        return _cov_draws(W, x, self.model.diag_term)

    def p_correct(self, ref, comparison, *, key=0, num_samples=None):
        """p(correct) per draw, shape ``(num_draws, ...)``.

        The same estimator noise (fixed by ``key``) is used for every draw, so
        differences between draws reflect the posterior, not Monte Carlo noise.
        """
        m = self.model
        ref = check_points(ref, m.input_dim, "ref")
        comparison = check_points(comparison, m.input_dim, "comparison")
        if num_samples is not None:
            check_int("num_samples", num_samples, 1)
        ref, comparison = jnp.broadcast_arrays(ref, comparison)
        noise = m.fresh_noise(as_key(key), ref.shape[:-1], num_samples)
        W = jnp.asarray(self.samples["W"])
        return _p_correct_draws(m, W, ref, comparison, noise)

    def log_likelihood(self, *, key=0, num_samples=None) -> np.ndarray:
        """Pointwise log-likelihood per draw, ``(chains, draws, N)`` (fixed noise)."""
        W = self.samples["W"]
        out = np.stack(
            [
                np.asarray(
                    self.model.log_likelihood({"W": w}, self.data, key=key, num_samples=num_samples)
                )
                for w in W
            ]
        )
        return out.reshape(self.draws.shape[:2] + (len(self.data),))

    def _sample_stats(self):
        return None

    def _attrs(self):
        return {}

    def posterior_predictive(self, *, key=0, num_samples=None) -> np.ndarray:
        """Replicated responses of the observed trials, ``(chains, draws, N)`` of 0/1."""
        k_p, k_y = jax.random.split(as_key(key))
        p = self.p_correct(self.data.ref, self.data.comparison, key=k_p, num_samples=num_samples)
        y = jax.random.bernoulli(k_y, p)
        return np.asarray(y, dtype=np.int8).reshape(self.draws.shape[:2] + (len(self.data),))

    def to_arviz(
        self, *, key=0, num_samples=None, grid=None, log_likelihood=True,
        posterior_predictive=False,
    ):
        """ArviZ InferenceData.

        Groups: ``posterior`` (``W`` and the identifiable ``Sigma`` on
        ``grid``), ``sample_stats``, ``log_likelihood`` (pointwise ``y``, for
        ``az.loo``/``az.waic``; skip with ``log_likelihood=False``),
        ``observed_data``, ``constant_data`` and, on request,
        ``posterior_predictive``. ``key`` fixes the estimator noise.
        """
        from .arviz_io import to_inference_data

        ll = self.log_likelihood(key=key, num_samples=num_samples) if log_likelihood else None
        pp = self.posterior_predictive(key=key) if posterior_predictive else None
        return to_inference_data(
            self.model,
            self.data,
            self.draws,
            ll,
            sample_stats=self._sample_stats(),
            grid=grid,
            attrs=self._attrs(),
            posterior_predictive=pp,
        )

    def save(self, path, *, log_likelihood: bool = True) -> None:
        """Save the fit to a NetCDF file, atomically; reload with :func:`~psyphy_numpyro.load_fit`.

        Parameters
        ----------
        path : str or os.PathLike
            Target file (conventionally ``*.nc``); replaced if it exists.
        log_likelihood : bool
            Also store the pointwise log-likelihood (one evaluation per draw);
            not needed to restore the fit.

        See Also
        --------
        psyphy_numpyro.persist.save_fit : the file layout.
        """
        from .persist import save_fit

        save_fit(self, path, log_likelihood=log_likelihood)

    def summary(self, *, var_names=("Sigma",), grid=None, **kwargs):
        """ArviZ summary table of identifiable quantities (``Sigma`` on a grid).

        ``W`` is identified only up to rotation, so its r_hat means little; the
        default reports ``Sigma`` at the grid points of :meth:`to_arviz`.
        """
        import arviz as az

        idata = self.to_arviz(grid=grid, log_likelihood=False)
        return az.summary(idata, var_names=list(var_names), **kwargs)


@jax.jit
def _cov_draws(W, x, diag_term):
    from .field import covariance_field

    return jax.vmap(lambda w: covariance_field(w, x, diag_term))(W)


@dataclass
class MCMCFit(PosteriorFit):
    """Result of :func:`fit_mcmc`.

    Attributes
    ----------
    mcmc : numpyro.infer.MCMC or None
        The NumPyro MCMC object (``mcmc.print_summary()``, extra fields ...);
        ``None`` for a fit loaded from a file.
    surrogate : dict
        The deterministic likelihood NUTS sampled: ``num_samples`` (fixed
        quasi-Monte Carlo draws per trial; 0 = equal-covariance table),
        ``bandwidth``, and ``rms_error``, the RMS difference between the
        surrogate's p(correct) and a high-sample estimate at the initial point.
    init_fit : MAPFit or None
        The MAP fit the chains started from, if one was made or given.
    sample_stats : dict or None
        Sampler statistics ``(chains, draws)`` (``diverging``, ``tree_depth``
        ...) used when ``mcmc`` is ``None`` (a fit loaded from a file);
        otherwise they are read from ``mcmc``.
    """

    mcmc: object = field(default=None, repr=False)
    surrogate: dict = field(default_factory=dict)
    init_fit: object = field(default=None, repr=False)
    sample_stats: dict | None = field(default=None, repr=False)

    def _sample_stats(self):
        if self.mcmc is None:
            return None if self.sample_stats is None else dict(self.sample_stats)
        ex = self.mcmc.get_extra_fields(group_by_chain=True)
        stats = {"diverging": np.asarray(ex["diverging"])}
        if "num_steps" in ex:
            n = np.asarray(ex["num_steps"])
            stats["n_steps"] = n
            stats["tree_depth"] = np.floor(np.log2(np.maximum(n, 1))).astype(int) + 1
        if "accept_prob" in ex:
            stats["acceptance_rate"] = np.asarray(ex["accept_prob"])
        if "energy" in ex:
            stats["energy"] = np.asarray(ex["energy"])
        if "adapt_state.step_size" in ex:
            stats["step_size"] = np.asarray(ex["adapt_state.step_size"])
        if "potential_energy" in ex:
            stats["lp"] = -np.asarray(ex["potential_energy"])
        return stats

    def _attrs(self):
        return {"inference": "nuts", **{f"surrogate_{k}": v for k, v in self.surrogate.items()}}

    @property
    def divergences(self) -> int:
        """Number of divergent transitions after warm-up."""
        if self.mcmc is None:
            stats = self.sample_stats or {}
            if "diverging" not in stats:
                raise ValueError("this MCMCFit has neither an MCMC object nor sample statistics")
            return int(np.asarray(stats["diverging"]).sum())
        return int(np.asarray(self.mcmc.get_extra_fields()["diverging"]).sum())


@dataclass
class LaplaceFit(PosteriorFit):
    """Result of :func:`fit_laplace`: Gaussian draws around the MAP.

    Attributes
    ----------
    map_fit : MAPFit
    mean : numpy array (*weight_shape)
        The MAP weights.
    cov : numpy array (P, P)
        Covariance of the flattened weights (inverse Hessian, with
        eigenvalues floored, see :func:`fit_laplace`).
    num_floored : int
        How many curvature eigenvalues were raised to the floor.
    curvature : str
        ``"fisher"`` or ``"hessian"``.
    """

    map_fit: object = field(default=None, repr=False)
    mean: np.ndarray = field(default=None, repr=False)
    cov: np.ndarray = field(default=None, repr=False)
    num_floored: int = 0
    curvature: str = "fisher"

    def _attrs(self):
        return {
            "inference": "laplace",
            "num_floored": int(self.num_floored),
            "curvature": self.curvature,
        }


@partial(jax.jit, static_argnums=0)
def _p_correct_draws(model, W, ref, comparison, noise):
    """p(correct) for every draw of ``W`` (compiled once per model and shapes)."""
    return jax.lax.map(lambda w: model.p_correct_from_weights(w, ref, comparison, noise), W)
