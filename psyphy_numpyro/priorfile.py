"""A new observer's prior read from a file, for the command line and the session server.

One concept: ``psyphy-numpyro experiment new --prior FILE`` and the server's
``"prior": "<file name>"`` name a file holding either a population fit
(:meth:`PopulationFit.save <psyphy_numpyro.PopulationFit.save>`, NetCDF) or a
:class:`~psyphy_numpyro.WeightPrior` (:meth:`WeightPrior.save
<psyphy_numpyro.WeightPrior.save>`, JSON). :func:`read_prior` reads either;
:func:`prior_model` is the model a session with that prior refits (the population's,
or the one a bare weight prior's shape implies), with the given model settings;
:func:`session_prior` does both.
"""

from __future__ import annotations

import os

from .errors import InvalidInput

__all__ = ["read_prior", "prior_model", "session_prior"]

_NETCDF = (b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02")  # NetCDF-4 (HDF5), NetCDF-3


def read_prior(path, name=None):
    """The prior in the file ``path``: a population fit or a weight prior.

    Parameters
    ----------
    path : str or os.PathLike
        A NetCDF file of :meth:`PopulationFit.save
        <psyphy_numpyro.PopulationFit.save>` or a JSON file of
        :meth:`WeightPrior.save <psyphy_numpyro.WeightPrior.save>`.
    name : str, optional
        How messages name the file (default: ``path``; the server gives the name
        relative to its root).

    Returns
    -------
    PopulationFit or WeightPrior

    Raises
    ------
    ValueError
        No such file, a folder, or a file that is neither.
    """
    name = os.fspath(path) if name is None else name
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise InvalidInput(f"prior {name}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"prior {name}: cannot be read ({exc.strerror or exc})") from None
    if head.startswith(_NETCDF):
        from .population_fit import PopulationFit

        try:
            return PopulationFit.load(path)
        except InvalidInput as exc:
            raise InvalidInput(f"prior {name}: {str(exc).removeprefix(f'{path}: ')}") from None
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInput(f"prior {name}: not a population fit file "
                               f"({type(exc).__name__}: {exc})") from None
    if head.lstrip()[:1] != b"{":
        raise InvalidInput(f"prior {name}: neither a population fit (NetCDF, "
                           "PopulationFit.save) nor a weight prior (JSON, WeightPrior.save)")
    from .prior import WeightPrior

    try:
        return WeightPrior.load(path)
    except (InvalidInput, TypeError) as exc:
        raise InvalidInput(f"prior {name}: {str(exc).removeprefix(f'{path}: ')}") from None


def prior_model(prior, model=None, input_dim=None, **options):
    """The model a session with ``prior`` refits, before the prior is set on it.

    Parameters
    ----------
    prior : PopulationFit or WeightPrior
        From :func:`read_prior`.
    model : WPPM, optional
        Given: it is the model (its weights' shape must be the prior's).
    input_dim : int, optional
        The session's stimulus dimension, when given (it must be the prior's).
    **options
        WPPM settings (``num_samples``, ``estimator``, ...) that replace the
        population model's, or the defaults of the WPPM a weight prior's shape
        implies (``input_dim``, ``basis_degree`` and ``extra_dims`` from
        ``(K+1,)*d + (d, d+e)``).

    Returns
    -------
    WPPM

    Raises
    ------
    ValueError
        ``input_dim`` differs from the prior's, or a weight prior's shape fits no WPPM.
    """
    from .prior import WeightPrior
    from .wppm import WPPM

    if model is not None:
        return model.replace(**options) if options else model
    if isinstance(prior, WeightPrior):
        shape = prior.shape
        d = len(shape) - 2
        if d < 1 or shape[d] != d or shape[-1] < d or len(set(shape[:d])) != 1:
            raise InvalidInput(f"the weight prior's shape {shape} is not a WPPM's "
                               "(K+1,)*d + (d, d+e)")
        base = {"input_dim": d, "basis_degree": shape[0] - 1, "extra_dims": shape[-1] - d}
        if input_dim is not None and input_dim != d:
            raise InvalidInput(f"the prior is for {d}-D stimuli, not {input_dim}-D")
        return WPPM(**{**base, **options})
    model = getattr(prior, "model", None)
    if not isinstance(model, WPPM):
        raise InvalidInput(f"a prior is a PopulationFit or a WeightPrior, got "
                           f"{type(prior).__name__}")
    if input_dim is not None and input_dim != model.input_dim:
        raise InvalidInput(f"the population is {model.input_dim}-D, not {input_dim}-D")
    return model.replace(**options) if options else model


def session_prior(path, model=None, input_dim=None, *, name=None):
    """``(prior, model)``: the prior in ``path`` (:func:`read_prior`) and the model of a
    session with it (:func:`prior_model`).

    Parameters
    ----------
    path : str or os.PathLike
        The prior's file.
    model : WPPM or dict, optional
        A WPPM: the model; a dict: WPPM settings that change the prior's model.
    input_dim : int, optional
        The session's stimulus dimension, when given.
    name : str, optional
        How messages name the file.
    """
    prior = read_prior(path, name)
    try:
        if isinstance(model, dict):
            return prior, prior_model(prior, None, input_dim, **model)
        return prior, prior_model(prior, model, input_dim)
    except InvalidInput as exc:
        raise InvalidInput(f"prior {os.fspath(path) if name is None else name}: {exc}") \
            from None
