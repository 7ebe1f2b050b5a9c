"""A session's trials: the ones ``ask`` hands out next, and the checks of the trial
ids and responses handed back to :class:`~psyphy_numpyro.design.session.Experiment`.

First the trials earlier owners left pending (handed out again, with their ids), then
new ones. New trials come from the latest fit's stored proposals, in order, and when those run
out (or before the first fit) from the space-filling sequence
(:func:`~psyphy_numpyro.design.space_filling_trials`), continued index by index
(:class:`TrialSource`). The session file (:mod:`.store`) records where each
sequence stands.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInput, InvalidType
from .nonadaptive import space_filling_trials

__all__ = ["TrialSource", "check_ids", "check_binary"]


class TrialSource:
    """The trials a session hands out: the pending trials of earlier owners, then new
    ones (its latest fit's proposals, then the space-filling sequence).

    Parameters
    ----------
    store : SessionStore
        The session file.
    input_dim : int
    seed : int
        Seeds the space-filling sequence.
    distances : (float, float)
        Its distance range (model units).
    reissue : sequence of int
        Ids of pending trials to hand out again, first (oldest first).
    place : callable, optional
        The session's region (:meth:`~psyphy_numpyro.design.region.Region.place`):
        where the space-filling references go (default: the whole domain).
    validation : ValidationPlan, optional
        The session's validation trials (:mod:`.validation_trials`), interleaved with
        the new trials (default: none).
    """

    def __init__(self, store, input_dim: int, seed: int, distances, reissue=(), place=None,
                 validation=None):
        self._store, self._place, self._validation = store, place, validation
        self._reissue = [int(i) for i in reissue]
        self.input_dim, self.seed, self.distances = input_dim, seed, distances
        self._cache = None  # (first index, refs, comparisons) of the space-filling block

    def hand_out(self, db, n: int, fit_seq: int | None) -> list[int]:
        """The ids of ``n`` trials to hand out, stored as pending inside the transaction
        ``db``: trials left to reissue that are still pending, then :meth:`new_trials`."""
        ids = []
        while self._reissue and len(ids) < n:
            i = self._reissue.pop(0)
            if self._store.state(i) == "pending":
                ids.append(i)
        for ref, comp, source, index in self.new_trials(db, n - len(ids), fit_seq):
            ids.append(self._store.add_trial(db, ref, comp, source, index))
        return ids

    def drop(self, ids) -> None:
        """Hand the trials ``ids`` (expired) out no more."""
        self._reissue = [i for i in self._reissue if i not in set(ids)]

    def new_trials(self, db, n: int, fit_seq: int | None) -> list:
        """``n`` trials not handed out before, as ``(ref, comparison, source, index)``
        (lists of floats in model units; ``source`` ``"fit<k>"`` or ``"space"``, the
        index in that source's sequence), read inside the transaction ``db``: first
        the proposals of fit ``fit_seq`` (None: none yet), then the space-filling
        sequence; with validation trials, those interleaved at their fraction."""
        if n == 0:
            return []
        if self._validation is not None:
            flags = self._validation.flags(db, self._store, n)
            held = iter(self._validation.trials(db, self._store, sum(flags)))
            rest = iter(self._adaptive_trials(db, n - sum(flags), fit_seq))
            return [next(held) if f else next(rest) for f in flags]
        return self._adaptive_trials(db, n, fit_seq)

    def _adaptive_trials(self, db, n: int, fit_seq: int | None) -> list:
        if n == 0:
            return []
        out = []
        if fit_seq is not None:
            source = f"fit{fit_seq}"
            start = self._store.next_source_index(db, source)
            out = [(np.asarray(r, np.float64).tolist(), np.asarray(c, np.float64).tolist(),
                    source, i) for i, r, c in self._store.proposals(db, fit_seq, start, n)]
        if len(out) < n:
            start = self._store.next_source_index(db, "space")
            ref, comp = self.space_trials(start, n - len(out))
            out += [(ref[j].tolist(), comp[j].tolist(), "space", start + j)
                    for j in range(len(ref))]
        return out

    def space_trials(self, start: int, n: int, block: int = 256):
        """Trials ``start ... start + n - 1`` of the space-filling sequence, from a block
        computed once (trial ``i`` depends only on the seed and ``i``, and computing it costs
        time growing with ``i``: per ask that would grow with the session)."""
        cache = self._cache
        if cache is None or not cache[0] <= start <= start + n <= cache[0] + len(cache[1]):
            ref, comp = space_filling_trials(max(n, block), self.input_dim, seed=self.seed,
                                             start=start, distances=self.distances,
                                             place=self._place)
            cache = self._cache = (start, ref, comp)
        lo = start - cache[0]
        return cache[1][lo:lo + n], cache[2][lo:lo + n]


def check_ids(ids) -> np.ndarray:
    """Trial ids as a non-empty 1-D int64 array without repeats (integral floats
    accepted); a ``ValueError`` / ``TypeError`` otherwise."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInput(f"ids must be a non-empty 1-D array of trial ids, got shape "
                           f"{arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidType(f"ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size > 1 and len(set(arr.tolist())) < arr.size:  # (np.unique costs more)
        uniq, counts = np.unique(arr, return_counts=True)
        raise InvalidInput(f"trial id {int(uniq[counts > 1][0])} appears twice; nothing was "
                           "recorded")
    return arr


def check_binary(responses, n) -> np.ndarray:
    """``n`` responses (0/1 numbers or booleans) as an int64 array; a ``ValueError`` /
    ``TypeError`` naming the first bad one otherwise."""
    y = np.asarray(responses)
    if y.ndim == 0:
        y = y[None]
    if y.shape != (n,):
        raise InvalidInput(f"responses must have one entry per id ({n}), got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise InvalidType(f"responses must be 0/1 numbers or booleans, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"responses must be 0 or 1, got {y[j].item()!r} at position {j}; "
                           "nothing was recorded")
    return y.astype(np.int64)
