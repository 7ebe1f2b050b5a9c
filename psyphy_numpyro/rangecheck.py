"""The small-range warning: data without a space that look like they are in the lab's units.

A fit's field lives on the box ``[-1, 1]^d``. Stimuli given without a
:class:`~psyphy_numpyro.StimulusSpace` that fill only a small part of it (xy
chromaticities lie in ``[0, 1]`` and pass the domain check) are nearly always in
the lab's own units, and the fitted field is then nearly flat over them.
:func:`warn_small_range` says so, once per data object, and names the
:class:`~psyphy_numpyro.StimulusSpace` that would fit them. The fitters call it;
:mod:`psyphy_numpyro.data` re-exports it.

It reads the data's public ``space``, ``stimuli`` and length, and keeps the
"warned already" mark in the ``_warned`` slot :class:`~psyphy_numpyro.TrialData`
reserves for it. It imports NumPy only.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["SMALL_RANGE", "warn_small_range"]

SMALL_RANGE = 0.5
"""Data (model units, no space) spanning less than this along an axis of the box
``[-1, 1]`` (a quarter of its width) get a warning when fitted (:func:`warn_small_range`)."""


def warn_small_range(data, *, stacklevel: int = 3) -> None:
    """Warn when data without a space fill less than a quarter of the box along an axis.

    Such data are nearly always in the lab's units (xy chromaticities lie in
    ``[0, 1]`` and pass the domain check): the fitted field is then nearly
    flat over them. The warning names the range seen per axis and the
    :class:`StimulusSpace` that would fit them. Once per data object, and
    only from 20 trials on.
    """
    if data.space is not None or len(data) < 20 or getattr(data, "_warned", True):
        return  # (a handful of trials, e.g. a session's first ones, says little about units)
    s = data.stimuli
    lo, hi = s.min(axis=(0, 1)), s.max(axis=(0, 1))
    span = hi - lo
    if np.all(span >= SMALL_RANGE):
        return
    data._warned = True
    axes = ", ".join(f"axis {k}: [{a:.4g}, {b:.4g}] (width {b - a:.3g})"
                     for k, (a, b) in enumerate(zip(lo, hi, strict=True)))
    pad = np.where(span > 0, 0.05 * span, max(0.05 * span.max(), 1e-3))
    fmt = lambda v: "[" + ", ".join(f"{x:.4g}" for x in v) + "]"  # noqa: E731
    warnings.warn(
        f"the stimuli fill less than a quarter of the model's box [-1, 1] along "
        f"{int(np.sum(span < SMALL_RANGE))} axis/axes ({axes}); the field is fitted over the "
        f"whole box, so it will be nearly flat over the data. If the stimuli are in your own "
        f"units, give their space: data = pn.TrialData(..., space=pn.StimulusSpace.box("
        f"lo={fmt(lo - pad)}, hi={fmt(hi + pad)})) (or StimulusSpace.colour(...)); read-outs "
        f"then come back in those units",
        UserWarning, stacklevel=stacklevel)
