"""Reduced simulation-based calibration of fit_mcmc (benchmarks/sbc.py, docs/validation.md).

Data are simulated from the surrogate likelihood that fit_mcmc conditions on,
so the NUTS draws should be exact posterior draws and the rank of the true
value of every rotation-invariant test quantity uniform. Fixed seeds make the
test deterministic; the thresholds are lenient because it runs few replications.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

_SBC_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "sbc.py"


def _load_sbc():
    spec = importlib.util.spec_from_file_location("_sbc_benchmark", _SBC_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rank_statistics_helpers():
    sbc = _load_sbc()
    rng = np.random.default_rng(0)
    draws = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    np.testing.assert_array_equal(sbc.rank_of(np.array([1.5, -1.0]), draws, rng), [2, 0])
    np.testing.assert_array_equal(sbc.thin_indices(10, 4), [0, 3, 6, 9])
    # uniform ranks pass, piled-up ranks fail
    L = 20
    uniform = np.tile(np.arange(L + 1), 5)
    p_chi2, p_ks = sbc.uniformity_pvalues(uniform, L, bins=7)
    assert p_chi2 > 0.99 and p_ks > 0.05
    p_chi2, p_ks = sbc.uniformity_pvalues(np.full(100, L // 2), L, bins=7)
    assert p_chi2 < 1e-6 and p_ks < 1e-6


@pytest.mark.slow
def test_fit_mcmc_sbc_ranks_uniform():
    sbc = _load_sbc()
    # about 2.5 minutes on a 2-core CPU (a third of it compiling NUTS once)
    result = sbc.run_sbc(
        replications=30, draws=20, num_trials=200, num_warmup=120, num_samples=50,
        num_chains=2, map_steps=50, seed=0, verbose=False, clear_every=15,
    )
    ranks, L = result["ranks"], result["L"]
    assert ranks.shape == (30, len(result["names"]))
    assert ranks.min() >= 0 and ranks.max() <= L
    failed = []
    for j, name in enumerate(result["names"]):
        p_chi2, p_ks = sbc.uniformity_pvalues(ranks[:, j], L, bins=5, seed=j)
        if min(p_chi2, p_ks) < 1e-3:
            failed.append(f"{name}: chi2 p={p_chi2:.2g}, KS p={p_ks:.2g}")
    assert not failed, "SBC ranks not uniform: " + "; ".join(failed)
    assert result["divergences"].sum() <= 0.02 * 30 * 2 * 50
