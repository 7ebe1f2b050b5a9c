"""Examples whose numbers are claims: run them small and check what they say."""

import sys
from pathlib import Path

import numpy as np
import pytest

import psyphy_numpyro as pn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import custom_optimizer  # noqa: E402


@pytest.mark.slow
def test_custom_optimizer_loop_matches_fit_map(tmp_path):
    out = custom_optimizer.run(num_trials=300, steps=150, seed=0, out_dir=tmp_path)
    # the hand-written loop and fit_map run the same computation
    np.testing.assert_allclose(out["history"], out["fit_history"], rtol=1e-3)
    assert out["max_rel_diff_sigma"] < 1e-3
    assert out["history"][-20:].mean() < out["history"][:20].mean()
    assert (tmp_path / "custom_optimizer_loss.png").stat().st_size > 10_000


@pytest.mark.slow
def test_adaptive_example_places_trials_where_responses_are_informative(tmp_path):
    import adaptive_experiment

    out = adaptive_experiment.run((300, 500), seed=0, out_dir=tmp_path)
    data, sources = out["adaptive_data"], out["sources"]
    assert len(data) == 500 and len(sources) == 500
    assert sources[:300] == ["space"] * 300 and all(s.startswith("fit") for s in sources[300:])
    assert np.all(np.abs(data.stimuli) <= 1.0)
    # the session's posterior-chosen trials sit on the slope of the psychometric function
    # (neither at chance nor at ceiling) far more often than the plain design's
    def informative(p):
        return np.mean((p > 0.45) & (p < 0.9))

    assert informative(out["p_true"]["adaptive"]) > 1.3 * informative(out["p_true"]["plain"])
    assert all(0 < e < 1 for e in out["plain"] + out["adaptive"])
    for path in out["figures"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    reopened = pn.Experiment(tmp_path / "adaptive_session.sqlite")
    try:
        np.testing.assert_array_equal(reopened.data.stimuli, data.stimuli)
        np.testing.assert_array_equal(reopened.data.responses, data.responses)
    finally:
        reopened.close()


@pytest.mark.slow
def test_colour_units_example_recovers_xy_thresholds(tmp_path):
    import colour_units

    out = colour_units.main(tmp_path, num_trials=2000, seed=0)
    th, truth = out["thresholds"], out["truth"]
    assert th.space.name == "xy"
    a_fit = np.sqrt(np.linalg.eigvalsh(th.ellipses))
    a_true = np.sqrt(np.linalg.eigvalsh(truth))
    assert np.median(np.abs(a_fit / a_true - 1)) < 0.2  # measured 0.08
    assert np.all((out["delta_e"] > 0.5) & (out["delta_e"] < 8))
    assert (tmp_path / "colour_units_thresholds.png").stat().st_size > 10_000
    assert (tmp_path / "colour_units_trials.csv.space.json").exists()


@pytest.mark.slow
def test_population_example_pools_the_sparse_observer(tmp_path):
    import population_example

    out = population_example.run(sizes=(250, 250, 40), seed=0, out_dir=tmp_path)
    assert out["population"].inference == "laplace"
    # the sparse observer's thresholds are tighter pooled than alone
    assert out["widths"]["pooled"] < 0.8 * out["widths"]["alone"]
    with open(out["figure"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
