"""A session in the lab's units: ask, stimuli and data speak the space; the store keeps the box."""

import numpy as np
import pytest

import psyphy_numpyro as pn

SPACE = pn.StimulusSpace.box(lo=[0.24, 0.26], hi=[0.38, 0.40], axis_labels=["CIE x", "CIE y"])


def test_ask_and_data_in_the_space(tmp_path):
    path = tmp_path / "s.sqlite"
    with pn.Experiment(path, seed=1, live=False, auto_refit=False, space=SPACE) as exp:
        assert exp.space == SPACE and exp.input_dim == 2
        ids, st = exp.ask(20)
        lo, hi = np.array([0.24, 0.26]), np.array([0.38, 0.40])
        assert np.all(st >= lo - 1e-12) and np.all(st <= hi + 1e-12)
        np.testing.assert_allclose(exp.stimuli(ids), st)
        exp.tell(ids, np.arange(20) % 2)
        data = exp.data
        assert data.space == SPACE
        np.testing.assert_allclose(data.stimuli, st, rtol=0, atol=1e-12)
        np.testing.assert_allclose(SPACE.to_lab(data.model_stimuli), st, atol=1e-12)
        assert exp.status()["space"] == SPACE.to_dict()
    # the same trials in a session without a space: the box
    with pn.Experiment(tmp_path / "box.sqlite", seed=1, live=False, auto_refit=False) as plain:
        _, box = plain.ask(20)
    np.testing.assert_allclose(SPACE.to_model(st), box, atol=1e-9)


def test_reopen_keeps_the_space_and_refuses_another(tmp_path):
    path = tmp_path / "s.sqlite"
    pn.Experiment(path, live=False, space=SPACE.to_dict()).close()
    with pn.Experiment(path, live=False) as exp:
        assert exp.space == SPACE
    other = pn.StimulusSpace.box(lo=[0.2, 0.2], hi=[0.4, 0.4])
    with pytest.raises(ValueError, match="space"):
        pn.Experiment(path, live=False, space=other)
    with pytest.raises(ValueError, match="3-D"):
        pn.Experiment(tmp_path / "t.sqlite", input_dim=3, space=SPACE)


def test_space_from_a_file(tmp_path):
    f = tmp_path / "space.json"
    SPACE.save(f)
    with pn.Experiment(tmp_path / "s.sqlite", live=False, space=f) as exp:
        assert exp.space == SPACE
