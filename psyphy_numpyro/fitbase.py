"""One family of fits: every fit is a set of draws of ``W``, ``(chain, draw, *weight_shape)``.

:class:`Fit` holds every read-out once (``covariance``, ``p_correct``,
``log_likelihood``, ``posterior_predictive``, ``to_arviz``, ``summary``,
``save``) and runs it on the draws; the subclasses only say what they are:

- ``kind``: the name a fit file records (``"map"``, ``"laplace"``, ``"mcmc"``,
  ``"posterior"``);
- ``point``: ``True`` for a fit that is one point estimate
  (:class:`~psyphy_numpyro.fits.MAPFit`):
  its read-outs drop the ``(chain, draw)`` axes, so ``covariance(x)`` is
  ``(..., d, d)`` rather than ``(1, ..., d, d)``;
- the hooks ``_sample_stats``, ``_attrs``, ``_save_extras`` and the class
  method ``_restore``, which :mod:`psyphy_numpyro.persist` calls to load a
  file of that kind.

Shapes: a draw-based read-out returns ``(num_draws, ...)`` (chains
concatenated) except ``log_likelihood`` and ``posterior_predictive``, which
keep ``(chain, draw, N)`` as ArviZ wants them; a point fit drops the draw
axes. Public read-outs return numpy arrays.

This module is the shared base (:class:`Fit`, :class:`PosteriorFit`); the MAP
fit is :mod:`psyphy_numpyro.fits`, which re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from . import fitfile
from .arviz_io import to_inference_data
from .data import TrialData
from .errors import InvalidInput
from .field import covariance_field, sqrt_field
from .model import pointwise_log_likelihood, with_lapse
from .validation import as_key, check_array, check_int, check_points
from .wppm import WPPM

__all__ = ["Fit", "PosteriorFit", "baseline_nll_per_trial"]


def baseline_nll_per_trial(data) -> float:
    """Negative log-likelihood per trial of a constant p(correct), the observed proportion
    correct ``p``: ``-(p log p + (1 - p) log(1 - p))``.

    A fit that explains anything about the data is below it; the lowest
    possible value is 0 (every response predicted with certainty).
    """
    y = np.asarray(data.responses, dtype=float)
    p = float(np.mean(y)) if y.size else float("nan")
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


class Fit:
    """Common base of every fit: read-outs over the draws of ``W``.

    Subclasses are dataclasses with ``model`` (:class:`~psyphy_numpyro.WPPM`),
    ``data`` (:class:`~psyphy_numpyro.TrialData`) and ``draws`` (a field or a
    property, ``(chain, draw, *weight_shape)``).
    """

    kind: ClassVar[str] = "posterior"
    point: ClassVar[bool] = False

    # -- the draws ---------------------------------------------------------
    @property
    def samples(self) -> dict:
        """``{"W": array (num_draws, *weight_shape)}`` with chains concatenated (and
        ``"lapse_rate"``, ``(num_draws,)``, when the model learns it)."""
        draws = np.asarray(self.draws)
        out = {"W": draws.reshape((-1,) + draws.shape[2:])}
        if self.model.learns_lapse:
            out["lapse_rate"] = np.asarray(self.lapse_draws).reshape(-1)
        return out

    @property
    def lapse_draws(self) -> np.ndarray | None:
        """Draws of a learned lapse rate ``(chain, draw)``; ``None`` when it is fixed."""
        return None

    def lapse_rates(self):
        """The lapse rate per draw: ``(num_draws,)`` JAX array when learned, else the fixed
        ``model.lapse_rate`` (a float)."""
        if not self.model.learns_lapse:
            return self.model.lapse_rate
        lam = self.lapse_draws
        if lam is None or np.shape(lam) != np.shape(self.draws)[:2]:
            raise InvalidInput(
                "the model learns its lapse rate but the fit has no lapse-rate draws of shape "
                f"(chain, draw) = {np.shape(self.draws)[:2]}"
            )
        check_array("posterior draws of lapse_rate", lam)
        return jnp.asarray(np.asarray(lam).reshape(-1), self.weights().dtype)

    @property
    def num_draws(self) -> int:
        return int(np.prod(np.shape(self.draws)[:2]))

    def weight_draws(self) -> np.ndarray:
        """Draws of ``W`` grouped by chain, ``(chains, draws, *weight_shape)``."""
        return np.asarray(self.draws)

    def weights(self) -> jnp.ndarray:
        """The draws of ``W`` as one checked JAX array ``(num_draws, *weight_shape)``."""
        shape = self.model.weight_shape
        W = np.asarray(self.draws)
        if W.ndim != len(shape) + 2 or W.shape[2:] != shape:
            raise InvalidInput(
                f"the fit's draws of W have shape {W.shape}, expected (chain, draw) + {shape}"
            )
        if W.shape[0] * W.shape[1] == 0:
            raise InvalidInput("the fit has no posterior draws of W")
        check_array("posterior draws of W", W)
        return jnp.asarray(W.reshape((-1,) + shape))

    def _per_draw(self, out, grouped=False):
        """Drop the draw axis of a point fit; ``grouped`` regroups by chain."""
        out = np.asarray(out)
        if self.point:
            return out[0]
        if grouped:
            return out.reshape(np.shape(self.draws)[:2] + out.shape[1:])
        return out

    # -- read-outs ---------------------------------------------------------
    def covariance(self, x) -> np.ndarray:
        """``Sigma(x)``: ``(num_draws, ..., d, d)``; ``(..., d, d)`` for a point fit."""
        x = check_points(x, self.model.input_dim, "x")
        return self._per_draw(_cov_draws(self.weights(), x, self.model.diag_term))

    def sqrt_covariance(self, x) -> np.ndarray:
        """``U(x)``: ``(num_draws, ..., d, d+e)``; ``(..., d, d+e)`` for a point fit."""
        x = check_points(x, self.model.input_dim, "x")
        return self._per_draw(_sqrt_draws(self.weights(), x))

    def p_correct(self, ref, comparison, *, key=0, num_samples=None,
                  include_lapse: bool = False) -> np.ndarray:
        """p(correct) of trials: ``(num_draws, ...)``; ``(...)`` for a point fit.

        The same estimator noise (fixed by ``key``) is used for every draw, so
        differences between draws reflect the posterior, not Monte Carlo noise.
        ``include_lapse=False`` (default) gives the perceptual p(correct);
        ``True`` the response probability ``(1 - lapse) p + lapse / 3``.
        """
        m = self.model
        ref = check_points(ref, m.input_dim, "ref")
        comparison = check_points(comparison, m.input_dim, "comparison")
        if num_samples is not None:
            check_int("num_samples", num_samples, 1)
        ref, comparison = jnp.broadcast_arrays(ref, comparison)
        W = self.weights()
        noise = m.fresh_noise(as_key(key), ref.shape[:-1], num_samples, W.dtype)
        p = _p_correct_draws(m, W, ref, comparison, noise)
        if include_lapse:
            p = _lapse_draws(p, self.lapse_rates())
        return self._per_draw(p)

    def log_likelihood(self, *, key=0, num_samples=None) -> np.ndarray:
        """Pointwise log-likelihood of the fitted data: ``(chain, draw, N)``; ``(N,)`` for a
        point fit. ``key`` fixes the estimator noise (the same for every draw)."""
        W = self.weights()
        lapse = self.lapse_rates() if self.model.learns_lapse else None
        out = _loglik_draws(
            self.model, W, jnp.asarray(self.data.model_stimuli, W.dtype),
            jnp.asarray(self.data.responses), as_key(key), self.model.sample_count(num_samples),
            lapse,
        )
        return self._per_draw(out, grouped=True)

    def posterior_predictive(self, *, key=0, num_samples=None) -> np.ndarray:
        """Replicated responses of the observed trials (0/1): ``(chain, draw, N)``; ``(N,)``
        for a point fit."""
        k_p, k_y = jax.random.split(as_key(key))
        model_stim = self.data.model_stimuli
        p = self.p_correct(model_stim[:, 0], model_stim[:, 1], key=k_p, num_samples=num_samples,
                           include_lapse=True)
        y = np.asarray(jax.random.bernoulli(k_y, p), dtype=np.int8)
        return y if self.point else y.reshape(np.shape(self.draws)[:2] + (len(self.data),))

    # -- ArviZ, summary, files ----------------------------------------------
    def to_arviz(self, *, key=0, num_samples=None, grid=None, log_likelihood=True,
                 posterior_predictive=False):
        """ArviZ data: ``arviz.InferenceData`` on ArviZ 0.x, ``xarray.DataTree`` on ArviZ >= 1.0.

        Groups: ``posterior`` (identified quantities only: the unique entries
        of ``Sigma`` on ``grid``, dims ``grid_point, sigma_entry``, and a
        learned ``lapse_rate``), ``unconstrained_posterior`` (the raw weights
        ``W``, identified only up to rotation), ``sample_stats``,
        ``log_likelihood`` (pointwise ``y``, for ``az.loo``/``az.waic``; skip
        with ``log_likelihood=False``), ``observed_data``, ``constant_data``
        and, on request, ``posterior_predictive``. ``key`` fixes the estimator
        noise. A point fit has one chain of one draw. See ``docs/arviz.md``.
        """
        ll = pp = None
        if log_likelihood:
            ll = np.asarray(self.log_likelihood(key=key, num_samples=num_samples))
        if posterior_predictive:
            pp = self.posterior_predictive(key=key)
        if self.point:
            ll = None if ll is None else ll[None, None]
            pp = None if pp is None else pp[None, None]
        return to_inference_data(
            self.model, self.data, self.weight_draws(), ll, sample_stats=self._sample_stats(),
            grid=grid, attrs=self._attrs(), posterior_predictive=pp,
            lapse_draws=None if not self.model.learns_lapse else np.asarray(self.lapse_draws),
        )

    def summary(self, *, var_names=None, grid=None, round_to=None, digits: int = 3, **kwargs):
        """ArviZ summary table of identifiable quantities (``Sigma`` on a grid).

        ``W`` is identified only up to rotation, so its r_hat means little; the
        default reports the unique entries of ``Sigma`` at the grid points of
        :meth:`to_arviz` (and a learned ``lapse_rate``), the same rows as
        ``az.summary(fit.to_arviz())``, in a form that reads at a glance:

        - values to ``digits`` significant figures (ArviZ's 2 decimals show
          covariance entries of 1e-3 .. 1e-5 as ``0.001`` or ``0.0``);
        - the columns ``grid_x, grid_y ...`` first: where each grid point lies;
        - one chain (Laplace, bootstrap): ``kind="stats"`` (mean, sd, HDI), with
          no r_hat or effective sample sizes, which need several chains, and no
          ArviZ shape warning; a point fit (MAP): the ``mean`` column only.

        Parameters
        ----------
        var_names : list of str, optional
            Posterior variables (default ``Sigma`` and a learned ``lapse_rate``).
        grid : array (G, d), optional
            Where ``Sigma`` is summarised (default
            :func:`~psyphy_numpyro.arviz_io.default_grid`).
        round_to : None, int or "none"
            ``None``: significant figures as above; an int (decimals) or
            ``"none"`` (raw values): ArviZ's own rounding.
        digits : int
            Significant figures of the default rounding.
        **kwargs
            More arguments of ``az.summary`` (``kind``, ``hdi_prob`` ...).

        Returns
        -------
        pandas.DataFrame
        """
        from .arviz_io import summary_table

        if var_names is None:
            var_names = ("Sigma", "lapse_rate") if self.model.learns_lapse else ("Sigma",)
        chains, draws = np.shape(self.draws)[:2]
        idata = self.to_arviz(grid=grid, log_likelihood=False)
        return summary_table(idata, list(var_names), chains=int(chains), draws=int(draws),
                             round_to=round_to, digits=digits, **kwargs)

    def save(self, path, *, log_likelihood: bool = True) -> None:
        """Save the fit to a NetCDF file, atomically; reload with :func:`~psyphy_numpyro.load_fit`.

        Parameters
        ----------
        path : str or os.PathLike
            Target file (conventionally ``*.nc``); replaced if it exists.
        log_likelihood : bool
            Also store the pointwise log-likelihood (one evaluation per draw,
            for ``az.loo`` straight from the file); not needed to restore the fit.

        See Also
        --------
        psyphy_numpyro.fitfile : the file layout.
        """
        extras, attrs = {}, {}
        self._save_extras(extras, attrs)
        fitfile.write(path, self.to_arviz(log_likelihood=log_likelihood), kind=self.kind,
                      model=self.model, extras=extras, attrs=attrs, data=self.data)

    def describe(self) -> list[str]:
        """Lines that say what this fit is (the CLI's ``summary`` prints them)."""
        W = np.asarray(self.draws)
        chains, draws = W.shape[:2]
        lines = [f"draws: {chains} chain(s) x {draws} draws of W {tuple(W.shape[2:])} {W.dtype}"]
        if self.model.learns_lapse:
            lam = np.asarray(self.lapse_draws, float).reshape(-1)
            lo, med, hi = np.quantile(lam, [0.05, 0.5, 0.95])
            lines.append(f"lapse rate: median {med:.4g} (90% interval {lo:.4g} - {hi:.4g})")
        return lines

    # -- hooks for subclasses -----------------------------------------------
    def _sample_stats(self):
        """Sampler statistics ``(chain, draw)`` for ArviZ, or ``None``."""
        return None

    def _attrs(self) -> dict:
        """Attributes of the ArviZ posterior (``inference`` method ...)."""
        return {}

    def _save_extras(self, out: dict, attrs: dict) -> None:
        """Add this kind's arrays (``name -> (dims, array)``) and attributes to a fit file."""

    @classmethod
    def _restore(cls, src: fitfile.FitSource):
        """The fit of a file of this kind (see :class:`~psyphy_numpyro.fitfile.FitSource`)."""
        return cls(model=src.model, data=src.data, draws=src.draws, lapse=src.lapse)


@dataclass
class PosteriorFit(Fit):
    """A fit given by posterior draws of ``W`` (the base of NUTS and Laplace fits).

    Attributes
    ----------
    model : WPPM
    data : TrialData
    draws : numpy array (chains, draws_per_chain, *weight_shape)
        Posterior draws of ``W`` grouped by chain.
    lapse : numpy array (chains, draws_per_chain) or None
        Draws of the lapse rate when the model learns it (keyword only).
    """

    model: WPPM
    data: TrialData
    draws: np.ndarray = field(repr=False)
    lapse: np.ndarray | None = field(default=None, repr=False, kw_only=True)

    @property
    def lapse_draws(self):
        return self.lapse


# ---------------------------------------------------------------------------
# compiled read-outs over draws (one program per model and shapes)
# ---------------------------------------------------------------------------
@jax.jit
def _cov_draws(W, x, diag_term):
    return jax.vmap(lambda w: covariance_field(w, x, diag_term))(W)


@jax.jit
def _sqrt_draws(W, x):
    return jax.vmap(lambda w: sqrt_field(w, x))(W)


@partial(jax.jit, static_argnums=0)
def _p_correct_draws(model, W, ref, comparison, noise):
    return jax.lax.map(lambda w: model.p_correct_from_weights(w, ref, comparison, noise), W)


@jax.jit
def _lapse_draws(p, lapse):
    """Response probability per draw: ``p`` (num_draws, ...), ``lapse`` scalar or (num_draws,)."""
    lapse = jnp.asarray(lapse, p.dtype)
    return with_lapse(p, lapse.reshape(lapse.shape + (1,) * (p.ndim - lapse.ndim)))


@partial(jax.jit, static_argnums=(0, 5))
def _loglik_draws(model, W, stimuli, responses, key, num_samples, lapse=None):
    def one(w, lam=None):
        return pointwise_log_likelihood(model, w, stimuli, responses, key, num_samples, 4096,
                                        lam)

    if lapse is None:
        return jax.lax.map(one, W)
    return jax.lax.map(lambda a: one(*a), (W, lapse))
