import importlib.util
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CI", "1")  # progress bars off in tests
# JAX's persistent compilation cache: the suite compiles the same programs in many modules
# (caches are dropped after each module, below) and in every CLI/server subprocess; they load
# from disk after the first compile. Set before jax is imported; subprocesses inherit it.
# A size bound turns on JAX's file lock (the filelock package, a test extra), so
# pytest-xdist workers share the directory safely; without filelock (e.g. the ArviZ 1.x
# venv of .ci/arviz1) there is no cache.
if importlib.util.find_spec("filelock") is not None:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                          str(Path(__file__).resolve().parent.parent / ".jax_cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

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


def sigma_reference(W, x, diag_term):
    """Independent float64 Sigma(x): T_k(x) from numpy's Chebyshev module, explicit sums."""
    from numpy.polynomial import chebyshev as npcheb

    W, x = np.asarray(W, np.float64), np.asarray(x, np.float64)
    d, K = x.shape[-1], W.shape[0] - 1
    T = [npcheb.chebvander(x[:, i], K) for i in range(d)]  # (n, K+1) per axis
    phi = T[0]
    for i in range(1, d):
        phi = np.einsum("na,nb->nab", phi, T[i]).reshape(len(x), -1)
    U = np.einsum("nk,kij->nij", phi, W.reshape(-1, W.shape[-2], W.shape[-1]))
    return U @ np.swapaxes(U, -1, -2) + diag_term * np.eye(d)


@pytest.fixture(scope="session")
def sigma_ref():
    return sigma_reference


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
