"""The package's import graph: the arrows point one way (no cycles, even through imports
inside functions or through the packages' ``__init__`` files), no module imports another
module's private names, and persistence dispatches through the fit classes' own hooks."""

import ast
import pathlib

import psyphy_numpyro as pn
from psyphy_numpyro import persist

PKG = pathlib.Path(pn.__file__).parent
ROOT = "psyphy_numpyro"


def _module_name(path, pkg=PKG):
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _import_statements(source, name, is_pkg):
    """``(node, module, names)`` for every import in ``source`` (module level or inside
    functions): ``module`` the absolute name imported from (``from`` imports) or imported,
    ``names`` the names a ``from`` import takes (empty for ``import a.b``)."""
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                mod = ".".join(root + ([node.module] if node.module else []))
            else:
                mod = node.module
            yield node, mod, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name, []


def _imports(source, name, is_pkg, known):
    """Package modules ``source`` imports explicitly.

    ``from X import a, b`` imports ``X.a`` and ``X.b`` when they are modules; it also
    imports ``X`` itself unless every name it takes is a submodule of ``X`` (``from .
    import main`` in a module of ``psyphy_numpyro.cli`` needs that package's ``__init__``;
    ``from . import acquisition`` in ``design/session.py`` only the submodule).
    """
    out = set()
    for _, mod, names in _import_statements(source, name, is_pkg):
        subs = {f"{mod}.{n}" for n in names} & known
        out |= subs
        if mod in known and (not names or len(subs) < len(names)):
            out.add(mod)
    out.discard(name)
    return out


def _packages_of(mod):
    """The packages above ``mod`` (``a.b.c`` -> ``a.b``, ``a``)."""
    parts = mod.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def _build_graph(sources, root=ROOT):
    """The import graph of ``sources`` (module name -> ``(source, is_package)``).

    Every module points to what it imports explicitly and, since importing ``a.b.c``
    first runs the ``__init__`` of ``a.b``, to the packages above those modules. Left
    out: the root package (its ``__init__`` imports everything) and a module's own
    packages when it does not import them explicitly (they are being initialised
    already when it runs).
    """
    known = set(sources)
    graph = {}
    for name, (source, is_pkg) in sources.items():
        explicit = _imports(source, name, is_pkg, known)
        implicit = set().union(*(_packages_of(d) for d in explicit)) & known
        implicit -= _packages_of(name)
        graph[name] = (explicit | implicit) - {name, root}
    return graph


def _sources():
    return {_module_name(p): (p.read_text(), p.name == "__init__.py") for p in PKG.rglob("*.py")}


def _graph():
    return _build_graph(_sources())


def _find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle():
    graph = _graph()
    assert "psyphy_numpyro.fits" in graph and "psyphy_numpyro.persist" in graph
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_has_the_edges_through_package_inits():
    sources = {
        "r": ("from .p import main", True),
        "r.p": ("from .cmds import run", True),
        "r.p.cmds": ("from .exp import go\nfrom .helpers import util\n", False),
        "r.p.exp": ("def go():\n    from . import shout\n", False),
        "r.p.helpers": ("from . import exp\nfrom ..q.deep import x\n", False),
        "r.q": ("from ..p.cmds import run", True),
        "r.q.deep": ("import r.p.helpers", False),
        "r.solo": ("from . import q\nfrom .q import deep\nimport r\n", False),
    }
    graph = _build_graph(sources, root="r")
    assert graph == {
        "r": {"r.p"},
        # own package left out unless imported explicitly ...
        "r.p": {"r.p.cmds"},
        "r.p.cmds": {"r.p.exp", "r.p.helpers"},
        # ... as by `from . import shout` (a name of the package's __init__)
        "r.p.exp": {"r.p"},
        # `from . import exp` takes a submodule only; r.q.deep runs r.q's __init__ first
        "r.p.helpers": {"r.p.exp", "r.q.deep", "r.q"},
        "r.q": {"r.p.cmds", "r.p"},
        "r.q.deep": {"r.p.helpers", "r.p"},
        # the root package is never an edge
        "r.solo": {"r.q", "r.q.deep"},
    }
    assert _find_cycle(graph) == ["r.p", "r.p.cmds", "r.p.exp", "r.p"]
    graph["r.p.exp"] = set()
    assert _find_cycle(graph) == ["r.p", "r.p.cmds", "r.p.helpers", "r.q", "r.p"]


def _private_imports(sources):
    """``(module, line, imported from, name)`` for every underscore name a module of
    ``sources`` imports from another one whose own name does not start with an underscore
    (private modules such as ``_kernels`` or ``plotting._base`` are meant to be imported
    inside the package; a package's ``__init__`` is not such a module). Dunder names and
    private submodules are not private names."""
    out = []
    for name, (source, is_pkg) in sorted(sources.items()):
        for node, mod, names in _import_statements(source, name, is_pkg):
            if mod not in sources or mod.rsplit(".", 1)[-1].startswith("_"):
                continue
            for n in names:
                private = n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
                if private and f"{mod}.{n}" not in sources:
                    out.append((name, node.lineno, mod, n))
    return out


def test_no_module_imports_another_modules_private_names():
    assert _private_imports(_sources()) == []


def test_the_private_import_finder_finds_them():
    sources = {
        "r": ("", True),
        "r.a": ("def _f(): pass\n_X = 1\n", False),
        "r._priv": ("def _g(): pass\n", False),
        "r.p": ("def _h(): pass\n", True),
        "r.p.b": ("from ..a import _f, g\nfrom .. import _priv\n"
                  "def k():\n    from . import _h\n    from r.a import _X\n", False),
        "r.c": ("from ._priv import _g\nfrom .a import __doc__\nimport r.a\n", False),
    }
    assert _private_imports(sources) == [
        ("r.p.b", 1, "r.a", "_f"), ("r.p.b", 4, "r.p", "_h"), ("r.p.b", 5, "r.a", "_X")]


def test_arrows_point_one_way():
    graph = _graph()
    p = "psyphy_numpyro."
    # persist imports the fits; the fits and the file format never import persist
    assert {p + "fits", p + "posterior"} <= graph[p + "persist"]
    for mod in ("fits", "posterior", "fitfile", "map_fit", "laplace", "mcmc", "readout"):
        assert p + "persist" not in graph[p + mod], mod
    # the file format knows no fit class, and the numerical core knows no fit at all
    assert not graph[p + "fitfile"] & {p + "fits", p + "posterior", p + "map_fit"}
    for core in ("field", "oddity", "model", "validation", "inference.svi"):
        assert not graph[p + core] & {p + "fits", p + "posterior", p + "persist", p + "cli"}


def test_every_fit_class_is_registered_for_loading():
    """A new Fit subclass with its own kind must be added to persist.FIT_CLASSES, or its
    files could be written but not loaded."""
    import psyphy_numpyro.posterior  # noqa: F401 - every fit module imported

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    kinds = {c.kind: c for c in subclasses(pn.Fit) if c.__module__.startswith("psyphy_numpyro")}
    assert kinds == persist.FIT_CLASSES
