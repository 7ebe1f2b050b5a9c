"""Draw-based fits from NUTS (:class:`MCMCFit`) and the Laplace approximation (:class:`LaplaceFit`).

Both are :class:`~psyphy_numpyro.fits.PosteriorFit` s: every read-out comes
from :class:`~psyphy_numpyro.fits.Fit`; these classes add what their method
knows (sampler statistics, the Gaussian's mean and covariance, the MAP fit
they started from) and the hooks that save and restore it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from . import arviz_io, fitfile
from .arviz_io import weight_dims
from .errors import InvalidInput
from .fits import MAPFit, PosteriorFit

__all__ = ["PosteriorFit", "MCMCFit", "LaplaceFit"]


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

    kind: ClassVar[str] = "mcmc"

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
                raise InvalidInput("this MCMCFit has neither an MCMC object nor sample statistics")
            return int(np.asarray(stats["diverging"]).sum())
        return int(np.asarray(self.mcmc.get_extra_fields()["diverging"]).sum())

    def describe(self):
        lines = super().describe()
        if self.sample_stats is not None or self.mcmc is not None:
            lines.append(f"divergences: {self.divergences}")
        if self.surrogate:
            items = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in sorted(self.surrogate.items()))
            lines.append(f"surrogate likelihood: {items}")
        return lines

    def _save_extras(self, out, attrs):
        attrs["mcmc_surrogate"] = fitfile.to_json(dict(self.surrogate or {}))
        if self.init_fit is not None:
            self.init_fit.save_nested("init_", self, out, attrs)

    @classmethod
    def _restore(cls, src):
        stats = None
        if "sample_stats" in arviz_io.group_names(src.idata):
            group = arviz_io.group(src.idata, "sample_stats")
            stats = {k: v.values for k, v in group.data_vars.items()}
        return cls(
            model=src.model, data=src.data, draws=src.draws, lapse=src.lapse, mcmc=None,
            surrogate=json.loads(src.extra.attrs.get("mcmc_surrogate", "{}")),
            init_fit=MAPFit.restore_nested(src, "init_"), sample_stats=stats,
        )


@dataclass
class LaplaceFit(PosteriorFit):
    """Result of :func:`fit_laplace`: Gaussian draws around the MAP.

    Attributes
    ----------
    map_fit : MAPFit
    mean : numpy array (*weight_shape)
        The MAP weights.
    cov : numpy array (P, P)
        Covariance of the flattened weights (inverse curvature, with
        eigenvalues floored, see :func:`fit_laplace`); with a learned lapse
        rate ``(P + 1, P + 1)``, the last coordinate being ``logit(lapse)``
        (the Gaussian lives on the logit, so every draw is in (0, 1)).
    num_floored : int
        How many curvature eigenvalues were raised to the floor.
    curvature : str
        ``"fisher"`` or ``"hessian"``.
    """

    kind: ClassVar[str] = "laplace"

    map_fit: MAPFit | None = field(default=None, repr=False)
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

    def describe(self):
        lines = super().describe()
        lines.append(f"laplace: {self.curvature} curvature, {self.num_floored} eigenvalues floored")
        if self.map_fit is not None:
            lines += [f"MAP {line}" for line in self.map_fit.loss_lines()]
        return lines

    def _save_extras(self, out, attrs):
        dims = weight_dims(self.model.input_dim)
        if self.mean is not None:
            out["laplace_mean"] = ([f"laplace_{d}" for d in dims], np.asarray(self.mean))
        if self.cov is not None:
            out["laplace_cov"] = (["weight", "weight_"], np.asarray(self.cov))
        attrs["laplace_num_floored"] = int(self.num_floored)
        attrs["laplace_curvature"] = str(self.curvature)
        if self.map_fit is not None:
            self.map_fit.save_nested("map_", self, out, attrs)

    @classmethod
    def _restore(cls, src):
        attrs = src.extra.attrs
        return cls(
            model=src.model, data=src.data, draws=src.draws, lapse=src.lapse,
            map_fit=MAPFit.restore_nested(src, "map_"),
            mean=fitfile.value(src.extra, "laplace_mean"),
            cov=fitfile.value(src.extra, "laplace_cov"),
            num_floored=int(attrs.get("laplace_num_floored", 0)),
            curvature=str(attrs.get("laplace_curvature", "fisher")),
        )
