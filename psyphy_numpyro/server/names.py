"""Session names: the file of a session (or of a prior) under the server's root.

A name is a relative POSIX path; :func:`resolve_name` refuses what could lead out of the
root (``..``, absolute paths, backslashes, control characters, symbolic links out).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import InvalidInput

__all__ = ["resolve_name"]


def resolve_name(root: Path, name: str, what: str = "session name") -> Path:
    """The file of session ``name``: a relative path under ``root`` that stays inside it.

    ``what`` names it in the messages (a prior's file is resolved the same way).

    Raises
    ------
    ValueError
        An empty or absolute name, one with ``..``, ``.``, empty segments,
        backslashes or control characters, or one that leads out of ``root``
        (through a symbolic link).
    """
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"a {what} is a relative path of 1 to 255 characters")
    if "\\" in name or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"{what} {name!r}: no backslashes or control characters")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/"):
        raise InvalidInput(f"{what} {name!r} must be relative to the server's root")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"{what} {name!r}: no '.', '..' or empty path segments")
    root = Path(root).resolve()
    path = (root / Path(*parts)).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"{what} {name!r} leads out of the server's root")
    return path
