"""The informative Gaussian prior of a model's weights (a population's, for a new observer)."""

from __future__ import annotations

import json
import os

import numpy as np

from .errors import InvalidInput, InvalidType
from .validation import check_real

__all__ = ["WeightPrior"]


class WeightPrior:
    """An informative Gaussian prior of the weights: ``W ~ N(mean, std^2)`` entry by entry.

    What a population fit says about a new observer
    (:meth:`~psyphy_numpyro.PopulationFit.new_observer_prior`); a
    :class:`~psyphy_numpyro.WPPM` carries it as ``weight_prior``
    (:meth:`~psyphy_numpyro.WPPM.with_prior`), and then
    :func:`~psyphy_numpyro.wppm_model` draws ``W`` from it, so every fit of that model (MAP,
    Laplace, NUTS) uses it. Immutable; hashed and compared by its values, so two
    equal priors give equal models and share compiled programs.

    Parameters
    ----------
    mean, std : array_like
        Same shape (the model's ``weight_shape``); ``std`` positive and finite.
    source : str
        What the prior came from (a note kept in files; not compared).
    """

    __slots__ = ("mean", "std", "source", "_hash")

    def __init__(self, mean, std, source: str = ""):
        try:
            mean = np.array(mean, dtype=np.float64)
            std = np.array(std, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidType("WeightPrior: mean and std must be numeric arrays") from None
        if mean.shape != std.shape:
            raise InvalidInput(f"WeightPrior: mean has shape {mean.shape} but std has shape "
                               f"{std.shape}")
        if not np.all(np.isfinite(mean)):
            raise InvalidInput("WeightPrior: mean has NaN or infinite entries")
        if not np.all(np.isfinite(std) & (std > 0)):
            raise InvalidInput("WeightPrior: every std must be positive and finite")
        if not isinstance(source, str):
            raise InvalidType(f"WeightPrior: source must be a str, got {type(source).__name__}")
        mean.flags.writeable = False
        std.flags.writeable = False
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "_hash", hash((mean.shape, mean.tobytes(), std.tobytes())))

    def __setattr__(self, name, value):
        raise AttributeError("WeightPrior is immutable")

    def __hash__(self):
        return self._hash

    def __reduce__(self):  # copies and pickles rebuild it (its __setattr__ refuses)
        return (WeightPrior, (self.mean, self.std, self.source))

    def __eq__(self, other):
        if not isinstance(other, WeightPrior):
            return NotImplemented
        return (self._hash == other._hash and self.mean.shape == other.mean.shape
                and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.std, other.std))

    def __repr__(self):
        src = f", source={self.source!r}" if self.source else ""
        return (f"WeightPrior(shape={self.mean.shape}, median std="
                f"{float(np.median(self.std)):.3g}{src})")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mean.shape

    def to_dict(self) -> dict:
        """JSON-ready ``{"mean": nested list, "std": nested list, "source": str}``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "source": self.source}

    @classmethod
    def from_dict(cls, obj) -> WeightPrior:
        """The prior of :meth:`to_dict`'s output."""
        if not isinstance(obj, dict) or not {"mean", "std"} <= set(obj):
            raise InvalidInput("a weight prior needs a dict with 'mean' and 'std', got "
                               f"{type(obj).__name__}")
        return cls(obj["mean"], obj["std"], obj.get("source", ""))

    def save(self, path) -> None:
        """Write the prior to a JSON file (:meth:`to_dict`), atomically; read it back with
        :meth:`load`. The file is what ``psyphy-numpyro experiment new --prior FILE``
        and the session server's ``"prior"`` take.

        Parameters
        ----------
        path : str or os.PathLike
            Target file (conventionally ``*.json``); replaced if it exists.
        """
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"psyphy_numpyro_kind": "weight_prior", **self.to_dict()}, f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> WeightPrior:
        """The prior written by :meth:`save` (or any JSON object of :meth:`to_dict`'s form).

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist.
        ValueError
            Not JSON, or not a weight prior's object.
        """
        with open(path, encoding="utf-8") as f:
            try:
                obj = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"{path}: not a JSON file ({exc})") from None
        if isinstance(obj, dict) and obj.get("psyphy_numpyro_kind", "weight_prior") \
                != "weight_prior":
            raise InvalidInput(f"{path}: a {obj['psyphy_numpyro_kind']!r} file, not a weight "
                               "prior")
        try:
            return cls.from_dict(obj)
        except (InvalidInput, InvalidType) as exc:
            raise type(exc)(f"{path}: {exc}") from None

    @classmethod
    def from_population(cls, population, *, mean_uncertainty: float = 0.0) -> WeightPrior:
        """What a population fit says about a new observer's weights.

        A new observer of the population model has ``W_new = (W_pop + delta) /
        sqrt(1 + tau^2)`` with ``delta ~ N(0, tau^2 prior_std^2)``: given the
        population, ``W_new ~ N(W_mean, tau^2 / (1 + tau^2) prior_std^2)``.

        Parameters
        ----------
        population : PopulationFit
        mean_uncertainty : float
            Extra variance of the population mean, in prior variances (``0``:
            the population mean taken as known; ``v`` widens the variance to
            ``(tau^2 / (1 + tau^2) + v) prior_std^2``).
        """
        if not all(hasattr(population, a) for a in ("population", "tau", "model")):
            raise InvalidType("from_population needs a PopulationFit (pn.fit_population), got "
                              f"{type(population).__name__}")
        v = check_real("mean_uncertainty", mean_uncertainty, 0.0, lo_closed=True)
        tau = float(population.tau)
        sd = np.asarray(population.model.prior_std(), np.float64)
        std = sd * np.sqrt(tau**2 / (1.0 + tau**2) + v)
        mean = np.asarray(population.population.params["W"], np.float64)
        return cls(mean, std, f"population of {population.num_observers} observers, "
                              f"tau={tau:.4g}")
