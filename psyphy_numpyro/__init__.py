"""psyphy_numpyro: the Wishart Process Psychophysical Model as a NumPyro model."""

from ._version import __version__  # noqa: F401
from .bootstrap import BootstrapFit, fit_bootstrap
from .crossval import CrossValidation, cross_validate
from .data import TrialData, as_trial_data
from .design import propose_trials, random_trials, space_filling_trials
from .design.session import Experiment
from .errors import FitDivergedError, FitFailedError
from .fits import Fit, MAPFit, PosteriorFit
from .hyperparameters import HyperparameterChoice, choose_hyperparameters
from .inference import MAP, MAPState, Trials
from .laplace import fit_laplace
from .map_fit import fit_map
from .mcmc import fit_mcmc
from .mocs import MOCSValidation, simulate_mocs, validate_mocs
from .model import WPPM, wppm_model
from .persist import load_fit
from .posterior import LaplaceFit, MCMCFit
from .readout import Thresholds, field_error, fit_ellipse, psychometric, thresholds
from .simulate import (
    comparisons_at_radius,
    simulate_experiment,
    simulate_observer,
    simulate_trials,
)
from .weibull import fit_weibull

__all__ = [
    "Experiment",
    "propose_trials",
    "space_filling_trials",
    "random_trials",
    "WPPM",
    "TrialData",
    "as_trial_data",
    "simulate_trials",
    "comparisons_at_radius",
    "simulate_experiment",
    "simulate_observer",
    "wppm_model",
    "fit_map",
    "MAP",
    "MAPState",
    "Trials",
    "MAPFit",
    "FitDivergedError",
    "FitFailedError",
    "fit_mcmc",
    "fit_laplace",
    "fit_bootstrap",
    "BootstrapFit",
    "MCMCFit",
    "LaplaceFit",
    "PosteriorFit",
    "Fit",
    "psychometric",
    "thresholds",
    "Thresholds",
    "fit_ellipse",
    "field_error",
    "load_fit",
    "cross_validate",
    "CrossValidation",
    "choose_hyperparameters",
    "HyperparameterChoice",
    "fit_weibull",
    "simulate_mocs",
    "validate_mocs",
    "MOCSValidation",
]
