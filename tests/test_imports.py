"""Layering: each module imports only the layers below it (models -> rules -> render -> write -> commands),
so there is no import circle and every module imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dativo_ingest

PACKAGE = Path(dativo_ingest.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))

# Circles left to break, each as the set of modules in it (none).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _imports(module: str) -> set[str]:
    """Every package module `module` imports, at the top, inside functions or for type checking only."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dativo_ingest":
                found.update(a.name for a in node.names if a.name in MODULES)
            elif node.module.startswith("dativo_ingest."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("dativo_ingest."))
    found.discard(module)
    return found & set(MODULES)


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_circles():
    graph = {m: _imports(m) for m in MODULES}
    assert _cycles(graph) - KNOWN_CYCLES == set()


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


def test_the_bottom_layers_import_nothing_above_them():
    assert _imports("defaults") == set()
    assert _imports("errors") == set()
    for helper in ("paths", "values"):  # value and path rules the models use
        assert _imports(helper) <= {"defaults", "errors", "validation", "yamlsource", "paths"}, helper
    for model in ("config", "settings"):
        assert _imports(model) <= {"defaults", "errors", "validation", "yamlsource", "config", "regions", "paths",
                                   "values"}, model


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module):
    proc = subprocess.run([sys.executable, "-c", f"import dativo_ingest.{module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
