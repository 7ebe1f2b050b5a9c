"""Examples whose numbers are claims: run them small and check what they say."""

import sys
from pathlib import Path

import numpy as np
import pytest

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
