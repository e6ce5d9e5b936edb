"""No import cycles among the package's modules.

:func:`import_graph` reads every module of a package with :mod:`ast` (nothing is imported) and
returns the graph of its import-time imports of the package's own modules; :func:`find_cycle`
finds a cycle in such a graph. The graph is built for the whole ``aware3d`` package; the test
asserts for the subpackages listed in :data:`CHECKED` and the top-level modules.
"""

import ast
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).parent.parent / "src" / "aware3d"

#: Subpackages whose modules must not import one another in a circle (with the top-level modules).
CHECKED = ("aware3d.nn", "aware3d.functional", "aware3d.models", "aware3d.data", "aware3d.viz",
           "aware3d.training", "aware3d.recipes", "aware3d.demo", "aware3d.viewer",
           "aware3d.inversion")  # fmt: skip

#: The design's layers, lowest first: a package imports only from its own layer or below.
LAYERS = {"functional": 0, "nn": 1, "models": 2, "data": 2, "viz": 3, "training": 4,
          "recipes": 5, "inversion": 5, "demo": 6, "viewer": 6, "cli": 7, "cli_view": 7,
          "cli_data": 7, "cli_invert": 7}  # fmt: skip


def _module_names(package_dir: Path) -> dict[Path, str]:
    """Dotted module name of every ``.py`` file under ``package_dir`` (``__init__`` -> package)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[path] = ".".join(parts)
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements Python runs when the module is imported.

    Module-level statements, including those inside ``if``/``try``/``with``/loops and class
    bodies; not those inside functions (deferred imports) or under ``if TYPE_CHECKING:``.
    """
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_imports(node.body)
            yield from _import_time_imports(node.orelse)
        else:
            yield from _import_time_imports(_nested_statements(node))


def _nested_statements(node: ast.stmt) -> list[ast.stmt]:
    """The statements inside a compound statement that runs at once (not a function's body)."""
    statements: list[ast.stmt] = []
    for field in ("body", "orelse", "finalbody"):
        statements += getattr(node, field, [])
    for handler in getattr(node, "handlers", []):  # try / except
        statements += handler.body
    for case in getattr(node, "cases", []):  # match
        statements += case.body
    return statements


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module ``name`` refers to: itself, or its longest prefix that is a known module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """The graph of import-time imports among the modules of a package, read with :mod:`ast`.

    ``graph[a]`` holds the modules of the package that module ``a`` imports when it is imported:
    ``import p.m`` and ``from p.m import name`` point to ``p.m`` (``from p import m`` to the
    module ``p.m`` when it is one, else to ``p``); relative imports are resolved. An edge goes
    to the module named, not to its parent packages (Python imports those first, but they are
    normally already being imported). Imports inside functions and under ``if TYPE_CHECKING:``
    are left out: they do not run at import time.

    Args:
        package_dir: the package's folder (the one holding its ``__init__.py``).

    Returns:
        ``{module: {imported module, ...}}`` for every module of the package, dotted names.
    """
    names = _module_names(package_dir)
    modules = set(names.values())
    graph: dict[str, set[str]] = {}
    for path, module in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _import_time_imports(tree.body):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                candidates = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for candidate in candidates:
                target = _resolve(candidate, modules)
                if target is not None and target != module:
                    targets.add(target)
        graph[module] = targets
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` if it has none.

    Depth-first search in sorted order (the same cycle every run); edges to nodes that are not
    keys of ``graph`` are ignored.
    """
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        on_path = {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            successor = next(stack[-1], None)
            if successor is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if successor not in graph or successor in done:
                continue
            if successor in on_path:
                return [*path[path.index(successor) :], successor]
            path.append(successor)
            on_path.add(successor)
            stack.append(iter(sorted(graph[successor])))
    return None


def _in_checked_scope(module: str, top_level: set[str]) -> bool:
    """``aware3d``, its top-level modules and the modules of the :data:`CHECKED` packages."""
    return (
        module == PACKAGE_DIR.name
        or module in top_level
        or any(module == package or module.startswith(package + ".") for package in CHECKED)
    )


def test_no_import_cycles_among_checked_modules():
    graph = import_graph(PACKAGE_DIR)
    top_level = {f"{PACKAGE_DIR.name}.{path.stem}" for path in PACKAGE_DIR.glob("*.py")}
    top_level.discard(f"{PACKAGE_DIR.name}.__init__")
    checked = {m: targets for m, targets in graph.items() if _in_checked_scope(m, top_level)}
    assert "aware3d.nn.layers" in checked and "aware3d.functional.splat" in checked
    assert "aware3d.cameras" in checked
    cycle = find_cycle(checked)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_package_imports_a_layer_above_it():
    graph = import_graph(PACKAGE_DIR)

    def layer(module: str) -> int | None:
        parts = module.split(".")
        return LAYERS.get(parts[1]) if len(parts) > 1 else None

    upward = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)
    ]  # type: ignore[operator]
    assert upward == []


def test_layers_import_their_parts_in_one_direction():
    graph = import_graph(PACKAGE_DIR)
    assert "aware3d.nn._activations" in graph["aware3d.nn._linear_layers"]
    assert {"aware3d.nn._activations", "aware3d.nn._linear_layers"} <= graph[
        "aware3d.nn._conv_layers"
    ]
    assert graph["aware3d.nn._activations"] == set()
    assert "aware3d.nn.layers" not in graph["aware3d.nn._conv_layers"]


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_import_graph_reads_absolute_relative_and_import_time_imports(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "from pkg.a import f\n",
            "a.py": """
                import os
                import pkg.b
                from . import c
                from .sub import thing

                def f():
                    from pkg import d  # deferred: not an import-time edge
            """,
            "b.py": """
                from typing import TYPE_CHECKING
                try:
                    from pkg.sub.e import g
                except ImportError:
                    pass
                if TYPE_CHECKING:
                    from pkg import a
                class K:
                    from pkg import c
            """,
            "c.py": "",
            "d.py": "",
            "sub/__init__.py": "from .e import g\nfrom .. import c\n",
            "sub/e.py": "from ..b import K\n",
        },
    )
    graph = import_graph(package)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b", "pkg.c", "pkg.sub"},
        "pkg.b": {"pkg.sub.e", "pkg.c"},
        "pkg.c": set(),
        "pkg.d": set(),
        "pkg.sub": {"pkg.sub.e", "pkg.c"},
        "pkg.sub.e": {"pkg.b"},
    }
    assert find_cycle(graph) == ["pkg.b", "pkg.sub.e", "pkg.b"]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({}, None),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is no cycle
        ({"a": {"outside"}}, None),  # edges to unknown nodes are ignored
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_find_cycle(graph, expected):
    assert find_cycle(graph) == expected
