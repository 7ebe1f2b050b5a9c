"""Saving fits to NetCDF and loading them back (``fit.save(path)``, :func:`load_fit`).

The file layout is described in :mod:`psyphy_numpyro.fitfile`. Each fit class
(:mod:`psyphy_numpyro.fits`, :mod:`psyphy_numpyro.posterior`) declares its
``kind`` and its own save and restore hooks; this module only keeps the
table from ``kind`` to class and dispatches through it. The arrows point one
way: persist imports the fits, the fits import the file format, and the file
format imports no fit.

The weights are read back from ``unconstrained_posterior["W"]``
(``posterior["W"]`` in format-1 files; chain layout, dtype preserved) and the
trials from ``constant_data`` / ``observed_data``, so a loaded fit gives
bit-for-bit the same read-outs as the original. The NumPyro ``MCMC`` object of
a NUTS fit cannot be saved: it loads as ``None``, and its sampler statistics
(divergences, tree depth, ...) are restored from ``sample_stats`` instead.
"""

from __future__ import annotations

from . import fitfile
from .bootstrap import BootstrapFit
from .errors import InvalidInput, InvalidType
from .fitfile import FORMAT_VERSION
from .fits import Fit, MAPFit, PosteriorFit
from .posterior import LaplaceFit, MCMCFit

__all__ = ["save_fit", "load_fit", "fit_kind", "FORMAT_VERSION", "FIT_KINDS", "FIT_CLASSES"]

FIT_CLASSES = {cls.kind: cls for cls in (MAPFit, LaplaceFit, MCMCFit, BootstrapFit,
                                         PosteriorFit)}
"""The fit class of each ``fit_kind`` a file may record."""

FIT_KINDS = tuple(FIT_CLASSES)


def fit_kind(fit) -> str:
    """The ``kind`` a fit file records for ``fit`` (one of :data:`FIT_KINDS`)."""
    if not isinstance(fit, Fit):
        raise InvalidType(
            "save_fit needs a MAPFit, MCMCFit, LaplaceFit or PosteriorFit, "
            f"got {type(fit).__name__}"
        )
    return fit.kind


def save_fit(fit, path, *, log_likelihood: bool = True) -> None:
    """Save a fit to a NetCDF file, atomically (the same as ``fit.save(path)``).

    Parameters
    ----------
    fit : MAPFit, MCMCFit, LaplaceFit or PosteriorFit
    path : str or os.PathLike
        Target file (conventionally ``*.nc``); replaced if it exists.
    log_likelihood : bool
        Store the pointwise log-likelihood group (for ``az.loo`` straight
        from the file). Draw-based fits compute it once per draw, which
        takes a while for thousands of draws; ``False`` skips it. It is not
        needed to restore the fit.

    Raises
    ------
    TypeError
        ``fit`` is not a fit object.
    FileNotFoundError
        The target's directory does not exist.

    Examples
    --------
    >>> fit.save("fit.nc")                      # doctest: +SKIP
    >>> same = psyphy_numpyro.load_fit("fit.nc")  # doctest: +SKIP
    """
    fit_kind(fit)
    fit.save(path, log_likelihood=log_likelihood)


def load_fit(path):
    """Load a fit written by ``fit.save(path)`` (:func:`save_fit`).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MAPFit, LaplaceFit, MCMCFit or PosteriorFit
        The same class as the saved fit, with the same weights (dtype
        included), model configuration and data, so every read-out
        (``covariance``, ``p_correct``, ``log_likelihood``, ``summary``,
        ``to_arviz``, :func:`~psyphy_numpyro.thresholds`,
        :func:`~psyphy_numpyro.psychometric`) gives identical results. What
        cannot be saved loads as ``None``: ``MCMCFit.mcmc`` (its sampler
        statistics come from the file's ``sample_stats`` instead).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a NetCDF file, not a psyphy_numpyro fit file, or was
        written by a newer, incompatible format version.

    Examples
    --------
    >>> fit = psyphy_numpyro.load_fit("fit.nc")   # doctest: +SKIP
    >>> fit.covariance([[0.0, 0.0]])              # doctest: +SKIP
    """
    kind, src = fitfile.read(path, FIT_KINDS)
    try:
        return FIT_CLASSES[kind]._restore(src)
    except KeyError as exc:
        raise InvalidInput(f"{src.path}: incomplete fit file (missing {exc})") from exc
