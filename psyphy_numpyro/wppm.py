"""The WPPM configuration object: the model's settings, its prior and its validated
read-outs (the NumPyro model function and its likelihood are in :mod:`.model`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from . import estimators, field
from .errors import InvalidInput, InvalidType
from .interop import as_params, is_psyphy_object, psyphy_settings
from .model import pointwise_log_likelihood, with_lapse
from .prior import WeightPrior
from .validation import as_key, check_int, check_params, check_points, check_real, is_concrete

__all__ = ["WPPM", "as_wppm", "model_with_prior"]


def _check_pos(name, value, *, allow_zero=False):
    check_real(name, value, 0, lo_closed=allow_zero)


@dataclass(frozen=True)
class WPPM:
    """Wishart Process Psychophysical Model configuration (immutable).

    Parameters
    ----------
    input_dim : int
        Stimulus dimension ``d`` (1, 2 or 3). Stimuli live in ``[-1, 1]^d``.
    basis_degree : int
        Highest Chebyshev degree ``K`` per axis (``K + 1`` functions per axis).
    extra_dims : int
        Extra embedding dimensions ``e``: ``U(x)`` is ``d x (d + e)``.
    variance_scale : float
        Prior variance of the degree-0 weights.
    decay_rate : float
        Prior variance of a weight of total degree ``t`` is
        ``variance_scale * decay_rate**t``. Must be in (0, 1].
    diag_term : float
        Added to the diagonal of every ``Sigma(x)`` (>= 0).
    num_samples : int
        Monte Carlo samples per trial for p(correct).
    bandwidth : float
        Logistic smoothing of the oddity decision variable.
    estimator : {"cv", "reparam", "mc", "table"}
        p(correct) estimator (see :mod:`psyphy_numpyro.estimators`). The first
        three estimate the same expectation; ``"cv"`` is the most accurate per
        sample. ``"table"`` is the deterministic equal-covariance surrogate.
    lapse_rate : float or "learn"
        Probability ``lapse`` that the observer responds at random on a
        trial (then correct with probability 1/3): the response probability
        is ``(1 - lapse) p + lapse / 3`` with ``p`` the perceptual p(correct).
        A number in ``[0, 0.5)`` fixes it (``0``, the default, is the model
        without lapses); ``"learn"`` makes it a parameter: a NumPyro sample
        site ``"lapse_rate"`` with prior ``Beta(*lapse_prior)``, estimated by
        every fit and returned in ``params["lapse_rate"]``.
    lapse_prior : (float, float)
        ``(a, b)`` of the Beta prior of a learned lapse rate. The default
        ``(2, 50)`` has mean 0.038, mode 0.02 and puts 95% of its mass below
        0.09: lapses of a few percent, as psychophysics observers show.
    weight_prior : WeightPrior, optional
        An informative prior ``W ~ N(mean, std^2)`` replacing the default
        ``N(0, prior_std^2)`` (e.g. a population's, :meth:`with_prior`); ``None``
        (default) is the default prior. ``variance_scale`` and ``decay_rate``
        then no longer enter the prior. A dict (:meth:`WeightPrior.to_dict`)
        is accepted.

    Examples
    --------
    >>> import jax, psyphy_numpyro as pn
    >>> model = pn.WPPM(input_dim=2)
    >>> params = model.sample_prior(jax.random.PRNGKey(0))
    >>> params["W"].shape
    (5, 5, 2, 3)
    """

    input_dim: int = 2
    basis_degree: int = 4
    extra_dims: int = 1
    variance_scale: float = 4e-3
    decay_rate: float = 0.4
    diag_term: float = 1e-4
    num_samples: int = 64
    bandwidth: float = 1e-2
    estimator: str = "cv"
    lapse_rate: float | str = 0.0
    lapse_prior: tuple[float, float] = (2.0, 50.0)
    weight_prior: WeightPrior | None = None

    def __post_init__(self):
        check_int("input_dim", self.input_dim, 1, 3)
        check_int("basis_degree", self.basis_degree, 0)
        check_int("extra_dims", self.extra_dims, 0)
        check_int("num_samples", self.num_samples, 1)
        _check_pos("variance_scale", self.variance_scale)
        check_real("decay_rate", self.decay_rate, 0, 1, hi_closed=True)
        _check_pos("diag_term", self.diag_term, allow_zero=True)
        _check_pos("bandwidth", self.bandwidth)
        estimators.get(self.estimator)  # a clear error for an unknown name
        if isinstance(self.lapse_rate, str):
            if self.lapse_rate != "learn":
                raise InvalidInput(
                    f'lapse_rate must be a number in [0, 0.5) or "learn", got {self.lapse_rate!r}')
        else:
            check_real("lapse_rate", self.lapse_rate, 0.0, 0.5, lo_closed=True)
            object.__setattr__(self, "lapse_rate", float(self.lapse_rate))
        prior = self.lapse_prior
        if (not isinstance(prior, tuple | list) or len(prior) != 2):
            raise InvalidInput(f"lapse_prior must be a pair (a, b) of Beta parameters, got "
                               f"{prior!r}")
        a, b = (check_real(f"lapse_prior[{i}]", v, 0.0) for i, v in enumerate(prior))
        object.__setattr__(self, "lapse_prior", (float(a), float(b)))
        wp = self.weight_prior
        if isinstance(wp, dict):
            wp = WeightPrior.from_dict(wp)
            object.__setattr__(self, "weight_prior", wp)
        if wp is not None:
            if not isinstance(wp, WeightPrior):
                raise InvalidType("weight_prior must be a psyphy_numpyro.WeightPrior (see "
                                  f"WPPM.with_prior) or None, got {type(wp).__name__}")
            if wp.shape != self.weight_shape:
                raise InvalidInput(f"weight_prior has shape {wp.shape} but this model's weights "
                                   f"have shape {self.weight_shape} (input_dim, basis_degree "
                                   "and extra_dims must match the prior's model)")

    # -- shapes and prior ----------------------------------------------------
    @property
    def embedding_dim(self) -> int:
        """``d + e``, the number of columns of ``U(x)``."""
        return self.input_dim + self.extra_dims

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of ``W``: ``(K+1,)*d + (d, d+e)``."""
        return field.weight_shape(self.input_dim, self.basis_degree, self.extra_dims)

    @classmethod
    def for_data(cls, data, **settings) -> WPPM:
        """A model whose ``variance_scale`` and ``diag_term`` are chosen from the data.

        A quick isotropic pre-fit per cell of reference space measures the
        observer's threshold scale (see :mod:`psyphy_numpyro.hyperparameters`);
        ``variance_scale`` matches the prior's typical ``Sigma`` to it and
        ``diag_term`` puts the threshold floor at a quarter of the smallest
        cell threshold. Other ``settings`` (``basis_degree``, ``lapse_rate``
        ...) are passed on; a ``variance_scale`` or ``diag_term`` given here is
        kept. What :func:`~psyphy_numpyro.fit_map` chooses when it is given no
        model.

        Examples
        --------
        >>> model = pn.WPPM.for_data(data, lapse_rate="learn")  # doctest: +SKIP
        """
        from .data import as_trial_data
        from .hyperparameters import choose_hyperparameters

        data = as_trial_data(data)
        settings.setdefault("input_dim", data.input_dim)
        fixed = [k for k in ("variance_scale", "diag_term") if k in settings]
        return choose_hyperparameters(data, cls(**settings), fixed=fixed).model

    @classmethod
    def from_psyphy(cls, model, **settings) -> WPPM:
        """The WPPM of a psyphy (0.0.5) ``WPPM`` object: the same field, prior and task.

        Converted: ``input_dim``, the prior's ``basis_degree``,
        ``variance_scale`` and ``decay_rate`` (the values psyphy's prior
        samples and scores with), ``extra_dims``, ``diag_term``, and the
        oddity task's Monte Carlo ``num_samples`` and ``bandwidth``. psyphy's
        parameter dicts ``{"W": ...}`` have the same layout as ours, so its
        parameters, and a ``MAPPosterior``, serve as they are (e.g. as
        ``init_params``). The fit functions accept a psyphy ``WPPM`` directly
        and convert it with this method.

        Parameters
        ----------
        model : psyphy.WPPM
            With an ``OddityTask`` likelihood and Gaussian (or no) noise.
        **settings
            Settings of ours to set or override (``estimator``,
            ``lapse_rate`` ..., or ``num_samples=64``: psyphy's default
            1000 Monte Carlo samples per trial are more than the default
            ``"cv"`` estimator needs, which estimates the same expectation
            with less noise).

        Returns
        -------
        WPPM

        Raises
        ------
        TypeError
            ``model`` is not a psyphy WPPM.
        ValueError
            The psyphy model is not one this package can express: no
            ``basis_degree``, a task other than the oddity task, non-Gaussian
            noise, or a prior whose ``extra_embedding_dims`` differs from the
            model's ``extra_dims``.

        Examples
        --------
        >>> from psyphy import WPPM, OddityTask, GaussianNoise, Prior  # doctest: +SKIP
        >>> theirs = WPPM(Prior(input_dim=2), OddityTask(), GaussianNoise(), input_dim=2)
        >>> ours = pn.WPPM.from_psyphy(theirs, num_samples=64)         # doctest: +SKIP
        >>> fit = pn.fit_map(data, theirs)                             # doctest: +SKIP
        """
        return cls(**{**psyphy_settings(model), **settings})

    def replace(self, **changes) -> WPPM:
        """A copy with some settings changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_prior(self, prior) -> WPPM:
        """A copy whose weights have an informative prior.

        Parameters
        ----------
        prior : PopulationFit, WeightPrior or None
            A population fit gives its new-observer prior
            (:meth:`WeightPrior.from_population`: ``N(W_mean, tau^2 / (1 + tau^2)
            prior_std^2)``, with the population model's ``prior_std``); ``None``
            restores the default prior.

        Examples
        --------
        >>> pop = pn.fit_population([d1, d2, d3])                 # doctest: +SKIP
        >>> fit = pn.fit_map(new_data, pop.model.with_prior(pop))  # doctest: +SKIP
        """
        if prior is None or isinstance(prior, WeightPrior):
            return self.replace(weight_prior=prior)
        if not all(hasattr(prior, a) for a in ("population", "tau", "model")):
            raise InvalidType("prior must be a PopulationFit, a WeightPrior or None, got "
                              f"{type(prior).__name__}")
        if prior.model.weight_shape != self.weight_shape:
            raise InvalidInput(f"the population's model has weights of shape "
                               f"{prior.model.weight_shape}, this model {self.weight_shape}: "
                               "use the population's model (pop.model.with_prior(pop))")
        return self.replace(weight_prior=WeightPrior.from_population(prior))

    def prior_mean(self) -> np.ndarray:
        """Prior mean of every entry of ``W`` (zeros unless ``weight_prior`` is set)."""
        if self.weight_prior is not None:
            return self.weight_prior.mean
        return np.zeros(self.weight_shape)

    def prior_mean_variance(self, unit_scale: bool = False) -> float:
        """The (basis) prior's mean of ``Sigma_ii(x) - diag_term`` over the domain
        (:func:`~psyphy_numpyro.field.prior_mean_variance`): the typical variance of
        the field it draws; per unit ``variance_scale`` with ``unit_scale=True``."""
        per_unit = field.prior_mean_variance(self.input_dim, self.basis_degree,
                                             self.extra_dims, self.decay_rate)
        return per_unit if unit_scale else self.variance_scale * per_unit

    def prior_std(self) -> np.ndarray:
        """Prior standard deviation of every entry of ``W`` (shape ``weight_shape``): the
        ``weight_prior``'s when one is set."""
        if self.weight_prior is not None:
            return self.weight_prior.std
        return field.prior_std(
            self.input_dim,
            self.basis_degree,
            self.extra_dims,
            self.variance_scale,
            self.decay_rate,
        )

    @property
    def learns_lapse(self) -> bool:
        """``True`` when ``lapse_rate="learn"`` (a ``"lapse_rate"`` parameter)."""
        return self.lapse_rate == "learn"

    @property
    def param_names(self) -> tuple[str, ...]:
        """Keys of ``params``: ``("W",)``, plus ``"lapse_rate"`` when it is learned."""
        return ("W", "lapse_rate") if self.learns_lapse else ("W",)

    def lapse_prior_dist(self) -> dist.Distribution:
        """``Beta(*lapse_prior)``, the prior of a learned lapse rate."""
        return dist.Beta(*self.lapse_prior)

    def lapse_of(self, params):
        """The lapse rate of ``params``: ``params["lapse_rate"]`` when learned, else the
        fixed ``lapse_rate`` (checked: a learned one must be in (0, 0.5))."""
        if not self.learns_lapse:
            if isinstance(params, dict) and "lapse_rate" in params:
                raise InvalidInput(
                    f'params has a "lapse_rate" but the model fixes lapse_rate='
                    f"{self.lapse_rate:g}; use WPPM(lapse_rate=\"learn\") to fit it or "
                    "drop it from params"
                )
            return self.lapse_rate
        if not isinstance(params, dict) or "lapse_rate" not in params:
            raise InvalidInput(
                'the model learns its lapse rate (lapse_rate="learn"), so params needs a '
                '"lapse_rate" entry next to "W"'
            )
        lam = params["lapse_rate"]
        if is_concrete(lam):
            arr = np.asarray(lam, dtype=float)
            if arr.shape != () or not (0.0 <= float(arr) < 1.0):
                raise InvalidInput(
                    f'params["lapse_rate"] must be a scalar in [0, 1), got {lam!r}')
        return jnp.asarray(lam)

    def checked_params(self, params, name: str = "params", *, lapse_optional: bool = False):
        """``params`` checked and as JAX arrays: ``{"W": ...}`` plus ``"lapse_rate"`` when
        the model learns it.

        ``lapse_optional=True`` accepts params without a lapse rate for a
        learning model (a start point, e.g. psyphy's ``{"W": ...}``); the
        result then has ``"W"`` only. An object with a ``params`` dict
        (psyphy's ``MAPPosterior``, a fit) stands for that dict.
        """
        params = as_params(params)
        W = check_params(params, self.weight_shape, name)
        if self.learns_lapse and lapse_optional and "lapse_rate" not in params:
            return {"W": W}
        try:
            lapse = self.lapse_of(params)
        except InvalidInput as exc:
            raise InvalidInput(f"{name}: {exc}") from None
        return {"W": W, "lapse_rate": lapse} if self.learns_lapse else {"W": W}

    def prior(self) -> dist.Distribution:
        """The prior of ``W`` as one NumPyro distribution (event shape ``weight_shape``)."""
        loc = 0.0 if self.weight_prior is None else jnp.asarray(self.prior_mean())
        return dist.Normal(loc, jnp.asarray(self.prior_std())).to_event(len(self.weight_shape))

    def sample_prior(self, key) -> dict:
        """Draw ``{"W": W}`` from the prior.

        Parameters
        ----------
        key : jax PRNG key or int seed
        """
        key = as_key(key)
        W = jnp.asarray(self.prior_std()) * jax.random.normal(key, self.weight_shape)
        if self.weight_prior is not None:
            W = jnp.asarray(self.prior_mean(), W.dtype) + W
        if not self.learns_lapse:
            return {"W": W}
        return {"W": W, "lapse_rate": self.lapse_prior_dist().sample(jax.random.fold_in(key, 1))}

    @property
    def estimator_object(self) -> estimators.Estimator:
        """The :mod:`~psyphy_numpyro.estimators` object named by ``estimator``."""
        return estimators.get(self.estimator)

    def noise_shape(self, num_samples: int | None = None) -> tuple[int, ...]:
        """Per-trial shape of the standard-normal noise the estimator consumes."""
        return self.estimator_object.noise_shape(
            self.sample_count(num_samples), self.input_dim, self.extra_dims)

    def draw_noise(self, key, num_trials: int, num_samples: int | None = None):
        """IID noise for ``num_trials`` trials, shape ``(num_trials,) + noise_shape``."""
        return self.estimator_object.draw_noise(
            as_key(key), (num_trials,), self.sample_count(num_samples), self.input_dim,
            self.extra_dims)

    def sample_count(self, num_samples=None) -> int:
        """Estimator draws per trial: ``num_samples`` checked (>= 1), or the configured
        ``num_samples`` when ``None``."""
        if num_samples is None:
            return self.num_samples
        return check_int("num_samples", num_samples, 1)

    def fresh_noise(self, key, batch_shape, num_samples: int | None = None, dtype=None):
        """Fresh estimator noise in the fastest form the estimator accepts.

        For ``"cv"``/``"reparam"`` this is :class:`~psyphy_numpyro.noise.SharedNoise`
        (per-trial noise never materialised; equal to :meth:`draw_noise` after
        ``.materialize()``), for ``"mc"`` an array. What fits use internally.
        """
        return self.estimator_object.fresh_noise(
            key, batch_shape, self.sample_count(num_samples), self.input_dim, self.extra_dims,
            dtype)

    def fixed_noise(self, seed: int, num_trials: int, num_samples: int | None = None,
                    dtype=None):
        """Quasi-random noise fixed by ``seed`` for a deterministic likelihood.

        Raises ``ValueError`` for an estimator without a fixed-noise form (``"mc"``).
        """
        return self.estimator_object.fixed_noise(
            seed, num_trials, self.sample_count(num_samples), self.input_dim, self.extra_dims,
            dtype)

    # -- read-outs (validated) ----------------------------------------------
    def sqrt_covariance(self, params, x) -> jnp.ndarray:
        """``U(x)``, shape ``(..., d, d+e)``, for ``x`` of shape ``(..., d)``."""
        W = check_params(params, self.weight_shape)
        x = check_points(x, self.input_dim, "x")
        return field.sqrt_field(W, x)

    def covariance(self, params, x) -> jnp.ndarray:
        """``Sigma(x)``, shape ``(..., d, d)``, for ``x`` of shape ``(..., d)``."""
        W = check_params(params, self.weight_shape)
        x = check_points(x, self.input_dim, "x")
        return field.covariance_field(W, x, self.diag_term)

    def p_correct(self, params, ref, comparison, *, key=None, noise=None, num_samples=None,
                  include_lapse=False):
        """Estimated p(correct) of oddity trials.

        Parameters
        ----------
        params : dict with ``"W"``
        ref, comparison : array (..., d)
            Broadcast against each other.
        key : jax PRNG key or int seed
            Draws fresh estimator noise; required unless ``noise`` is given.
        noise : array (..., *noise_shape), optional
            Fixed standard normals (e.g. from :meth:`draw_noise`).
        num_samples : int, optional
            Overrides the configured sample count when drawing noise.
        include_lapse : bool
            ``False`` (default): the perceptual p(correct); ``True``: the
            response probability ``(1 - lapse) p + lapse / 3``.

        Returns
        -------
        array (...,) in (0, 1)
        """
        W = check_params(params, self.weight_shape)
        lapse = self.lapse_of(params)
        ref = check_points(ref, self.input_dim, "ref")
        comparison = check_points(comparison, self.input_dim, "comparison")
        ref, comparison = jnp.broadcast_arrays(ref, comparison)
        if noise is None:
            if key is None:
                raise InvalidInput(
                    "p_correct needs a PRNG key (key=...) or fixed noise (noise=...)")
            noise = self.fresh_noise(as_key(key), ref.shape[:-1], num_samples)
        else:
            noise = jnp.asarray(noise)
        p = _p_correct_jit(self, W, ref, comparison, noise)
        return with_lapse(p, lapse) if include_lapse else p

    def log_likelihood(self, params, data, *, key=0, num_samples=None, chunk_size=4096):
        """Pointwise Bernoulli log-likelihood of every trial, shape ``(N,)``.

        Evaluated in chunks of ``chunk_size`` trials so that memory does not
        grow with ``N * num_samples``. ``key`` fixes the estimator noise, so
        repeated calls are identical.
        """
        from .data import as_trial_data

        data = as_trial_data(data)
        if data.input_dim != self.input_dim:
            raise InvalidInput(
                f"data has stimulus dimension {data.input_dim}, the model has "
                f"input_dim={self.input_dim}"
            )
        W = check_params(params, self.weight_shape)
        lapse = self.lapse_of(params)
        return pointwise_log_likelihood(
            self,
            W,
            jnp.asarray(data.model_stimuli, dtype=W.dtype),
            jnp.asarray(data.responses),
            as_key(key),
            self.sample_count(num_samples),
            check_int("chunk_size", chunk_size, 1),
            None if not self.learns_lapse else lapse,
        )

    # -- unvalidated, jittable core -----------------------------------------
    def p_correct_from_weights(self, W, ref, comparison, noise):
        """Jittable p(correct) given ``W`` and explicit noise (no input checks)."""
        return self.estimator_object.p_correct(self, W, ref, comparison, noise)

    def response_p(self, p, lapse=None):
        """Response probability from perceptual ``p``: ``(1 - lapse) p + lapse / 3``.

        ``lapse=None`` uses the fixed ``lapse_rate`` (a learned one must be
        passed); a fixed ``0`` returns ``p`` itself, so that model is exactly
        the lapse-free one.
        """
        if lapse is None:
            if self.learns_lapse:
                raise InvalidInput("this model learns its lapse rate: pass lapse=...")
            lapse = self.lapse_rate
        return with_lapse(p, lapse)


def as_wppm(model, name: str = "model") -> WPPM:
    """``model`` as a :class:`WPPM`: ours as it is, a psyphy WPPM converted
    (:meth:`WPPM.from_psyphy`); anything else is a ``TypeError`` naming ``name``."""
    if isinstance(model, WPPM):
        return model
    if is_psyphy_object(model, "prior", "likelihood"):
        return WPPM.from_psyphy(model)
    raise InvalidType(f"{name} must be a psyphy_numpyro.WPPM or a psyphy WPPM, got "
                      f"{type(model).__name__}")


def model_with_prior(model, prior) -> WPPM:
    """``model`` with the informative ``prior`` (:meth:`WPPM.with_prior`); ``model=None``
    takes a population fit's own model (a bare :class:`WeightPrior` needs a model)."""
    if model is None:
        if isinstance(prior, WeightPrior):
            raise InvalidInput("a WeightPrior needs the model it belongs to (model=...); a "
                               "PopulationFit brings its own")
        model = getattr(prior, "model", None)
        if not isinstance(model, WPPM):
            raise InvalidType("prior must be a PopulationFit or a WeightPrior, got "
                              f"{type(prior).__name__}")
    return as_wppm(model).with_prior(prior)


_p_correct_jit = jax.jit(WPPM.p_correct_from_weights, static_argnums=0)
