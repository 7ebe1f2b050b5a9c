"""psyphy_numpyro: the Wishart Process Psychophysical Model as a NumPyro model."""

from .data import TrialData, as_trial_data, simulate_trials
from .map_fit import FitDivergedError, MAPFit, fit_map
from .model import WPPM, wppm_model

__version__ = "0.1.0"

__all__ = [
    "WPPM",
    "TrialData",
    "as_trial_data",
    "simulate_trials",
    "wppm_model",
    "fit_map",
    "MAPFit",
    "FitDivergedError",
]
