"""Conversion of fits to ArviZ ``InferenceData`` with named dims."""

from __future__ import annotations

import numpy as np

from . import field

__all__ = ["to_inference_data", "default_grid", "weight_dims"]

_AXES = ("x", "y", "z")


def weight_dims(input_dim: int) -> list[str]:
    """Dim names of ``W``: ``basis_0..basis_{d-1}, stimulus_dim, embedding_dim``."""
    return [f"basis_{i}" for i in range(input_dim)] + ["stimulus_dim", "embedding_dim"]


def default_grid(input_dim: int, points_per_axis: int = 5) -> np.ndarray:
    """A regular grid over ``[-0.8, 0.8]^d`` (flattened, shape (G, d))."""
    g = np.linspace(-0.8, 0.8, points_per_axis)
    mesh = np.meshgrid(*([g] * input_dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], -1)


def to_inference_data(
    model,
    data,
    W_draws,
    log_likelihood,
    *,
    sample_stats=None,
    grid=None,
    attrs=None,
    posterior_predictive=None,
    lapse_draws=None,
):
    """Build InferenceData from weight draws.

    Parameters
    ----------
    model : WPPM
    data : TrialData
    W_draws : array (chain, draw, *weight_shape)
    log_likelihood : array (chain, draw, N)
        Pointwise log-likelihood of every trial.
    sample_stats : dict of arrays (chain, draw), optional
    grid : array (G, d), optional
        Points where ``Sigma`` is added to the posterior as a derived variable
        (identifiable, unlike ``W``); default :func:`default_grid`.
    attrs : dict, optional
        Extra attributes (``inference`` method etc.), stored on the posterior
        and the InferenceData.
    posterior_predictive : array (chain, draw, N), optional
        Replicated responses ``y``.
    lapse_draws : array (chain, draw), optional
        Draws of a learned lapse rate (posterior variable ``lapse_rate``).
    """
    import arviz as az

    d = model.input_dim
    W_draws = np.asarray(W_draws)
    if grid is None:
        grid = default_grid(d)
    grid = np.asarray(grid, dtype=float).reshape(-1, d)
    chains, draws = W_draws.shape[:2]
    flat = W_draws.reshape((chains * draws,) + W_draws.shape[2:])
    import jax

    Sigma = np.asarray(
        jax.vmap(lambda W: field.covariance_field(W, grid, model.diag_term))(flat)
    ).reshape(chains, draws, grid.shape[0], d, d)
    axes = list(_AXES[:d])
    coords = {
        **{f"basis_{i}": np.arange(model.basis_degree + 1) for i in range(d)},
        "stimulus_dim": axes,
        "stimulus_dim_": axes,
        "embedding_dim": np.arange(model.embedding_dim),
        "trial": np.arange(len(data)),
        "grid_point": np.arange(grid.shape[0]),
    }
    dims = {
        "W": weight_dims(d),
        "Sigma": ["grid_point", "stimulus_dim", "stimulus_dim_"],
        "grid": ["grid_point", "stimulus_dim"],
        "y": ["trial"],
        "ref": ["trial", "stimulus_dim"],
        "comparison": ["trial", "stimulus_dim"],
    }
    meta = {"model": repr(model), **(attrs or {})}
    posterior = {"W": W_draws, "Sigma": Sigma}
    if lapse_draws is not None:
        posterior["lapse_rate"] = np.asarray(lapse_draws).reshape(chains, draws)
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood=None if log_likelihood is None else {"y": np.asarray(log_likelihood)},
        posterior_predictive=(
            None if posterior_predictive is None else {"y": np.asarray(posterior_predictive)}
        ),
        observed_data={"y": np.asarray(data.responses)},
        constant_data={
            "ref": data.stimuli[:, 0],
            "comparison": data.stimuli[:, 1],
            "grid": grid,
        },
        coords=coords,
        dims=dims,
        attrs=meta,
        posterior_attrs=meta,
    )
    return idata
