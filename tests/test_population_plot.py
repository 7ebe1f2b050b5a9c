"""plot_population: the population's and every observer's field, from hand-built fits."""

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import psyphy_numpyro as pn  # noqa: E402
from psyphy_numpyro.plotting import plot_population, save_figure  # noqa: E402
from psyphy_numpyro.plotting.population_plot import radius_deviation  # noqa: E402

MODEL = pn.WPPM(input_dim=2, basis_degree=2, num_samples=16)


def _population(kind="map", k=3):
    W = np.asarray(MODEL.sample_prior(0)["W"])
    data = pn.simulate_experiment(MODEL, {"W": W}, 30, key=0)
    sd = np.asarray(MODEL.prior_std())
    Ws = [W + 0.2 * sd * np.asarray(jax.random.normal(jax.random.PRNGKey(i), W.shape))
          for i in range(k)]
    if kind == "map":
        members = [pn.MAPFit.from_params(MODEL, {"W": w}, data) for w in [W, *Ws]]
    else:
        def lap(w, i):
            noise = np.asarray(jax.random.normal(jax.random.PRNGKey(50 + i), (1, 40) + W.shape))
            return pn.LaplaceFit(model=MODEL, data=data, draws=w + 0.05 * sd * noise,
                                 map_fit=pn.MAPFit.from_params(MODEL, {"W": w}, data), mean=w)
        members = [lap(w, i) for i, w in enumerate([W, *Ws])]
    return pn.PopulationFit(population=members[0], observers=members[1:], tau=0.2,
                            learned_tau=False, model=MODEL,
                            inference="map" if kind == "map" else "laplace")


def test_radius_deviation_reads_sizes():
    S = np.array([[[2.0, 0.3], [0.3, 1.0]]] * 4)
    assert radius_deviation(S, S) == pytest.approx(0.0, abs=1e-12)
    # every ellipse 1.2 times as large in every direction: log 1.2
    assert radius_deviation(1.44 * S, S) == pytest.approx(np.log(1.2))


@pytest.mark.parametrize("kind", ["map", "laplace"])
def test_small_multiples_one_panel_per_observer(kind, tmp_path):
    pop = _population(kind)
    fig = plot_population(pop)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 1 + pop.num_observers
    titles = [ax.get_title() for ax in panels]
    assert titles[0].startswith("population and 3 observers")
    assert all("30 trials" in t and "% from the" in t for t in titles[1:])
    assert ("Laplace" if kind == "laplace" else "MAP") in fig._suptitle.get_text()
    if kind == "laplace":  # bands: filled patches on every observer's panel
        assert all(ax.patches for ax in panels[1:])
    path = tmp_path / "pop.png"
    save_figure(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig2 = plot_population(pop, observers=[2], ncols=2)
    assert len([ax for ax in fig2.axes if ax.axison]) == 2


def test_bad_input_is_named():
    pop = _population()
    with pytest.raises(TypeError, match="PopulationFit"):
        plot_population(pop.observers[0])
    with pytest.raises(ValueError, match="observers must be distinct"):
        plot_population(pop, observers=[0, 0])
    with pytest.raises(ValueError, match="observers must be distinct"):
        plot_population(pop, observers=[5])
    with pytest.raises(ValueError, match="level"):
        plot_population(pop, level=1.5)
