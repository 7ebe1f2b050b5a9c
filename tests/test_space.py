"""Stimulus spaces: lab units <-> the box, carried by data, fits, read-outs and files."""

import json
import warnings

import colour
import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro.space import StimulusSpace

CAL = {"primaries": [[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]],
       "luminances": [21.3, 71.5, 7.2], "gamma": 2.2}
LUT = {**CAL, "gamma": None, "lut": (np.linspace(0, 1, 17)[:, None] ** 2.4).repeat(3, 1)}

SPACES = {
    "box": lambda: StimulusSpace.box([0.24, 0.26], [0.38, 0.40]),
    "box_per_axis": lambda: StimulusSpace.box([0, -5, 10], [1, 5, 11], shape_preserving=False),
    "box_1d": lambda: StimulusSpace.box([400.0], [700.0], axis_labels=["wavelength"],
                                        units="nm"),
    "affine": lambda: StimulusSpace.affine([[2.0, 0.5], [-0.3, 1.5]], [0.1, -0.2]),
    "xy": lambda: StimulusSpace.colour("xy", [0.24, 0.26], [0.38, 0.40], Y=0.4),
    "xyY": lambda: StimulusSpace.colour("xyY", [0.2, 0.2, 0.1], [0.4, 0.4, 0.5]),
    "XYZ": lambda: StimulusSpace.colour("XYZ", [0.1, 0.1, 0.1], [0.5, 0.5, 0.5]),
    "Lab": lambda: StimulusSpace.colour("Lab", [40, -20, -20], [60, 20, 20], white="D50"),
    "Lab_2d": lambda: StimulusSpace.colour("CIELAB", [-20, -20], [20, 20], L=60),
    "Luv": lambda: StimulusSpace.colour("Luv", [40, -20, -20], [60, 20, 20]),
    "Luv_2d": lambda: StimulusSpace.colour("CIELUV", [-20, -20], [20, 20]),
    "LMS": lambda: StimulusSpace.colour("LMS", [0.1] * 3, [0.5] * 3, calibration=CAL),
    "DKL": lambda: StimulusSpace.colour("DKL", [-0.2, -0.05, -0.05], [0.2, 0.05, 0.05],
                                        calibration=CAL),
    "DKL_2d": lambda: StimulusSpace.colour("DKL", [-0.05, -0.05], [0.05, 0.05]),
    "RGB": lambda: StimulusSpace.colour("RGB", [0.2] * 3, [0.8] * 3, calibration=CAL),
    "RGB_lut": lambda: StimulusSpace.colour("RGB", [0.2] * 3, [0.8] * 3, calibration=LUT),
}


def _inside(space, n, seed=0):
    rng = np.random.default_rng(seed)
    d = space.input_dim
    if space.lo is not None:
        return space.lo + (space.hi - space.lo) * rng.random((n, d))
    return space.to_lab(rng.uniform(-1, 1, (n, d)))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_round_trips_lab_box_lab_and_descriptions(name, tmp_path):
    space = SPACES[name]()
    x = _inside(space, 200)
    m = space.to_model(x)
    assert np.all(np.abs(m) <= 1 + 1e-12)
    np.testing.assert_allclose(space.to_lab(m), x, rtol=0, atol=1e-9 * np.abs(x).max())
    # the Jacobian maps offsets and covariances
    J = space.jacobian
    np.testing.assert_allclose(J @ space.matrix, np.eye(space.input_dim), atol=1e-12)
    S = np.eye(space.input_dim) * 0.01
    np.testing.assert_allclose(space.covariance_to_model(space.covariance_to_lab(S)), S,
                               atol=1e-14)
    # dict, JSON file and pickle round trips give an equal space
    again = StimulusSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and hash(again) == hash(space) and repr(again) == repr(space)
    space.save(tmp_path / "s.json")
    assert StimulusSpace.from_file(tmp_path / "s.json") == space
    if space.is_colour:  # the space's own coordinates <-> XYZ through colour
        np.testing.assert_allclose(space.from_xyz(space.to_xyz(x)), x, atol=1e-9)


def test_box_shapes_preserved_or_per_axis():
    sp = StimulusSpace.box([0.24, 0.26], [0.38, 0.34])
    assert sp.matrix[0, 0] == sp.matrix[1, 1] == pytest.approx(2 / 0.14)
    np.testing.assert_allclose(sp.to_model([0.31, 0.30]), [0, 0], atol=1e-15)
    per = StimulusSpace.box([0.24, 0.26], [0.38, 0.34], shape_preserving=False)
    np.testing.assert_allclose(per.to_model([[0.24, 0.26], [0.38, 0.34]]), [[-1, -1], [1, 1]])
    assert sp != per


def test_colour_space_metadata_and_xyz_against_colour():
    sp = SPACES["xy"]()
    assert sp.axis_labels == ("CIE x", "CIE y") and "D65" in sp.units
    assert sp.colour_info["white"] == pytest.approx(
        colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])
    np.testing.assert_allclose(sp.to_xyz([0.31, 0.33]), colour.xyY_to_XYZ([0.31, 0.33, 0.4]))
    lab = SPACES["Lab"]()
    assert lab.axis_labels == ("L*", "a*", "b*")
    assert SPACES["Lab_2d"]().axis_labels == ("a*", "b*")
    rgb = SPACES["RGB"]()
    white = rgb.to_xyz([1.0, 1.0, 1.0])
    assert white[1] == pytest.approx(1.0)  # XYZ relative to the monitor white
    np.testing.assert_allclose(rgb.colour_info["white"], colour.XYZ_to_xy(white))
    np.testing.assert_allclose(SPACES["LMS"]().from_rgb([0.5, 0.5, 0.5]),
                               colour.CHROMATIC_ADAPTATION_TRANSFORMS["Von Kries"]
                               @ rgb.to_xyz([0.5, 0.5, 0.5]))


def test_from_file_toml_and_bad_descriptions(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text('kind = "colour"\nname = "xy"\nlo = [0.24, 0.26]\nhi = [0.38, 0.40]\n'
                 'white = "D65"\nY = 0.5\n')
    assert StimulusSpace.from_file(p) == StimulusSpace.colour("xy", [0.24, 0.26],
                                                              [0.38, 0.40], Y=0.5)
    p.write_text("lo = [0, 0]\nhi = [2, 1]\n")
    assert StimulusSpace.from_file(p) == StimulusSpace.box([0, 0], [2, 1])
    with pytest.raises(ValueError, match="unknown colour space"):
        StimulusSpace.colour("HSV", [0, 0], [1, 1])
    with pytest.raises(ValueError, match="needs a monitor calibration"):
        StimulusSpace.colour("RGB", [0] * 3, [1] * 3)
    with pytest.raises(ValueError, match="hi must exceed lo"):
        StimulusSpace.box([0, 1], [1, 1])
    with pytest.raises(ValueError, match="invertible"):
        StimulusSpace.affine([[1, 2], [2, 4]])
    with pytest.raises(AttributeError, match="immutable"):
        StimulusSpace.box([0], [1]).name = "x"


def test_outside_the_domain_is_an_error_naming_row_and_units(tmp_path):
    sp = SPACES["xy"]()
    ref = np.array([[0.30, 0.30], [0.31, 0.45]])
    with pytest.raises(ValueError, match=r"trial 1 \(reference, coordinate 1\) \(CIE y\) = "
                                         r"0\.45.*\[0\.26, 0\.4\] on 'CIE y'"):
        pn.TrialData.from_arrays(ref, ref, [1, 0], space=sp)
    (tmp_path / "t.csv").write_text("ref_x,ref_y,comparison_x,comparison_y,response\n"
                                    "0.3,0.3,0.31,0.3,1\n0.3,0.3,0.5,0.3,0\n")
    with pytest.raises(ValueError, match=r"t.csv: .*row 2, column 'comparison_x'.*CIE x"):
        pn.TrialData.from_csv(tmp_path / "t.csv", space=sp)
    # tolerance: float round-off at the bounds is accepted
    pn.TrialData.from_arrays([[0.38 + 1e-12, 0.26]], [[0.38, 0.26]], [1], space=sp)


def test_one_domain_tolerance_for_the_box_and_the_spaces():
    """The round-off slack of every domain check is spacecheck's SPACE_TOL (validation,
    the CSV reader, the MOCS design and the psychometric curve import it)."""
    from psyphy_numpyro import csvio, mocs_design, psychometric_curve, spacecheck, validation

    for mod in (validation, csvio, mocs_design, psychometric_curve, pn.space):
        assert mod.SPACE_TOL is spacecheck.SPACE_TOL, mod.__name__
    assert not hasattr(validation, "DOMAIN_TOL")
    tol = spacecheck.SPACE_TOL
    validation.check_points(np.array([[1 + tol / 2, -1 - tol / 2]]), 2)
    with pytest.raises(pn.errors.InvalidInput, match="outside the domain"):
        validation.check_points(np.array([[1 + 2 * tol, 0.0]]), 2)


def test_trial_data_carries_the_space(tmp_path):
    sp = SPACES["xy"]()
    x = _inside(sp, 12).reshape(6, 2, 2)
    data = pn.TrialData(x, [1, 0, 1, 1, 0, 1], metadata={"s": list("aabbab")}, space=sp)
    np.testing.assert_array_equal(data.stimuli, x)
    np.testing.assert_allclose(data.model_stimuli, sp.to_model(x))
    assert data[1:3].space == sp and data.split("s")["a"].space == sp
    assert pn.TrialData.concatenate([data, data]).space == sp
    assert pn.TrialData(data).space == sp
    assert "xy" in repr(data)
    plain = pn.TrialData(data.model_stimuli, data.responses, metadata=data.metadata)
    assert plain.model_stimuli is plain.stimuli and data.in_model_units() == plain
    with pytest.raises(ValueError, match="same stimulus space"):
        pn.TrialData.concatenate([data, plain])
    # CSV: lab units in the file, the space in a sidecar; files without one unchanged
    data.to_csv(tmp_path / "d.csv")
    assert (tmp_path / "d.csv.space.json").exists()
    assert "0.3" in (tmp_path / "d.csv").read_text()
    back = pn.TrialData.from_csv(tmp_path / "d.csv")
    assert back == data and back.space == sp
    plain.to_csv(tmp_path / "d.csv")
    assert not (tmp_path / "d.csv.space.json").exists()
    assert pn.TrialData.from_csv(tmp_path / "d.csv").space is None
    sp.save(tmp_path / "sp.json")  # space given as a file
    data.to_csv(tmp_path / "e.csv")
    assert pn.TrialData.from_csv(tmp_path / "e.csv", space=tmp_path / "sp.json") == data


def _xy_data(n=240, seed=0, lo=(0.24, 0.26), hi=(0.38, 0.40)):
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(lo), np.asarray(hi)
    ref = lo + 0.2 * (hi - lo) + 0.6 * (hi - lo) * rng.random((n, 2))
    a = rng.uniform(0, 2 * np.pi, n)
    r = rng.uniform(0.002, 0.02, n)
    comp = ref + r[:, None] * np.column_stack([np.cos(a), np.sin(a)])
    y = (rng.random(n) < 1 / 3 + 0.6 * (r > 0.008)).astype(int)
    return ref, comp, y


def test_small_box_warning_fires_on_xy_like_data_only():
    ref, comp, y = _xy_data(60)
    from psyphy_numpyro.rangecheck import warn_small_range

    data = pn.TrialData.from_arrays(ref, comp, y)
    with pytest.warns(UserWarning, match=r"fill less than a quarter.*axis 0: \[0\.2.*"
                                         r"StimulusSpace\.box\(lo=\[0\.2"):
        warn_small_range(data)
    rng = np.random.default_rng(1)
    full = pn.TrialData(rng.uniform(-0.9, 0.9, (60, 2, 2)), y)
    spaced = pn.TrialData.from_arrays(ref, comp, y, space=SPACES["xy"]())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_small_range(full)
        warn_small_range(spaced)


@pytest.fixture(scope="module")
def xy_fits():
    sp = StimulusSpace.colour("xy", [0.24, 0.26], [0.38, 0.40], Y=0.4)
    ref, comp, y = _xy_data()
    data = pn.TrialData.from_arrays(ref, comp, y, space=sp)
    hand = pn.TrialData.from_arrays(sp.to_model(ref), sp.to_model(comp), y)
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
    kw = dict(steps=15, num_restarts=1, seed=0, progress=False)
    return sp, pn.fit_map(data, model, **kw), pn.fit_map(hand, model, **kw)


def test_fit_in_a_space_equals_the_fit_of_rescaled_data(xy_fits):
    sp, fit, hand = xy_fits
    np.testing.assert_array_equal(fit.params["W"], hand.params["W"])
    assert fit.data.space == sp
    refs = np.array([[0.31, 0.33], [0.27, 0.37]])
    th = pn.thresholds(fit, refs, num_samples=64)
    th_box = pn.thresholds(hand, sp.to_model(refs), num_samples=64)
    assert th.space == sp and th_box.space is None
    np.testing.assert_array_equal(th.refs, refs)
    # ellipses mapped back exactly by the Jacobian, points by the affine map
    np.testing.assert_allclose(th.ellipses, sp.covariance_to_lab(th_box.ellipses), rtol=1e-12)
    # (to float32 round-off: the box-unit thresholds hold float32 references)
    np.testing.assert_allclose(th.points, sp.to_lab(th_box.points), rtol=0, atol=1e-8)
    # shape-preserving: lengths are the box lengths times one scale
    np.testing.assert_allclose(th.lengths, th_box.lengths * 0.07, rtol=1e-6)
    # the lab-unit ellipse is the least-squares ellipse through the lab-unit points
    np.testing.assert_allclose(
        pn.fit_ellipse(th.points - refs[:, None]), th.ellipses, rtol=1e-4)
    p = pn.psychometric(fit, refs[0], [1, 1], [0.002, 0.01], num_samples=64)
    p_box = pn.psychometric(hand, sp.to_model(refs[0]), [1, 1],
                            np.array([0.002, 0.01]) / 0.07, num_samples=64)
    np.testing.assert_allclose(p, p_box, rtol=1e-6)
    with pytest.raises(ValueError, match="outside the stimulus space"):
        pn.thresholds(fit, [[0.5, 0.33]])


def test_delta_e_of_a_threshold_is_colour_delta_e_of_its_endpoints(xy_fits):
    sp, fit, _ = xy_fits
    refs = np.array([[0.31, 0.33]])
    th = pn.thresholds(fit, refs, num_directions=8, num_samples=64)
    for method in ("CIE 1976", "CIE 1994", "CIE 2000"):
        de = th.delta_e(method)
        want = colour.delta_E(colour.XYZ_to_Lab(colour.xyY_to_XYZ([0.31, 0.33, 0.4]),
                                                sp.colour_info["white"]),
                              colour.XYZ_to_Lab(colour.xyY_to_XYZ(
                                  np.column_stack([th.points[0], np.full(8, 0.4)])),
                                  sp.colour_info["white"]), method=method)
        np.testing.assert_allclose(de[0], want, rtol=1e-10)
    with pytest.raises(ValueError, match="colour space"):
        pn.thresholds(xy_fits[2], sp.to_model(refs), num_samples=64).delta_e()


def test_the_space_survives_saving_and_loading_a_fit(xy_fits, tmp_path):
    sp, fit, _ = xy_fits
    fit.save(tmp_path / "fit.nc")
    back = pn.load_fit(tmp_path / "fit.nc")
    assert back.data.space == sp and back.data == fit.data
    refs = [[0.31, 0.33]]
    np.testing.assert_allclose(pn.thresholds(back, refs, num_samples=64).ellipses,
                               pn.thresholds(fit, refs, num_samples=64).ellipses, rtol=1e-6)


def test_plots_are_drawn_in_the_space_units(xy_fits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psyphy_numpyro.plotting import plot_fit, plot_thresholds, plot_trials

    sp, fit, _ = xy_fits
    fig = plot_fit(fit, points_per_axis=3)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("CIE x", "CIE y")
    assert ax.get_xlim() == pytest.approx((0.24, 0.38))
    plt.close(fig)
    fig, ax = plt.subplots()
    th = pn.thresholds(fit, [[0.31, 0.33]], num_directions=8, num_samples=64)
    plot_thresholds(th, ax=ax)
    plot_trials(fit.data, ax=ax)
    assert ax.get_xlabel() == "CIE x"
    x = np.concatenate([line.get_xdata() for line in ax.get_lines()])
    assert 0.25 < np.nanmin(x) and np.nanmax(x) < 0.37  # drawn in xy, not in the box
    plt.close(fig)


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_per_axis_space_and_laplace_fit_map_back_exactly():
    sp = StimulusSpace.box([0.24, 0.26], [0.38, 0.34], shape_preserving=False)
    ref, comp, y = _xy_data(160, seed=3, hi=(0.38, 0.34))
    data = pn.TrialData.from_arrays(ref, comp, y, space=sp)
    hand = pn.TrialData.from_arrays(sp.to_model(ref), sp.to_model(comp), y)
    model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=8)
    kw = dict(steps=10, num_restarts=1, seed=0, progress=False)
    fit = pn.fit_laplace(data, model, init=pn.fit_map(data, model, **kw), num_draws=50, seed=0)
    fit_box = pn.fit_laplace(hand, model, init=pn.fit_map(hand, model, **kw), num_draws=50,
                             seed=0)
    assert fit.data.space == sp
    refs = np.array([[0.30, 0.30]])
    th = pn.thresholds(fit, refs, num_directions=8, num_samples=32, num_draws=5)
    # the same rays in the box: the lab's evenly spread directions, mapped
    dirs = sp.vectors_to_model(pn.readout.unit_directions(2, 8))
    th_box = pn.thresholds(fit_box, sp.to_model(refs), directions=dirs, num_samples=32,
                           num_draws=5)
    np.testing.assert_allclose(th.ellipses, sp.covariance_to_lab(th_box.ellipses), rtol=1e-9)
    stretch = np.linalg.norm(dirs, axis=1)
    np.testing.assert_allclose(th.lengths, th_box.lengths / stretch, rtol=1e-9)
    assert th.has_draws and th.median.shape == (1, 8)


def test_a_ground_truth_pair_reads_out_in_a_given_space():
    import jax

    sp = StimulusSpace.colour("Lab", [-20, -20], [20, 20], L=60)
    model = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)
    params = model.sample_prior(jax.random.PRNGKey(0))
    refs = np.array([[0.0, 0.0], [5.0, -8.0]])
    th = pn.thresholds((model, params), refs, num_directions=8, num_samples=64, space=sp)
    th_box = pn.thresholds((model, params), sp.to_model(refs), num_directions=8,
                           num_samples=64)
    np.testing.assert_allclose(th.ellipses, sp.covariance_to_lab(th_box.ellipses), rtol=1e-9)
    de76 = th.delta_e("CIE 1976")  # a*b* at fixed L*: ΔE76 is the Euclidean length
    np.testing.assert_allclose(de76, th.lengths, rtol=1e-9)


def test_plot_fit_3d_slices_in_the_space():
    """3-D fits in a space: slices through the space's centre, axes in its units."""
    import matplotlib

    matplotlib.use("Agg")
    from psyphy_numpyro.plotting import plot_fit

    model = pn.WPPM(input_dim=3, basis_degree=1)
    space = pn.StimulusSpace.colour("Lab", lo=[40, -20, -20], hi=[60, 20, 20])
    data = pn.TrialData(space.to_lab(np.full((2, 2, 3), 0.1)), np.ones(2, np.int32), space=space)
    fit = pn.MAPFit.from_params(model, model.sample_prior(0), data)
    fig = plot_fit(fit)
    axes = fig.axes[:3]
    assert [a.get_xlabel() for a in axes] == ["L*", "L*", "a*"]
    assert [a.get_ylabel() for a in axes] == ["a*", "b*", "b*"]
    assert axes[0].get_xlim() == (40.0, 60.0) and axes[2].get_title() == "slice L* = 50"
    with pytest.raises(ValueError, match="space's bounds"):
        plot_fit(fit, through=[0.0, 0.0, 0.0])
