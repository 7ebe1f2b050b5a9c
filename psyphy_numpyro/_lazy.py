"""Names a package loads on first use (PEP 562): how ``import psyphy_numpyro`` stays light."""

from __future__ import annotations

import importlib
import importlib.util


def lazy_exports(package: str, exports: dict):
    """``(__getattr__, __dir__)`` for a package whose public names (``exports``: name ->
    relative module) are imported on first use; a submodule's name imports it."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            if name.startswith("_") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f".{name}", package)
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
