"""The package's import graph: data flows load → prune → measure → report, and no two areas import each other.

Read from the source (every import, also those inside functions, except `if TYPE_CHECKING:` blocks), so a circle
shows up here even when Python's lazy imports would have hidden it at run time.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import greenprune

ROOT = Path(greenprune.__file__).resolve().parent
TOP = ("commands", "cli")  # the command line sits above every area


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.AST) -> list[str]:
    """Absolute greenprune imports of a module, skipping `if TYPE_CHECKING:` blocks."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("greenprune."):
            found.append(node.module or "")
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.startswith("greenprune."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        source, area = module, _area(module)
        if not area:  # greenprune/__init__.py re-exports everything
            continue
        for target in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            other = _area(target)
            if other and other != area:
                edges.setdefault((area, other), []).append(f"{source} imports {target}")
    return edges


def test_no_two_areas_import_each_other() -> None:
    edges = _edges()
    areas = sorted({a for pair in edges for a in pair})
    circles = [edges[(a, b)][:2] + edges[(b, a)][:2] for a, b in itertools.combinations(areas, 2)
               if (a, b) in edges and (b, a) in edges]
    assert circles == []


def test_nothing_below_the_command_line_imports_it() -> None:
    upward = [line for (area, other), lines in _edges().items() if other in TOP and area not in TOP
              for line in lines]
    assert upward == []


def test_the_report_reads_run_folders_without_the_recipe_package() -> None:
    assert ("report", "recipe") not in _edges()


def test_the_area_graph_has_no_circle_of_any_length() -> None:
    """Not only pairs: a → b → c → a is a circle too (depth-first search for a back edge)."""
    edges = _edges()
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert found == [], [" → ".join(c) + ": " + "; ".join(edges[(c[i], c[i + 1])][0] for i in range(len(c) - 1))
                         for c in found]
