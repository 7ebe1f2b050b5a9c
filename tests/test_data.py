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
    assert header == ",".join(pn.csvio.csv_columns(d))
    back = pn.TrialData.from_csv(path)
    assert back == data
    np.testing.assert_array_equal(back.stimuli, s)  # bit for bit


def test_csv_header_for_2d():
    assert pn.csvio.csv_columns(2) == ["ref_x", "ref_y", "comparison_x", "comparison_y", "response"]


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
         "missing columns \\['comparison_x', 'comparison_y'\\] for the 2-D layout; the other "
         "columns \\['probe_x', 'probe_y'\\] would be kept as metadata"),
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


# --- lab-shaped CSV files: metadata, column mapping, response words, delimiters -------------
LAB = ("subject,session,ref_x,ref_y,comparison_x,comparison_y,response,rt,code\n"
       "s01,1,0.1,0.2,0.3,0.4,1,0.53,007\n"
       "s02,1,-0.1,0.0,0.2,0.1,0,,010\n"
       "s01,2,0.5,-0.5,0.4,-0.4,1,0.61,011\n")


def _write(tmp_path, body, name="lab.csv"):
    path = tmp_path / name
    path.write_text(body)
    return path


def test_extra_columns_are_kept_as_metadata(tmp_path):
    data = pn.TrialData.from_csv(_write(tmp_path, LAB))
    assert list(data.metadata) == ["subject", "session", "rt", "code"]
    np.testing.assert_array_equal(data.metadata["subject"], ["s01", "s02", "s01"])
    assert data.metadata["session"].dtype == np.int64
    np.testing.assert_array_equal(data.metadata["rt"], [0.53, np.nan, 0.61])  # empty: NaN
    np.testing.assert_array_equal(data.metadata["code"], ["007", "010", "011"])  # codes: text
    np.testing.assert_array_equal(data.responses, [1, 0, 1])
    assert "metadata=['subject', 'session', 'rt', 'code']" in repr(data)


def test_metadata_survives_slicing_equality_concatenation_and_csv(tmp_path):
    data = pn.TrialData.from_csv(_write(tmp_path, LAB))
    np.testing.assert_array_equal(data[[2, 0]].metadata["session"], [2, 1])
    np.testing.assert_array_equal(data[data.responses == 1].metadata["subject"], ["s01", "s01"])
    assert data[1:].metadata["rt"].shape == (2,) and data[0].metadata["code"][0] == "007"
    other = pn.TrialData(data.stimuli, data.responses,
                         metadata={**data.metadata, "session": [1, 1, 3]})
    assert data != other and data != pn.TrialData(data.stimuli, data.responses)
    both = pn.TrialData.concatenate([data[:1], data[1:]])
    assert both == data
    with pytest.raises(ValueError, match=r"data set 1 has metadata columns \[\]"):
        pn.TrialData.concatenate([data, pn.TrialData(data.stimuli, data.responses)])
    path = tmp_path / "back.csv"
    data.to_csv(path)
    assert path.read_text().splitlines()[0].endswith("response,subject,session,rt,code")
    back = pn.TrialData.from_csv(path)
    assert back == data and back.metadata["session"].dtype == np.int64


def test_split_by_a_column_feeds_many_observer_fits(tmp_path):
    data = pn.TrialData.from_csv(_write(tmp_path, LAB))
    parts = data.split("subject")
    assert list(parts) == ["s01", "s02"]
    assert [len(p) for p in parts.values()] == [2, 1]
    np.testing.assert_array_equal(parts["s01"].metadata["session"], [1, 2])
    assert list(data.split("session")) == [1, 2]
    assert pn.TrialData.concatenate(parts.values()) == data[[0, 2, 1]]
    with pytest.raises(ValueError, match="no metadata column 'block'.*'subject', 'session'"):
        data.split("block")
    with pytest.raises(ValueError, match="'rt' has 1 missing values"):
        data.split("rt")


def test_columns_mapping_renames_and_names_missing_columns(tmp_path):
    body = "x0,y0,x1,y1,correct,subject\n0.1,0.2,0.3,0.4,1,a\n0.0,0.0,0.1,0.1,0,b\n"
    path = _write(tmp_path, body)
    cols = {"ref_x": "x0", "ref_y": "y0", "comparison_x": "x1", "comparison_y": "y1",
            "response": "correct"}
    data = pn.TrialData.from_csv(path, columns=cols)
    np.testing.assert_array_equal(data.comparison, [[0.3, 0.4], [0.1, 0.1]])
    assert list(data.metadata) == ["subject"]
    with pytest.raises(ValueError, match="columns maps 'response' to 'answer', but the header "
                                         r"\(file line 1\) has no column 'answer' \(it has x0,"):
        pn.TrialData.from_csv(path, columns={**cols, "response": "answer"})
    with pytest.raises(ValueError, match="'reference_x' is not a library column"):
        pn.TrialData.from_csv(path, columns={"reference_x": "x0"})
    with pytest.raises(ValueError, match="maps both 'ref_x' and 'ref_y' to the file's column"):
        pn.TrialData.from_csv(path, columns={"ref_x": "x0", "ref_y": "x0"})
    with pytest.raises(TypeError, match="columns must be a dict"):
        pn.TrialData.from_csv(path, columns=["x0"])
    # unmapped, the same file names what is missing and how to map it
    with pytest.raises(ValueError, match=r"missing columns \['ref_x', 'comparison_x', 'response'\]"
                                         r".*columns=\{'ref_x': '<your column>'"):
        pn.TrialData.from_csv(path)
    # row errors name the file's column and the library's
    bad = _write(tmp_path, "x0,x1,correct\n2.0,0.1,1\n", "bad.csv")
    with pytest.raises(ValueError, match=r"row 1, column 'x0' \(ref_x\) = 2 is outside"):
        pn.TrialData.from_csv(bad, columns={"ref_x": "x0", "comparison_x": "x1",
                                            "response": "correct"})
    # a file column named like a mapped library column is ambiguous
    clash = _write(tmp_path, "x0,ref_x,comparison_x,response\n0,0,0,1\n", "clash.csv")
    with pytest.raises(ValueError, match="has a column 'ref_x' and columns maps 'ref_x' to 'x0'"):
        pn.TrialData.from_csv(clash, columns={"ref_x": "x0"})


@pytest.mark.parametrize("word, value", [("true", 1), ("FALSE", 0), ("True", 1), ("false", 0),
                                         ("TRUE", 1), ("1.0", 1), (" 0 ", 0)])
def test_true_false_responses_in_any_case(tmp_path, word, value):
    path = _write(tmp_path, f"ref_x,comparison_x,response\n0.0,0.5,{word}\n")
    assert pn.TrialData.from_csv(path).responses.tolist() == [value]


def test_yes_no_responses_say_how_to_map_them(tmp_path):
    path = _write(tmp_path, "ref_x,comparison_x,answer\n0.0,0.5,no\n0.1,0.5,Yes\n")
    with pytest.raises(ValueError, match=r"row 1, column 'answer' \(response\): 'no' is not a "
                                         r"response; accepted are 0/1 and true/false .*"
                                         r"response_values=\{'yes': 1, 'no': 0\}") as err:
        pn.TrialData.from_csv(path, columns={"response": "answer"})
    assert str(err.value).startswith(f"{path}: ")
    data = pn.TrialData.from_csv(path, columns={"response": "answer"},
                                 response_values={"yes": 1, "NO": 0})
    assert data.responses.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"response_values\['yes'\] must be 0 or 1"):
        pn.TrialData.from_csv(path, response_values={"yes": 2})


@pytest.mark.parametrize("d", [1, 2, 3])
def test_missing_header_is_named_with_the_expected_header(tmp_path, d):
    row = ",".join(["0.1"] * (2 * d) + ["1"])
    path = _write(tmp_path, f"{row}\n{row}\n")
    with pytest.raises(ValueError, match="the header is missing: file line 1") as err:
        pn.TrialData.from_csv(path)
    assert ",".join(pn.csvio.csv_columns(d)) in str(err.value)


@pytest.mark.parametrize("delim", [",", ";", "\t"])
def test_delimiter_is_detected(tmp_path, delim):
    rows = [["subject", "ref_x", "ref_y", "comparison_x", "comparison_y", "response"],
            ["a b", "0.1", "0.2", "0.3", "0.4", "true"], ["c", "-0.5", "0", "0.25", "1", "0"]]
    path = _write(tmp_path, "".join(delim.join(r) + "\n" for r in rows))
    data = pn.TrialData.from_csv(path)
    np.testing.assert_array_equal(data.ref, [[0.1, 0.2], [-0.5, 0.0]])
    np.testing.assert_array_equal(data.metadata["subject"], ["a b", "c"])
    assert pn.TrialData.from_csv(path, delimiter=delim) == data


def test_semicolon_files_may_use_decimal_commas(tmp_path):
    path = _write(tmp_path, "ref_x;comparison_x;response;rt\n0,25;-0,5;1;0,61\n")
    data = pn.TrialData.from_csv(path)
    assert data.stimuli.tolist() == [[[0.25], [-0.5]]] and data.metadata["rt"].tolist() == [0.61]


def test_from_arrays_takes_metadata_and_checks_it():
    s, y = _stimuli(n=4)
    data = pn.TrialData.from_arrays(s[:, 0], s[:, 1], y,
                                    metadata={"subject": ["a", "a", "b", "b"],
                                              "rt": np.arange(4.0), "ok": [True] * 4})
    assert data.metadata["subject"].dtype.kind == "U" and data.metadata["ok"].dtype == bool
    assert list(data.split("subject")) == ["a", "b"]
    cases = [({"subject": ["a"]}, ValueError, r"metadata\['subject'\] has 1 values but there "
                                              "are 4 trials"),
             ({"subject": np.zeros((4, 2))}, ValueError, r"shape \(4,\), got shape \(4, 2\)"),
             ({"response": [1, 1, 1, 1]}, ValueError, "'response' is a data column"),
             ({1: [1, 1, 1, 1]}, TypeError, "metadata names must be strings"),
             ([1, 2, 3, 4], TypeError, "metadata must be a dict")]
    for meta, exc, match in cases:
        with pytest.raises(exc, match=match):
            pn.TrialData.from_arrays(s[:, 0], s[:, 1], y, metadata=meta)


def test_split_data_fit_as_many_observers(tmp_path):
    rng = np.random.default_rng(4)
    n = 40
    data = pn.TrialData(rng.uniform(-0.5, 0.5, (n, 2, 2)), rng.integers(0, 2, n),
                        metadata={"subject": np.repeat(["a", "b"], n // 2)})
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
    parts = data.split("subject")
    fits = pn.fit_map(list(parts.values()), model, steps=2, num_restarts=1, eval_samples=16,
                      progress=False)
    assert [f.data for f in fits] == list(parts.values())
