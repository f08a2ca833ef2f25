"""Architecture rules of the bnn2hw package, read from its source with ``ast`` (nothing is imported):

1. no import cycle among bnn2hw's modules, counting imports at module level and inside functions;
2. a private name (leading underscore; dunders such as ``__version__`` are public) is used only inside
   the package that defines it: a first-level subpackage (``bnn2hw.sim`` with everything below it),
   or, for a module directly in ``bnn2hw`` (and for ``bnn2hw/__init__.py``), that module alone.

Import edges: ``import a.b`` is an edge to ``a.b``; ``from a import name`` is an edge to the submodule
``a.name`` where that is a module, else to ``a`` (a package means its ``__init__``); relative imports
are resolved against the importing module. The implicit import of a module's own parent packages
(``bnn2hw.sim`` before ``bnn2hw.sim.tools``) is not an edge.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "bnn2hw"
SOURCE = Path(__file__).resolve().parents[1] / PACKAGE


@dataclass(frozen=True)
class Import:
    importer: str
    target: str          # a bnn2hw module
    names: tuple[str, ...]  # the names taken from it (from-imports), () for `import x`
    line: int

    def where(self) -> str:
        return f"{module_path(self.importer)}:{self.line}"


def discover(root: Path = SOURCE) -> dict[str, Path]:
    """Module name → source file, for every .py file of the package (``__init__.py`` names its package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = discover()


def module_path(name: str) -> str:
    return str(MODULES[name].relative_to(SOURCE.parent))


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(importer: str, module: str | None, level: int) -> str:
    """The absolute module a (possibly relative) ``from ... import`` in ``importer`` names."""
    if not level:
        return module or ""
    base = importer.split(".")
    if not is_package(importer):
        base = base[:-1]             # a plain module's relative imports start at its package
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(name: str) -> list[Import]:
    """Every import of a bnn2hw module in module ``name``, wherever it is in the file."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    found.append(Import(name, alias.name, (), node.lineno))
                elif alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    raise AssertionError(f"{module_path(name)}:{node.lineno} imports {alias.name}, which is not a "
                                         "module of the package")
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, node.module, node.level)
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    found.append(Import(name, sub, (alias.name,), node.lineno))
                elif base in MODULES:
                    found.append(Import(name, base, (alias.name,), node.lineno))
                else:
                    raise AssertionError(f"{module_path(name)}:{node.lineno} imports from {base}, which is not a "
                                         "module of the package")
    return found


def import_graph() -> dict[str, dict[str, Import]]:
    """importer → {target: its first import there}. Only written imports are edges: the parent packages
    Python imports before a module (its own, and a target's) are not."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in MODULES}
    for name in MODULES:
        for imp in imports(name):
            if imp.target != name:
                graph[name].setdefault(imp.target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def shortest_cycle(graph: dict[str, dict[str, Import]], start: str, members: set[str]) -> list[str]:
    """The shortest cycle from ``start`` back to itself through ``members`` (breadth first)."""
    previous = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1] + [start]
            if child in members and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")


def describe_cycle(graph, cycle: list[str]) -> str:
    steps = [f"{a} -> {b} ({graph[a][b].where()})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n      " + "\n      ".join(steps)


def unit(name: str) -> str:
    """The package a private name of module ``name`` belongs to (see the module docstring)."""
    parts = name.split(".")
    if len(parts) == 1:
        return name                                     # bnn2hw/__init__.py
    first = ".".join(parts[:2])
    return first if is_package(first) else name         # a subpackage, or a top-level module alone


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_import_cycles():
    graph = import_graph()
    report = []
    for component in strongly_connected(graph):
        members = set(component)
        cycles = {}
        for start in component:          # the shortest cycle through each member, each cycle once
            ring = shortest_cycle(graph, start, members)[:-1]
            k = ring.index(min(ring))
            ring = ring[k:] + ring[:k]
            cycles.setdefault(tuple(ring), ring + ring[:1])
        cycles = sorted(cycles.values(), key=lambda c: (len(c), c))
        report.append(f"{len(component)} modules import each other: {', '.join(component)}\n"
                      + "\n".join(f"    cycle: {describe_cycle(graph, c)}" for c in cycles))
    assert not report, "import cycles among bnn2hw's modules:\n" + "\n".join(report)


def test_private_names_stay_in_their_package():
    report = []
    for name in sorted(MODULES):
        for imp in imports(name):
            if unit(imp.target) == unit(name):
                continue
            taken = [n for n in imp.names if is_private(n)]
            if any(is_private(part) for part in imp.target.split(".")) and not taken:
                taken = [f"the private module {imp.target}"]
            if taken:
                report.append(f"{imp.where()}: {name} imports {', '.join(taken)} from {imp.target} "
                              f"(private to {unit(imp.target)})")
    assert not report, "private names used outside their package:\n" + "\n".join(report)
