"""psyphy_numpyro: the Wishart Process Psychophysical Model as a NumPyro model.

The public names below are imported on first use (PEP 562), so ``import
psyphy_numpyro`` and its light parts (the session store, the command line's
read-only calls, :mod:`psyphy_numpyro.client`) start without importing JAX.
"""

from __future__ import annotations

import importlib
import importlib.util

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
    "Fit": ".fits",
    "MAPFit": ".fits",
    "PosteriorFit": ".fits",
    "HyperparameterChoice": ".hyperparameters",
    "choose_hyperparameters": ".hyperparameters",
    "MAP": ".inference",
    "MAPState": ".inference",
    "Trials": ".inference",
    "fit_laplace": ".laplace",
    "fit_map": ".map_fit",
    "fit_mcmc": ".mcmc",
    "MOCSValidation": ".mocs",
    "simulate_mocs": ".mocs",
    "validate_mocs": ".mocs",
    "WPPM": ".model",
    "wppm_model": ".model",
    "load_fit": ".persist",
    "LaplaceFit": ".posterior",
    "MCMCFit": ".posterior",
    "Thresholds": ".readout",
    "field_error": ".readout",
    "fit_ellipse": ".readout",
    "psychometric": ".readout",
    "thresholds": ".readout",
    "comparisons_at_radius": ".simulate",
    "StimulusSpace": ".space",
    "simulate_experiment": ".simulate",
    "simulate_observer": ".simulate",
    "simulate_trials": ".simulate",
    "fit_weibull": ".weibull",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return importlib.import_module(f".{name}", __name__)  # a submodule: pn.errors
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
