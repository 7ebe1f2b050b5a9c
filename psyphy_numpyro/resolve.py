"""The (data, model) pair every fitter starts from: the data coerced, the model defaulted
to one whose hyperparameters come from the data (:meth:`WPPM.for_data
<psyphy_numpyro.WPPM.for_data>`) or converted from psyphy, and the two checked against
each other. Used by :func:`~psyphy_numpyro.fit_map`, :func:`~psyphy_numpyro.fit_laplace`,
:func:`~psyphy_numpyro.fit_mcmc`, :func:`~psyphy_numpyro.fit_bootstrap` and
:func:`~psyphy_numpyro.cross_validate`."""

from __future__ import annotations

from .data import TrialData, as_trial_data
from .errors import InvalidInput
from .rangecheck import warn_small_range
from .wppm import WPPM, as_wppm

__all__ = ["resolve_model"]


def resolve_model(data, model, *, check=True) -> tuple[TrialData, WPPM]:
    """Coerce data, default the model to one with hyperparameters from the data, check they
    agree.

    ``model=None`` gives :func:`~psyphy_numpyro.hyperparameters.choose_hyperparameters`'
    model (``WPPM.for_data``); a given model is kept as it is (a psyphy WPPM is
    converted by :meth:`WPPM.from_psyphy`), with a warning when its ``diag_term``
    floor is above the thresholds the data imply (``check``).
    """
    from .hyperparameters import check_floor, choose_hyperparameters

    data = as_trial_data(data)
    warn_small_range(data, stacklevel=4)
    if model is None:
        return data, choose_hyperparameters(data, WPPM(input_dim=data.input_dim)).model
    model = as_wppm(model)
    if model.input_dim != data.input_dim:
        raise InvalidInput(
            f"data has stimulus dimension {data.input_dim} but the model has "
            f"input_dim={model.input_dim}"
        )
    if check:
        check_floor(data, model, stacklevel=4)
    return data, model
