import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CI", "1")  # progress bars off in tests

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.special import expit  # noqa: E402


def oddity_reference_mc(Sr, Sc, r, c, bandwidth, num_samples=20000, seed=0):
    """Independent float64 plain Monte Carlo of SPEC section 2 (three samples)."""
    rng = np.random.default_rng(seed)
    d = len(r)
    Lr, Lc = np.linalg.cholesky(Sr), np.linalg.cholesky(Sc)
    z0 = r + rng.standard_normal((num_samples, d)) @ Lr.T
    z1 = r + rng.standard_normal((num_samples, d)) @ Lr.T
    z2 = c + rng.standard_normal((num_samples, d)) @ Lc.T
    Minv = np.linalg.inv((2 / 3) * Sr + (1 / 3) * Sc)

    def dist(u, v):
        w = u - v
        return np.einsum("ni,ij,nj->n", w, Minv, w)

    delta = np.minimum(dist(z0, z2), dist(z1, z2)) - dist(z0, z1)
    s = expit(delta / bandwidth)
    return s.mean(), s.std() / np.sqrt(num_samples)


@pytest.fixture(scope="session")
def ref_mc():
    return oddity_reference_mc


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every cached executable after each test module.

    Each compiled XLA CPU program holds memory mappings; a process that keeps
    hundreds of them (the whole suite in one process) approaches the kernel's
    ``vm.max_map_count`` (65 530), where LLVM's JIT fails to map code and the
    process crashes. Users' processes compile a few programs; the suite
    compiles hundreds.
    """
    yield
    import gc

    import jax

    from psyphy_numpyro import mcmc
    from psyphy_numpyro.inference import engine

    engine.clear_cache()
    mcmc._SAMPLERS.clear()
    jax.clear_caches()
    gc.collect()
