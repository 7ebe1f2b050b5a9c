"""The MAP fit, :class:`MAPFit`: one point estimate of ``W``, and the fit family's names.

One concept: the result of :func:`~psyphy_numpyro.fit_map` (its ``params`` view,
loss histories, restarts, seed, timings, and how it reads and writes itself in a
fit file through :mod:`psyphy_numpyro.mapfile`). The family's shared base,
:class:`~psyphy_numpyro.fitbase.Fit` and
:class:`~psyphy_numpyro.fitbase.PosteriorFit`, lives in
:mod:`psyphy_numpyro.fitbase` and is re-exported here, so ``from
psyphy_numpyro.fits import Fit, MAPFit, PosteriorFit`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .data import TrialData
from .errors import InvalidInput
from .fitbase import Fit, PosteriorFit, baseline_nll_per_trial
from .mapfile import read_map_fields, write_map_fields
from .wppm import WPPM, as_wppm

__all__ = ["Fit", "PosteriorFit", "MAPFit", "baseline_nll_per_trial"]


@dataclass
class MAPFit(Fit):
    """Result of :func:`~psyphy_numpyro.fit_map`: one draw, with a ``params`` view.

    Attributes
    ----------
    params : dict
        ``{"W": array}`` in psyphy's layout (plus ``"lapse_rate"``, a scalar,
        when the model learns it); ``draws`` is the same ``W`` as one chain of
        one draw.
    model : WPPM
    data : TrialData
    loss_history : numpy array (steps,)
        Negative log joint (one noisy Monte Carlo evaluation per step, before
        the step) of the kept restart.
    restart_histories : numpy array (num_restarts, steps)
        The same for every restart; NaN after ``screen_steps`` for restarts
        that were screened out.
    restart_losses : numpy array (num_restarts,)
        Low-noise negative log joint where each restart stopped (the kept one
        at ``steps``, the others at ``screen_steps``; ``inf`` for a restart
        that failed).
    best_restart : int
    init_params : dict
        The starting point (``{"W": ...}``) of the kept restart.
    seed : int
        The integer seed of the fit (-1 when a PRNG key was passed as ``rng_key``).
    timings : dict
        Where the time went, in seconds: ``compile``, ``steps`` (all restarts),
        ``evaluation`` (low-noise losses), ``total``.
    hyperparameters : dict or None
        When the model was chosen from the data (``fit_map(data)`` without a
        model): what was chosen and why
        (:meth:`~psyphy_numpyro.hyperparameters.HyperparameterChoice.to_dict`).
    final_nll : float or None
        Negative log-likelihood of the data at the kept restart's end: its
        low-noise loss less the prior term
        (:func:`~psyphy_numpyro.inference.svi.negative_log_prior`); positive.
        It is evaluated with the model's estimator, like the loss: close to the
        exact value with the default ``"cv"``, overstated by ``"reparam"`` or
        ``"mc"`` at few samples (``-fit.log_likelihood(num_samples=...).sum()``
        re-evaluates it with more).
        ``None`` for fits made otherwise (``from_params``, files written before
        it was recorded). See :attr:`nll_per_trial`.
    """

    kind: ClassVar[str] = "map"
    point: ClassVar[bool] = True

    params: dict
    model: WPPM
    data: TrialData | None = None
    loss_history: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    restart_histories: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((1, 0)))
    restart_losses: np.ndarray = field(default_factory=lambda: np.full(1, np.nan))
    best_restart: int = 0
    init_params: dict = field(repr=False, default=None)
    seed: int = 0
    timings: dict = field(repr=False, default_factory=dict)
    hyperparameters: dict | None = field(repr=False, default=None)
    final_nll: float | None = None

    @classmethod
    def from_params(cls, model: WPPM, params: dict, data: TrialData | None = None) -> MAPFit:
        """A point fit of given weights (e.g. a ground-truth field, or psyphy's parameters
        or ``MAPPosterior`` with its psyphy model), for the read-outs."""
        model = as_wppm(model)
        return cls(params=model.checked_params(params), model=model, data=data)

    @property
    def draws(self) -> np.ndarray:
        """``W`` as one chain of one draw, ``(1, 1, *weight_shape)``."""
        return np.asarray(self.params["W"])[None, None]

    @property
    def lapse_draws(self):
        if not self.model.learns_lapse:
            return None
        return np.asarray(self.params["lapse_rate"]).reshape(1, 1)

    @property
    def lapse_rate(self) -> float:
        """The fitted (or fixed) lapse rate."""
        if self.model.learns_lapse:
            return float(np.asarray(self.params["lapse_rate"]))
        return float(self.model.lapse_rate)

    @property
    def final_loss(self) -> float:
        """Low-noise negative log joint of the kept restart at the end of the fit (the SVI
        loss: negative log-likelihood plus the prior term; it can be negative)."""
        return float(self.restart_losses[self.best_restart])

    @property
    def nll_per_trial(self) -> float:
        """Negative log-likelihood per trial at the end of the fit (positive; lower is
        better; NaN when not recorded, see :attr:`final_nll`).

        Compare it with :func:`baseline_nll_per_trial` of the data, that of a constant
        p(correct) equal to the observed proportion correct.
        """
        if self.final_nll is None or self.data is None or not len(self.data):
            return float("nan")
        return float(self.final_nll) / len(self.data)

    def loss_lines(self) -> list[str]:
        """How well the fit explains the data, in words (``describe`` and the CLI)."""
        lines = []
        if np.isfinite(self.nll_per_trial):
            base = baseline_nll_per_trial(self.data)
            p = float(np.mean(self.data.responses))
            lines.append(
                f"negative log-likelihood: {self.nll_per_trial:.4f} per trial "
                f"({self.final_nll:.6g} in all; lower is better; a constant p(correct) = "
                f"{p:.3f} gives {base:.4f})")
            prior = self.final_loss - self.final_nll
            lines.append(f"final loss: {self.final_loss:.6g} (negative log joint: the "
                         f"negative log-likelihood + the prior term {prior:.4g})")
        elif np.isfinite(self.final_loss):  # a file from before final_nll was recorded
            lines.append(f"final loss: {self.final_loss:.6g} (negative log joint: negative "
                         "log-likelihood + prior term)")
        return lines

    def describe(self) -> list[str]:
        W, steps = np.asarray(self.params["W"]), len(self.loss_history)
        screened = int(np.isfinite(self.restart_histories).sum(1).min())
        head = (f"restarts: {len(self.restart_losses)}, kept restart {self.best_restart} "
                "(numbered from 0)")
        tail = (f": {steps} steps, others screened out at {screened}; seed {self.seed}"
                if screened < steps else f"; {steps} steps each; seed {self.seed}")
        lapse = ([f"lapse rate: {self.lapse_rate:.4g} (learned)"] if self.model.learns_lapse
                 else [f"lapse rate: {self.lapse_rate:g} (fixed)"] if self.lapse_rate else [])
        hyper = []
        if self.hyperparameters:
            h = self.hyperparameters
            hyper = [f"hyperparameters from the data: variance_scale={h['variance_scale']:.3g}, "
                     f"diag_term={h['diag_term']:.3g} (typical threshold "
                     f"{h['typical_threshold']:.3g}, smallest {h['smallest_threshold']:.3g}, "
                     f"floor {h['threshold_floor']:.3g}; {h['method']})"]
        return [
            f"weights: W {tuple(W.shape)} {W.dtype}",
            *lapse,
            *hyper,
            *self.loss_lines(),
            head + tail,
        ]

    def _sample_stats(self):
        return {"loss": np.array([[self.final_loss]])}

    def _attrs(self):
        return {"inference": "map", "steps": int(self.loss_history.shape[0])}

    def _save_extras(self, out, attrs):
        self.save_nested("map_", None, out, attrs)

    @classmethod
    def _restore(cls, src):
        if src.draws.shape[:2] != (1, 1):
            raise InvalidInput(
                f"{src.path}: a MAP fit has one draw, the file has {src.draws.shape[:2]}")
        lapse = None if src.lapse is None else src.lapse[0, 0]
        return cls.restore_nested(src, "map_", W=src.draws[0, 0], lapse=lapse)

    # -- a MAP fit stored inside another fit's file (Laplace mean, NUTS start) --
    def save_nested(self, prefix: str, parent, out: dict, attrs: dict) -> None:
        """Write this fit's arrays under ``prefix`` (its model and data only where they
        differ from ``parent``'s); see :func:`~psyphy_numpyro.mapfile.write_map_fields`."""
        write_map_fields(self, prefix, parent, out, attrs)

    @classmethod
    def restore_nested(cls, src, prefix: str, W=None, lapse=None) -> MAPFit | None:
        """The MAP fit written by :meth:`save_nested` under ``prefix``, or ``None``."""
        fields = read_map_fields(src, prefix, W=W, lapse=lapse)
        return None if fields is None else cls(**fields)
