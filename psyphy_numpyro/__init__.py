"""psyphy_numpyro: the Wishart Process Psychophysical Model as a NumPyro model.

The public names below are imported on first use (PEP 562), so ``import
psyphy_numpyro`` and its light parts (the session store, the command line's
read-only calls, :mod:`psyphy_numpyro.client`) start without importing JAX.
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports below exist for type checkers and griffe)
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__  # noqa: F401

# public name -> the module that defines it
_EXPORTS = {
    "BootstrapFit": ".bootstrap",
    "fit_bootstrap": ".bootstrap",
    "CrossValidation": ".crossval",
    "cross_validate": ".crossval",
    "TrialData": ".data",
    "as_trial_data": ".data",
    "propose_trials": ".design",
    "random_trials": ".design",
    "space_filling_trials": ".design",
    "Experiment": ".design.session",
    "FitDivergedError": ".errors",
    "FitFailedError": ".errors",
    "Fit": ".fitbase",
    "PosteriorFit": ".fitbase",
    "MAPFit": ".fits",
    "HyperparameterChoice": ".hyperparameters",
    "choose_hyperparameters": ".hyperparameters",
    "MAP": ".inference",
    "MAPState": ".inference",
    "Trials": ".inference",
    "fit_laplace": ".laplace",
    "fit_map": ".map_fit",
    "fit_mcmc": ".mcmc",
    "MOCSValidation": ".mocs_result",
    "validate_mocs": ".mocs",
    "simulate_mocs": ".mocs_design",
    "WPPM": ".wppm",
    "wppm_model": ".model",
    "load_fit": ".persist",
    "fit_population": ".population",
    "fit_population_laplace": ".population_laplace",
    "fit_population_mcmc": ".population_mcmc",
    "PopulationFit": ".population_fit",
    "LaplaceFit": ".posterior",
    "MCMCFit": ".posterior",
    "WeightPrior": ".prior",
    "Thresholds": ".readout",
    "field_error": ".readout",
    "fit_ellipse": ".readout",
    "psychometric": ".psychometric_curve",
    "thresholds": ".readout",
    "comparisons_at_radius": ".simulate",
    "StimulusSpace": ".space",
    "simulate_experiment": ".simulate",
    "simulate_observer": ".simulate",
    "simulate_trials": ".simulate",
    "fit_weibull": ".weibull",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and the API docs (griffe)
    from .bootstrap import BootstrapFit, fit_bootstrap
    from .crossval import CrossValidation, cross_validate
    from .data import TrialData, as_trial_data
    from .design import propose_trials, random_trials, space_filling_trials
    from .design.session import Experiment
    from .errors import FitDivergedError, FitFailedError
    from .fitbase import Fit, PosteriorFit
    from .fits import MAPFit
    from .hyperparameters import HyperparameterChoice, choose_hyperparameters
    from .inference import MAP, MAPState, Trials
    from .laplace import fit_laplace
    from .map_fit import fit_map
    from .mcmc import fit_mcmc
    from .mocs import validate_mocs
    from .mocs_design import simulate_mocs
    from .mocs_result import MOCSValidation
    from .model import wppm_model
    from .persist import load_fit
    from .population import fit_population
    from .population_fit import PopulationFit
    from .population_laplace import fit_population_laplace
    from .population_mcmc import fit_population_mcmc
    from .posterior import LaplaceFit, MCMCFit
    from .prior import WeightPrior
    from .psychometric_curve import psychometric
    from .readout import Thresholds, field_error, fit_ellipse, thresholds
    from .simulate import (
        comparisons_at_radius,
        simulate_experiment,
        simulate_observer,
        simulate_trials,
    )
    from .space import StimulusSpace
    from .weibull import fit_weibull
    from .wppm import WPPM


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
