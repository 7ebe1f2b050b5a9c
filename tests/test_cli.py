"""The psyphy-numpyro command line: fit -> summary -> thresholds, and one-line errors."""

import contextlib
import csv
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import psyphy_numpyro as pn
from psyphy_numpyro import cli
from psyphy_numpyro.arviz_io import default_grid

# "reparam" compiles several times faster than the default "cv" estimator
MODEL = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
PREFIX = "psyphy-numpyro: error:"


def _run(*args, cwd):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CI": "1"}
    return subprocess.run([sys.executable, "-m", "psyphy_numpyro", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A trials CSV and a MAP fit made from it by ``psyphy-numpyro fit``."""
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    ref = rng.uniform(-0.9, 0.9, (200, 2))
    comp = np.clip(ref + rng.normal(0.0, 0.15, ref.shape), -1.0, 1.0)
    dist = np.linalg.norm(comp - ref, axis=1)
    p = 1 / 3 + (2 / 3) * (1 - np.exp(-((dist / 0.12) ** 2)))  # a plausible observer
    data = pn.TrialData.from_arrays(ref, comp, rng.uniform(size=200) < p)
    data.to_csv(tmp / "trials.csv")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # in-process: shares compiled programs
        code = cli.main([str(a) for a in (
            "fit", tmp / "trials.csv", "--method", "map", "--steps", "30", "--restarts", "1",
            "--basis-degree", "1", "--num-samples", "16", "--estimator", "reparam",
            "--no-progress", "--out", tmp / "fit.nc", "--plot", tmp / "field.png")])
    return tmp, data, (code, out.getvalue())


def test_fit_summary_thresholds(workdir):
    tmp, data, (code, stdout) = workdir
    assert code == 0
    assert f"saved {tmp / 'fit.nc'}" in stdout and "200 trials (2-D)" in stdout
    assert (tmp / "field.png").stat().st_size > 1000
    fit = pn.load_fit(tmp / "fit.nc")
    assert isinstance(fit, pn.MAPFit)
    assert fit.data == data  # the CSV round trip is exact
    # variance_scale and diag_term were not given: chosen from the data, and reported
    assert fit.model == pn.WPPM.for_data(data, basis_degree=1, num_samples=16,
                                         estimator="reparam")
    assert fit.model.replace(variance_scale=MODEL.variance_scale,
                             diag_term=MODEL.diag_term) == MODEL
    assert fit.hyperparameters["variance_scale"] == fit.model.variance_scale
    assert "hyperparameters from the data" in stdout
    assert fit.loss_history.shape == (30,)

    res = _run("summary", "fit.nc", cwd=tmp)  # the installed entry point, in a subprocess
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "kind: map" in out and "trials: 200 (2-D)" in out and "basis_degree=1" in out
    loss = float(fit.restart_losses[fit.best_restart])
    assert f"final loss: {loss:.6g}" in out

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([str(a) for a in (
            "thresholds", tmp / "fit.nc", "--refs", "grid", "--points-per-axis", "2",
            "--num-directions", "8", "--target", "0.6", "--out", tmp / "th.csv",
            "--plot", tmp / "th.png")])
    assert code == 0
    assert f"written to {tmp / 'th.csv'}" in out.getvalue()
    assert (tmp / "th.png").stat().st_size > 1000
    with open(tmp / "th.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[:8] == ["ref_x", "ref_y", "E_xx", "E_xy", "E_yy", "semi_major", "semi_minor",
                          "angle_deg"]
    values = np.array(rows[1:], dtype=float)
    refs = default_grid(2, 2)
    np.testing.assert_array_equal(values[:, :2], refs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        th = pn.thresholds(fit, refs, target=0.6, num_directions=8)
    E = th.ellipses
    np.testing.assert_allclose(values[:, 2:5], np.stack([E[:, 0, 0], E[:, 0, 1], E[:, 1, 1]], 1),
                               rtol=1e-6)
    lam = np.linalg.eigvalsh(E)
    np.testing.assert_allclose(values[:, 5], np.sqrt(lam[:, 1]), rtol=1e-5)
    np.testing.assert_allclose(values[:, 6], np.sqrt(lam[:, 0]), rtol=1e-5)
    np.testing.assert_array_equal(values[:, -1], np.isnan(th.lengths).sum(1))


def test_errors_are_one_line_with_exit_code_2(workdir):
    tmp, _, _ = workdir
    res = _run("summary", "no_such_fit.nc", cwd=tmp)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and "no_such_fit.nc" in lines[0]
    bad = tmp / "bad.csv"
    bad.write_text("ref_x,ref_y,comparison_x,comparison_y,response\n"
                   "0.1,0.2,0.3,0.4,1\n0.1,zero,0.3,0.4,0\n")
    res = _run("fit", "bad.csv", "--out", "bad.nc", cwd=tmp)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), res.stderr
    assert "bad.csv: row 2, column 'ref_y'" in lines[0]
    assert not (tmp / "bad.nc").exists()


def _main(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_in_process_errors(workdir, capsys):
    tmp, _, _ = workdir
    fit = tmp / "fit.nc"
    cases = [
        (["summary", tmp / "trials.csv"], "trials.csv: not a NetCDF fit file"),
        (["thresholds", fit, "--target", "2"], "target must be in"),
        (["thresholds", fit, "--refs", tmp / "nope.csv"], "nope.csv: no such file"),
        (["thresholds", fit, "--out", tmp / "missing_dir" / "t.csv"], "missing_dir"),
        (["fit", tmp / "trials.csv", "--out", tmp / "x.nc", "--input-dim", "3"],
         "--input-dim 3 does not match"),
        (["fit", tmp / "trials.csv", "--out", tmp / "x.nc", "--steps", "0"],
         "steps must be >= 1"),
        (["fit", tmp / "trials.csv", "--out", tmp / "x.nc", "--plot", tmp / "f.jpg"],
         "f.jpg: figures are written as .png, .pdf, .svg"),
        (["fit", tmp / "trials.csv", "--out", tmp / "x.nc", "--lapse-rate", "0.7"],
         "lapse_rate must be in [0, 0.5), got 0.7"),
    ]
    for args, message in cases:
        code, out, err = _main(capsys, *args)
        assert code == 2, (args, err)
        assert err.startswith(PREFIX) and err.count("\n") == 1 and message in err, (args, err)
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", str(tmp / "trials.csv"), "--out", "x.nc", "--method", "svi"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit", str(tmp / "trials.csv"), "--out", "x.nc", "--lapse-rate", "often"])
    assert exc.value.code == 2
    assert "expected a number in [0, 0.5) or 'learn', got 'often'" in capsys.readouterr().err


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_fit_learns_the_lapse_rate(workdir, capsys):
    tmp, data, _ = workdir
    code, out, err = _main(capsys, "fit", tmp / "trials.csv", "--method", "map", "--steps", "30",
                           "--restarts", "1", "--basis-degree", "1", "--num-samples", "16",
                           "--estimator", "reparam", "--lapse-rate", "learn", "--no-progress",
                           "--out", tmp / "lapse.nc")
    assert code == 0, err
    fit = pn.load_fit(tmp / "lapse.nc")
    assert fit.model.lapse_rate == "learn" and fit.model.learns_lapse
    assert 0.0 < fit.lapse_rate < 0.5
    assert f"MAP lapse rate: {fit.lapse_rate:.4g} (prior Beta(2.0, 50.0))" in out
    code, out, err = _main(capsys, "fit", tmp / "trials.csv", "--method", "map", "--steps", "5",
                           "--restarts", "1", "--basis-degree", "1", "--num-samples", "16",
                           "--estimator", "reparam", "--lapse-rate", "0.04", "--no-progress",
                           "--out", tmp / "fixed.nc")
    assert code == 0, err
    assert pn.load_fit(tmp / "fixed.nc").model.lapse_rate == 0.04 and "lapse rate" not in out


def test_posterior_fit_summary_and_thresholds(workdir, capsys):
    tmp, _, _ = workdir
    fit = pn.load_fit(tmp / "fit.nc")
    # a LaplaceFit built by hand (fit_laplace is tested elsewhere): draws around the MAP
    W = np.asarray(fit.params["W"])
    sd = 0.2 * fit.model.prior_std()
    noise = np.random.default_rng(1).standard_normal((1, 20) + W.shape)
    post = pn.LaplaceFit(model=fit.model, data=fit.data, draws=(W + sd * noise).astype(W.dtype),
                         map_fit=fit, mean=W, cov=np.diag(sd.ravel() ** 2))
    post.save(tmp / "laplace.nc", log_likelihood=False)
    code, out, err = _main(capsys, "summary", tmp / "laplace.nc")
    assert code == 0, err
    assert "kind: laplace" in out and "1 chain(s) x 20 draws" in out
    assert "Sigma[0, xx]" in out and "grid_x" in out
    # one chain: no r_hat (NaN) column and no ArviZ shape-validation warning
    assert "r_hat" not in out and "Shape validation" not in out + err

    refs = tmp / "refs.csv"
    refs.write_text("ref_y,ref_x\n0.5,-0.25\n0.0,0.0\n")
    code, out, err = _main(capsys, "thresholds", tmp / "laplace.nc", "--refs", refs,
                           "--num-directions", "8", "--level", "0.8")
    assert code == 0, err
    lines = out.strip().splitlines()
    names = lines[0].split(",")
    assert names[-5:] == ["semi_major_lo", "semi_major_hi", "semi_minor_lo", "semi_minor_hi",
                          "missing_rays"]
    values = np.array([line.split(",") for line in lines[1:]], dtype=float)
    np.testing.assert_array_equal(values[:, :2], [[-0.25, 0.5], [0.0, 0.0]])
    for q in ("semi_major", "semi_minor"):
        lo, hi = values[:, names.index(f"{q}_lo")], values[:, names.index(f"{q}_hi")]
        ok = np.isfinite(lo) & np.isfinite(hi)
        assert ok.any() and np.all(lo[ok] <= hi[ok])


def test_threshold_plot_3d_and_2d_states_its_scale(tmp_path, monkeypatch):
    """The thresholds --plot figure: slices in 3-D, no overlap at a stated scale, closed."""
    import matplotlib.pyplot as plt

    from psyphy_numpyro.cli import commands
    from psyphy_numpyro.contours import Thresholds, unit_directions

    shown = []
    close = plt.close
    monkeypatch.setattr(plt, "close", shown.append)  # keep the CLI's figure to inspect it
    for d in (2, 3):
        refs = default_grid(d, 3)
        u = unit_directions(d, 8)
        lengths = np.full((len(refs), len(u)), 0.5)  # circles of radius 0.5: would overlap
        th = Thresholds(refs=refs, directions=u, lengths=lengths,
                        points=refs[:, None] + 0.5 * u, ellipses=np.broadcast_to(
                            0.25 * np.eye(d), (len(refs), d, d)), max_lengths=lengths)
        commands._plot_thresholds(th, 2 / 3, "map", tmp_path / f"th{d}.png")
        fig = shown[-1]
        axes = fig.axes
        assert len(axes) == (3 if d == 3 else 1)
        for ax in axes:
            assert ax.get_xlabel().startswith("stimulus") and ax.get_ylabel()
            widths = [np.ptp(line.get_xdata()) for line in ax.lines]
            assert widths and max(widths) <= 0.8 * 0.8 + 1e-9  # 0.4 x the 0.8 spacing, twice
            assert {line.get_color() for line in ax.lines} == {"#0072B2"}
        legend = fig.legends[0] if d == 3 else axes[0].get_legend()
        title = " ".join(legend.get_title().get_text().split())
        assert "ellipses: 66.7%-correct thresholds, drawn at 0.64 x true size" in title
        assert (tmp_path / f"th{d}.png").read_bytes()[:4] == b"\x89PNG"
        close(fig)


@pytest.mark.slow
def test_3d_fit_and_threshold_plots(tmp_path, capsys):
    """--plot draws 3-D fits and thresholds as three labelled slices (PNG and PDF)."""
    import matplotlib.pyplot as plt

    from psyphy_numpyro.cli.commands import _plot_field

    model = pn.WPPM(input_dim=3, basis_degree=1, num_samples=16, estimator="reparam",
                    variance_scale=2e-3)
    W = np.asarray(model.sample_prior(3)["W"])
    rng = np.random.default_rng(0)
    ref = rng.uniform(-0.5, 0.5, (20, 3))
    data = pn.TrialData.from_arrays(ref, ref + 0.05, rng.uniform(size=20) < 0.7)
    fit = pn.MAPFit.from_params(model, {"W": W}, data)
    fit.save(tmp_path / "fit3.nc")
    _plot_field(fit, tmp_path / "field3.pdf")
    assert (tmp_path / "field3.pdf").read_bytes()[:5] == b"%PDF-"
    code, out, err = _main(capsys, "thresholds", tmp_path / "fit3.nc", "--points-per-axis", "2",
                           "--num-directions", "6", "--num-samples", "64", "--out",
                           tmp_path / "th3.csv", "--plot", tmp_path / "th3.png")
    assert code == 0, err
    assert f"plotted {tmp_path / 'th3.png'}" in out
    assert (tmp_path / "th3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # the CLI closes its figures


def test_an_internal_bug_is_not_reported_as_bad_input(workdir, monkeypatch):
    """Only the package's own errors (and OS errors) become one-line messages; a plain
    ValueError from inside a command is a bug and propagates with its traceback."""
    from psyphy_numpyro.cli import commands

    tmp, _, _ = workdir

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(commands, "_load", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["summary", str(tmp / "fit.nc")])
    monkeypatch.setattr(commands, "_load", lambda path: (_ for _ in ()).throw(
        pn.errors.InvalidInput(f"{path}: a package error")))
    assert cli.main(["summary", str(tmp / "fit.nc")]) == 2


def test_read_points(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("subject,ref_y,ref_x\n7,0.5,-0.25\n8,0.0,0.0\n")
    np.testing.assert_array_equal(pn.data.read_points(f, 2), [[-0.25, 0.5], [0.0, 0.0]])
    f.write_text("0.1,0.2\n0.3,-0.4\n")
    np.testing.assert_array_equal(pn.data.read_points(f, 2), [[0.1, 0.2], [0.3, -0.4]])
    cases = [
        ("", "no reference points"),
        ("a,b,c\n0.1,0.2,0.3\n", "header 'a,b,c' needs columns ref_x,ref_y (or x,y)"),
        ("x,y\n0.1,0.2\n0.3\n", "row 2 has 1 fields, expected 2"),
        ("x,y\n0.1,zero\n", "row 1, column 'y': 'zero' is not a number"),
        ("x,y\n0.1,1.5\n", "row 1, column 'y' = '1.5' is outside [-1, 1]"),
    ]
    for text, message in cases:
        f.write_text(text)
        with pytest.raises(ValueError) as info:
            pn.data.read_points(f, 2)
        assert isinstance(info.value, pn.errors.InvalidInput)
        assert message in str(info.value) and "p.csv" in str(info.value), str(info.value)
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        pn.data.read_points(tmp_path / "nope.csv", 2)


_X64_SCRIPT = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import psyphy_numpyro as pn
from psyphy_numpyro import cli
trials, path = sys.argv[1:]
model = pn.WPPM(input_dim=2, basis_degree=1, num_samples=16, estimator="reparam")
fit = pn.fit_map(pn.TrialData.from_csv(trials), model, steps=30, num_restarts=1, progress=False)
assert np.asarray(fit.params["W"]).dtype == np.float64
fit.save(path)
jax.config.update("jax_enable_x64", False)  # as a fresh CLI process starts
code = cli.main(["summary", path])
print("code", code, "x64", jax.config.jax_enable_x64)
"""


@pytest.mark.slow  # moved to the slow tier to keep `make test` short; CI runs both
def test_cli_switches_to_float64_for_a_float64_fit(workdir, monkeypatch):
    """A format-2 fit file keeps W in unconstrained_posterior: the CLI reads its dtype there
    and switches JAX to float64, so a float64 fit's read-outs are reproduced exactly."""
    from psyphy_numpyro.cli import commands

    tmp, _, _ = workdir
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CI": "1"}
    res = subprocess.run([sys.executable, "-c", _X64_SCRIPT, str(tmp / "trials.csv"),
                          str(tmp / "fit64.nc")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert "code 0 x64 True" in res.stdout, res.stdout
    assert "saved in float64" not in res.stderr, res.stderr  # no float32 read-out warning

    # in this (float32) process: record the switch instead of making it
    import jax

    calls = []
    monkeypatch.setattr(jax.config, "update", lambda *a: calls.append(a))
    commands._enable_x64_for(str(tmp / "fit64.nc"))
    assert calls == [("jax_enable_x64", True)]
    calls.clear()
    commands._enable_x64_for(str(tmp / "fit.nc"))  # a float32 fit: no switch
    commands._enable_x64_for(str(tmp / "trials.csv"))  # not a fit file: load_fit reports it
    assert calls == []
    # format 1 kept W in posterior
    import h5netcdf

    with h5netcdf.File(tmp / "format1.nc", "w") as fh:
        group = fh.create_group("posterior")
        group.dimensions = {"chain": 1, "draw": 2}
        group.create_variable("W", ("chain", "draw"), data=np.zeros((1, 2)))
    assert commands._weights_dtype(str(tmp / "format1.nc")) == np.float64


def test_fit_passes_the_optimizer_route_to_fit_map(tmp_path, monkeypatch):
    """--optimizer adam|lbfgs reaches fit_map (without it, fit_map's own default)."""
    import functools

    from psyphy_numpyro import map_fit
    from psyphy_numpyro.cli import main

    model = pn.WPPM(input_dim=2, basis_degree=1)
    pn.simulate_experiment(model, model.sample_prior(0), 40, key=1).to_csv(tmp_path / "t.csv")
    seen = []

    @functools.wraps(map_fit.fit_map)  # the parser reads fit_map's defaults off its signature
    def stop(data, model, **kwargs):
        seen.append(kwargs.get("optimizer", "default"))
        raise KeyboardInterrupt  # nothing past the call is needed

    monkeypatch.setattr(map_fit, "fit_map", stop)
    for extra in (["--optimizer", "adam"], ["--optimizer", "lbfgs"], []):
        with pytest.raises(KeyboardInterrupt):
            main(["fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "f.nc"), "--no-progress",
                  *extra])
    assert seen == ["adam", "lbfgs", "default"]
    with pytest.raises(SystemExit) as err:
        main(["fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "f.nc"), "--optimizer",
              "sgd"])
    assert err.value.code == 2


def test_fit_reads_a_lab_csv_with_columns_and_response_values(workdir, capsys):
    """--columns and --response-values: the CSV of the workdir with the lab's own column names
    and yes/no responses fits to the same data (same shapes: programs already compiled)."""
    tmp, data, _ = workdir
    lab = tmp / "lab.csv"
    rows = ["rx,ry,cx,cy,answer,subject"]
    for (r, c), y in zip(data.stimuli.tolist(), data.responses, strict=True):
        rows.append(f"{r[0]!r},{r[1]!r},{c[0]!r},{c[1]!r},{'yes' if y else 'no'},s1")
    lab.write_text("\n".join(rows) + "\n")
    fit_args = ["--method", "map", "--steps", "30", "--restarts", "1", "--basis-degree", "1",
                "--num-samples", "16", "--estimator", "reparam", "--no-progress"]
    # without the options: the library's advice, given as the CLI's options
    code, out, err = _main(capsys, "fit", lab, "--out", tmp / "lab.nc", *fit_args)
    assert code == 2 and ("on the command line: --columns ref_x=<your column>,"
                          "comparison_x=<your column>,...") in err, err
    mapping = "ref_x=rx,ref_y=ry,comparison_x=cx,comparison_y=cy,response=answer"
    code, out, err = _main(capsys, "fit", lab, "--out", tmp / "lab.nc", *fit_args,
                           "--columns", mapping)
    assert code == 2 and "--response-values yes=1,no=0" in err, err
    for words in ("yes,no", "yes=1,no=0", '{"yes": 1, "no": 0}'):
        code, out, err = _main(capsys, "fit", lab, "--out", tmp / "lab.nc", *fit_args,
                               "--columns", mapping, "--response-values", words)
        assert code == 0, err
        back = pn.load_fit(tmp / "lab.nc")
        np.testing.assert_array_equal(back.data.stimuli, data.stimuli)
        np.testing.assert_array_equal(back.data.responses, data.responses)
        assert list(back.data.metadata) == ["subject"]
        # the loss as a (positive) negative log-likelihood per trial, saved and restored
        assert back.final_nll > 0 and f"{back.nll_per_trial:.4f} per trial" in out
        assert "MAP negative log-likelihood:" in out
    # the JSON form of --columns, and bad values as usage errors
    code, out, err = _main(capsys, "fit", lab, "--out", tmp / "lab.nc", *fit_args,
                           "--columns", '{"ref_x": "rx", "ref_y": "ry", "comparison_x": "cx", '
                           '"comparison_y": "cy", "response": "answer"}',
                           "--response-values", "YES,NO")
    assert code == 0, err
    for option, value, message in (
            ("--columns", "ref_x", "expected name=value pairs"),
            ("--columns", "[1, 2]", "expected name=value pairs"),
            ("--response-values", "yes=2,no=0", "'yes' must mean 1 (correct) or 0"),
            ("--response-values", "yes,yes", "two different words")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["fit", str(lab), "--out", "x.nc", option, value])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err, (option, value)
    code, out, err = _main(capsys, "fit", lab, "--out", tmp / "lab.nc", *fit_args,
                           "--columns", "response=answer,stimulus=rx")
    assert code == 2 and "'stimulus' is not a library column" in err, err
