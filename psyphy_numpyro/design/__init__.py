"""Experimental design: where to put the next trials, and the live session that asks for them.

``acquisition`` scores candidate trials by the information one response
carries about the field under a posterior fit and picks diverse batches;
``session`` is :class:`Experiment`, the crash-safe ask/tell store that runs
the space-filling start, the refits and the adaptive batches.
"""

from .acquisition import (
    CRITERIA,
    candidate_trials,
    inside_domain,
    propose_trials,
    random_trials,
    score_trials,
    space_filling_trials,
)
from .session import Experiment

__all__ = [
    "CRITERIA",
    "Experiment",
    "candidate_trials",
    "inside_domain",
    "propose_trials",
    "random_trials",
    "score_trials",
    "space_filling_trials",
]
