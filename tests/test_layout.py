"""The package's import graph: the arrows point one way (no cycles, even through imports
inside functions), and persistence dispatches through the fit classes' own hooks."""

import ast
import pathlib

import psyphy_numpyro as pn
from psyphy_numpyro import persist

PKG = pathlib.Path(pn.__file__).parent


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path, name, known):
    """Package modules imported anywhere in ``path`` (module level or inside functions)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            root = base[: len(base) - node.level + 1]
            mod = ".".join(root + ([node.module] if node.module else []))
            cands = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            cands = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        out.update(c for c in cands if c in known and c != name)
    return out


def _graph():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    known = set(files)
    graph = {}
    for name, path in files.items():
        deps = _imports(path, name, known)
        # importing a subpackage's module also runs the subpackage's __init__
        graph[name] = {d for d in deps if not name.startswith(d + ".") and d != "psyphy_numpyro"}
    return graph


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
