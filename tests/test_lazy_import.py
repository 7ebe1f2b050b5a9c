"""``import psyphy_numpyro`` is light: public names load on first use, JAX only when needed."""

import subprocess
import sys

import pytest

import psyphy_numpyro as pn


def _modules_after(code):
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_package_import_does_not_load_jax():
    mods = _modules_after("import psyphy_numpyro, psyphy_numpyro.errors")
    assert "psyphy_numpyro" in mods
    assert "jax" not in mods and "numpyro" not in mods


def test_public_names_resolve_on_first_use():
    for name in pn.__all__:
        assert getattr(pn, name) is not None, name
    assert pn.errors.SessionBusy.__mro__[1:3] == (pn.errors.Error, RuntimeError)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pn.not_a_name  # noqa: B018
    assert "fit_map" in dir(pn)


def test_type_checking_imports_list_every_public_name():
    """The TYPE_CHECKING block (what type checkers and the API docs see) names every export,
    from the module the lazy loader takes it from."""
    import ast
    import inspect

    for pkg in (pn, pn.design):
        tree = ast.parse(inspect.getsource(pkg))
        block = next(n for n in tree.body if isinstance(n, ast.If)
                     and getattr(n.test, "id", None) == "TYPE_CHECKING")
        seen = {a.name: "." * imp.level + (imp.module or "") for imp in block.body
                for a in imp.names}
        assert seen == pkg._EXPORTS, pkg.__name__
