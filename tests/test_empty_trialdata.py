"""Zero trials: a legitimate TrialData (a new session's data), rejected clearly by fits."""

import numpy as np
import pytest

import psyphy_numpyro as pn

SMALL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")


def test_a_new_sessions_data_is_empty_and_grows(tmp_path):
    exp = pn.Experiment(tmp_path / "s.db", model=pn.WPPM(input_dim=2), seed=0, live=False)
    data = exp.data
    assert len(data) == 0 and data.input_dim == 2
    assert data.stimuli.shape == (0, 2, 2) and data.responses.shape == (0,)
    assert "num_trials=0" in repr(data)
    exp.close()

    exp = pn.Experiment(tmp_path / "loop.db", SMALL, seed=0, live=False, num_initial=50)
    while len(exp.data) < 3:
        ids, _ = exp.ask(1)
        exp.tell(ids, [1])
    assert len(exp.data) == 3 and exp.data.responses.tolist() == [1, 1, 1]
    exp.close()


def test_empty_trial_data_slices_and_concatenates():
    empty = pn.TrialData(np.zeros((0, 2, 2)), np.zeros(0, np.int32))
    assert empty == pn.TrialData.from_arrays(np.zeros((0, 2)), np.zeros((0, 2)), [])
    one = pn.TrialData(np.zeros((1, 2, 2)), [1])
    assert len(one[np.zeros(1, bool)]) == 0
    assert pn.TrialData.concatenate([empty, one]) == one


@pytest.mark.parametrize("fit", [
    lambda data: pn.fit_map(data, steps=5, num_restarts=1, progress=False),
    lambda data: pn.fit_map(data, SMALL, steps=5, num_restarts=1, progress=False),
    lambda data: pn.fit_map([data], SMALL, steps=5, num_restarts=1, progress=False),
    lambda data: pn.fit_laplace(data, SMALL),
    lambda data: pn.fit_mcmc(data, SMALL),
    lambda data: pn.WPPM.for_data(data),
])
def test_fitting_no_trials_is_a_clear_error(fit):
    empty = pn.TrialData(np.zeros((0, 2, 2)), np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="data has no trials"):
        fit(empty)
