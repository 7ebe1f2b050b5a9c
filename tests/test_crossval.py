"""Cross-validation: stratified folds, held-out scores, the winning model."""

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.crossval import fold_labels


def test_folds_are_stratified_and_cover_every_trial_once():
    grid = np.linspace(-0.6, 0.6, 3)
    refs = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    ref = np.repeat(refs, 20, 0)  # 9 references x 20 trials: repeated references
    data = pn.TrialData(np.stack([ref, np.clip(ref + 0.05, -1, 1)], 1), np.ones(len(ref)))
    folds = fold_labels(data, 5, seed=3)
    assert folds.shape == (180,) and set(folds) == set(range(5))
    for r in range(9):  # every reference's 20 trials spread 4 per fold
        np.testing.assert_array_equal(np.bincount(folds[r * 20:(r + 1) * 20], minlength=5),
                                      np.full(5, 4))
    # random references: cells of reference space, folds still balanced
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (503, 2))
    data = pn.TrialData(np.stack([ref, ref], 1), np.zeros(503))
    counts = np.bincount(fold_labels(data, 5), minlength=5)
    assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(fold_labels(data, 5, seed=1), fold_labels(data, 5, seed=1))


def test_bad_candidates_are_named():
    data = pn.TrialData(np.zeros((20, 2, 2)), np.zeros(20))
    with pytest.raises(ValueError, match="models must be a non-empty list"):
        pn.cross_validate(data, [])
    message = r"models\[1\] must be a psyphy_numpyro.WPPM or a psyphy WPPM, got dict"
    with pytest.raises(TypeError, match=message):
        pn.cross_validate(data, [pn.WPPM(), {}])
    with pytest.raises(ValueError, match="20 trials are too few for 15 folds"):
        pn.cross_validate(data, [pn.WPPM()], num_folds=15)


@pytest.mark.slow
def test_cross_validation_prefers_the_generating_prior_scale():
    """Data from a WPPM with variance_scale v: CV ranks v above v / 100 and v * 100."""
    truth_model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=32, variance_scale=4e-3)
    params = truth_model.sample_prior(5)
    data = pn.simulate_experiment(truth_model, params, 1500, key=6)
    models = [truth_model.replace(variance_scale=v) for v in (4e-5, 4e-3, 4e-1)]
    cv = pn.cross_validate(data, models, num_folds=5, steps=600)
    assert cv.scores.shape == (3, 5) and np.isfinite(cv.scores).all()
    assert cv.best == truth_model, str(cv)
    header, rows = cv.table()
    assert rows[1][3] == 0.0 and rows[0][3] < 0 and rows[2][3] < 0
    assert "variance_scale=" in rows[0][0]
    fig = cv.plot()
    assert len(fig.axes[0].lines) >= 3


@pytest.mark.slow
def test_many_observers_cross_validate_as_one_program_like_separate_calls():
    """A list of data sets: one CrossValidation per observer, each equal to its own call."""
    model = pn.WPPM(input_dim=2, basis_degree=1, estimator="reparam", num_samples=16)
    params = model.sample_prior(2)
    datas = [pn.simulate_experiment(model, params, n, key=k) for n, k in ((160, 1), (120, 2))]
    models = [model, model.replace(variance_scale=model.variance_scale * 100)]
    kw = {"num_folds": 3, "steps": 60, "seed": 3, "eval_samples": 256, "progress": False}
    many = pn.cross_validate(datas, models, **kw)
    assert len(many) == 2
    for cv, d in zip(many, datas, strict=True):
        alone = pn.cross_validate(d, models, **kw)
        assert cv.scores.shape == (2, 3) and np.isfinite(cv.scores).all()
        np.testing.assert_array_equal(cv.folds, alone.folds)
        np.testing.assert_allclose(cv.scores, alone.scores, rtol=0, atol=0.01)
    assert not np.allclose(many[0].scores, many[1].scores, atol=0.01)
    with pytest.raises(ValueError, match=r"data\[1\]: 4 trials are too few for 3 folds"):
        pn.cross_validate([datas[0], datas[1][:4]], models, **kw)
