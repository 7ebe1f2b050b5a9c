"""The package's own error types.

Every error psyphy_numpyro raises on purpose derives from :class:`Error`, and
also from the built-in type a caller would expect (``ValueError``,
``TypeError`` ...), so ``except ValueError`` keeps working. The command line
reports exactly these (and operating-system errors such as a missing file) as
one-line messages; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

__all__ = ["Error", "InvalidInput", "InvalidType", "FitDivergedError", "FitFailedError",
           "SessionBusy"]


class Error(Exception):
    """Base of every error psyphy_numpyro raises deliberately."""


class InvalidInput(Error, ValueError):
    """A value the user passed is wrong (shape, range, file content ...)."""


class InvalidType(Error, TypeError):
    """An argument has the wrong type."""


class FitDivergedError(Error, RuntimeError):
    """A fit produced a non-finite loss or parameters and could not recover."""


class FitFailedError(Error, FloatingPointError):
    """A fit produced non-finite results (curvature, posterior draws) it cannot use."""


class SessionBusy(Error, RuntimeError):
    """A session file is owned by another live process (or server).

    Attributes
    ----------
    path : str
        The session file.
    owner : dict
        Who holds it: ``pid``, ``host``, ``since`` (ISO time) and, where given,
        ``name`` (e.g. ``"server"``). Open it with ``takeover=True`` to take it
        over, or read-only.
    """

    def __init__(self, path, owner: dict):
        self.path, self.owner = str(path), dict(owner)
        who = f"pid {owner.get('pid')} on {owner.get('host')}"
        if owner.get("name"):
            who = f"{owner['name']} ({who})"
        super().__init__(
            f"{path}: the session is open for asking by {who} since {owner.get('since')}; "
            "open it read-only, close it there, or pass takeover=True (--takeover) to take it "
            "over (its pending trials then move to you)")
