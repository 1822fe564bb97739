#!/usr/bin/env python3
"""List the import cycles among iomemfuzz's own modules (model/ and fuzz/).

The graph is read from the source text, nothing is imported: every ``import`` and
``from ... import`` statement anywhere in a module counts, at top level, inside a
function (a lazy import is still a dependency, only a hidden one) or under
``if TYPE_CHECKING:`` (a type that needs the other module is a dependency of the design
even if the interpreter never follows it). Relative imports are resolved against the
importing module's package. ``from a.b import c`` is an edge to the module ``a.b.c`` if
there is one, else to ``a.b``; the parent packages a statement makes Python initialise
are not edges of their own (a package's ``__init__`` importing its submodules would
otherwise close a cycle with every submodule that imports a sibling).

Every elementary cycle is printed, each edge with the line of its first import
statement. ``importlib.import_module("a.b")`` with a constant name counts too; a name
computed at run time cannot be seen. Exit status 1 if there is a cycle that is not on
:data:`KNOWN_CYCLES`, or an entry of that list that no longer exists (so the list stays
exactly today's cycles and shrinks as they are fixed); 0 otherwise.

    .venv/bin/python tools/import_cycles.py          # this repository
    .venv/bin/python tools/import_cycles.py ROOT     # another checkout
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Source folder -> the package it installs as (pyproject.toml's package-dir).
PACKAGES = {"model": "iomemfuzz.model", "fuzz": "iomemfuzz.fuzz"}

# Cycles in fuzz/ that existed when this tool was written and that are being removed on
# other branches; each is listed from its alphabetically first module, in import
# direction. model/ may have none: the tool refuses an entry that names a model module.
# Delete an entry when its cycle is gone (the tool fails until you do).
KNOWN_CYCLES: tuple[tuple[str, ...], ...] = ()


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the packages in PACKAGES: dotted name -> source file."""
    out = {}
    for folder, package in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
              modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ``modules`` that one import statement in module ``name`` names."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        # Relative: level 1 is the module's own package (a package is its own).
        package = name.split(".") if is_package else name.split(".")[:-1]
        if node.level > 1:
            package = package[:-(node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if candidate in modules else base


def _import_module_call(node: ast.Call) -> list[str]:
    """The module ``importlib.import_module("a.b")`` / ``import_module("a.b")`` names,
    when the name is a constant."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if called != "import_module" or len(node.args) != 1:
        return []
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
            and not arg.value.startswith("."):
        return [arg.value]
    return []


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Module -> {imported module: line of the first statement importing it}, for
    imports between the modules of ``modules`` only."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                targets: Iterable[str] = _import_module_call(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _imported(node, name, path.name == "__init__.py", modules)
            else:
                continue
            for target in targets:
                if target in modules and target != name:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[tuple[str, ...]]:
    """Every elementary cycle, each listed from its smallest module name, sorted.

    For each start module in name order, a depth-first search over modules that sort
    after it finds every simple path back to it; each cycle is found exactly once, from
    its smallest member. Exponential in the worst case, instant for import graphs."""
    found: list[tuple[str, ...]] = []
    for start in sorted(graph):
        path = [start]
        on_path = {start}

        def walk(node: str, start: str = start, path: list[str] = path,
                 on_path: set[str] = on_path) -> None:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(tuple(path))
                elif nxt > start and nxt not in on_path:
                    path.append(nxt)
                    on_path.add(nxt)
                    walk(nxt)
                    on_path.discard(path.pop())

        walk(start)
    return sorted(found)


def render(cycle: tuple[str, ...], graph: dict[str, dict[str, int]],
           modules: dict[str, Path], root: Path) -> str:
    hops = []
    for i, name in enumerate(cycle):
        nxt = cycle[(i + 1) % len(cycle)]
        where = modules[name].relative_to(root)
        hops.append(f"    {name} -> {nxt}  ({where}:{graph[name][nxt]})")
    return "\n".join(hops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT,
                        help="repository checkout (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    for known in KNOWN_CYCLES:
        if any(m.startswith(PACKAGES["model"] + ".") or m == PACKAGES["model"]
               for m in known):
            raise SystemExit(f"KNOWN_CYCLES may not excuse a model/ cycle: {known}")
    modules = module_files(root)
    graph = import_graph(modules)
    found = cycles(graph)
    new = [c for c in found if c not in KNOWN_CYCLES]
    stale = [c for c in KNOWN_CYCLES if c not in found]
    edges = sum(len(e) for e in graph.values())
    print(f"{len(modules)} modules, {edges} import edges, {len(found)} cycle(s)")
    for cycle in found:
        label = "known cycle (allow-listed, being fixed elsewhere)" if cycle in \
            KNOWN_CYCLES else "CYCLE"
        print(f"{label}: {' -> '.join((*cycle, cycle[0]))}")
        print(render(cycle, graph, modules, root))
    for cycle in stale:
        print(f"STALE allow-list entry (the cycle is gone; delete it from KNOWN_CYCLES): "
              f"{' -> '.join((*cycle, cycle[0]))}")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
