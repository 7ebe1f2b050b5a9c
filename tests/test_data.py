"""TrialData, CSV input/output, simulation and psyphy interop."""

import jax.numpy as jnp
import numpy as np
import pytest

import psyphy_numpyro as pn


def _stimuli(n=20, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 2, d)), rng.integers(0, 2, n)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_csv_round_trip_is_lossless(tmp_path, d):
    s, y = _stimuli(d=d)
    data = pn.TrialData(s, y)
    path = tmp_path / "trials.csv"
    data.to_csv(path)
    header = path.read_text().splitlines()[0]
    assert header == ",".join(pn.data.csv_columns(d))
    back = pn.TrialData.from_csv(path)
    assert back == data
    np.testing.assert_array_equal(back.stimuli, s)  # bit for bit


def test_csv_header_for_2d():
    assert pn.data.csv_columns(2) == ["ref_x", "ref_y", "comparison_x", "comparison_y", "response"]


@pytest.mark.parametrize(
    "body, msg",
    [
        ("ref_x,ref_y,comparison_x,comparison_y,response\n0.1,0.2,0.3,0.4,2\n",
         "row 1, column 'response' must be 0 or 1"),
        ("ref_x,ref_y,comparison_x,comparison_y,response\n0.1,0.2,0.3,0.4,1\n0.1,abc,0,0,1\n",
         "row 2, column 'ref_y': 'abc' is not a number"),
        ("ref_x,ref_y,comparison_x,comparison_y,response\n0.1,0.2,1.3,0.4,1\n",
         "row 1, column 'comparison_x' = 1.3 is outside \\[-1, 1\\]"),
        ("ref_x,ref_y,comparison_x,comparison_y,response\n0.1,nan,0.3,0.4,1\n",
         "row 1, column 'ref_y' is 'nan'"),
        ("ref_x,ref_y,probe_x,probe_y,response\n0.1,0.2,0.3,0.4,1\n",
         "unknown columns \\['probe_x', 'probe_y'\\]"),
        ("ref_x,ref_y,comparison_x,response\n0.1,0.2,0.3,1\n", "does not match any layout"),
        ("ref_x,ref_y,comparison_x,comparison_y,response\n0.1,0.2,0.3,1\n",
         "row 1 has 4 fields, expected 5"),
        ("ref_x,ref_y,comparison_x,comparison_y,response\n", "no data rows"),
        ("", "file is empty"),
    ],
)
def test_csv_errors_name_file_row_and_column(tmp_path, body, msg):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=msg) as err:
        pn.TrialData.from_csv(path)
    assert str(path) in str(err.value)


def test_columns_in_any_order(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("response,comparison_x,ref_x\n1,0.5,-0.5\n0,0.25,0.0\n")
    data = pn.TrialData.from_csv(path)
    np.testing.assert_array_equal(data.ref[:, 0], [-0.5, 0.0])
    np.testing.assert_array_equal(data.comparison[:, 0], [0.5, 0.25])
    np.testing.assert_array_equal(data.responses, [1, 0])


@pytest.mark.parametrize(
    "stimuli, responses, exc, msg",
    [
        (np.zeros((0, 2, 2)), np.zeros(0), ValueError, "empty"),
        (np.zeros((3, 2)), np.zeros(3), ValueError, "shape \\(N, 2, d\\)"),
        (np.zeros((3, 3, 2)), np.zeros(3), ValueError, "shape \\(N, 2, d\\)"),
        (np.zeros((3, 2, 4)), np.zeros(3), ValueError, "d in \\{1, 2, 3\\}"),
        (np.full((3, 2, 2), 1.5), np.zeros(3), ValueError, "outside the domain \\[-1, 1\\]"),
        (np.full((3, 2, 2), np.nan), np.zeros(3), ValueError, "NaN or Inf"),
        (np.zeros((3, 2, 2)), np.array([0, 1, 2]), ValueError, "must be 0 or 1; entry 2"),
        (np.zeros((3, 2, 2)), np.zeros(4), ValueError, "4 entries but there are 3 trials"),
        (np.zeros((3, 2, 2)), np.zeros((3, 2)), ValueError, "shape \\(N,\\) or \\(N, 1\\)"),
        (np.array([[["a", "b"]] * 2] * 3), np.zeros(3), TypeError, "numeric"),
    ],
)
def test_bad_trial_data(stimuli, responses, exc, msg):
    with pytest.raises(exc, match=msg):
        pn.TrialData(stimuli, responses)


def test_column_responses_and_from_arrays():
    s, y = _stimuli()
    a = pn.TrialData(s, y[:, None])
    b = pn.TrialData.from_arrays(s[:, 0], s[:, 1], y)
    assert a == b and len(a) == 20 and a.input_dim == 2
    assert a.responses.shape == (20,)
    assert len(a[:5]) == 5


def test_accepts_psyphy_trial_data_and_response_data():
    psy = pytest.importorskip("psyphy.data.dataset")
    s, y = _stimuli()
    theirs = psy.TrialData(jnp.asarray(s), jnp.asarray(y))
    ours = pn.TrialData(theirs)
    np.testing.assert_allclose(ours.stimuli, s, rtol=1e-6)
    np.testing.assert_array_equal(ours.responses, y)
    rd = psy.ResponseData.from_arrays(s, y)
    assert pn.as_trial_data(rd).stimuli.shape == (20, 2, 2)


def test_simulate_trials_matches_p_correct():
    model = pn.WPPM(input_dim=2, num_samples=256)
    params = model.sample_prior(0)
    ref = np.zeros((4000, 2))
    comp = np.tile([[0.12, 0.05]], (4000, 1))
    data = pn.simulate_trials(model, params, ref, comp, key=3)
    p = float(model.replace(num_samples=20000).p_correct(params, ref[:1], comp[:1], key=1)[0])
    # binomial standard error at n=4000 is <= 0.008
    assert abs(data.responses.mean() - p) < 0.03
    again = pn.simulate_trials(model, params, ref, comp, key=3)
    assert again == data


@pytest.mark.parametrize("d", [1, 2, 3])
def test_comparisons_at_radius_have_that_mahalanobis_distance(d):
    model = pn.WPPM(input_dim=d, variance_scale=1e-3)
    params = model.sample_prior(0)
    ref = np.random.default_rng(0).uniform(-0.5, 0.5, (50, d))
    comp = pn.comparisons_at_radius(model, params, ref, 2.0, key=1)
    S = np.asarray(model.covariance(params, ref), np.float64)
    diff = comp - ref
    dist = np.sqrt(np.einsum("ni,nij,nj->n", diff, np.linalg.inv(S), diff))
    inside = np.all(np.abs(ref + diff) < 1, axis=1)  # clipping only shortens
    np.testing.assert_allclose(dist[inside], 2.0, rtol=1e-4)
    assert np.all(dist <= 2.0 + 1e-4)
