"""The station's shape, checked: import-linter's contracts, no import circle, a flat engine, short files, and an
engine that runs without Qt."""

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "widgets", "engine")
MAX_ENGINE_MODULES = 8  # engine/*.py; everything else lives in a capability's package
MAX_LINES = 600
# Circles tolerated, each exactly as it stands; any other circle, or one of these grown, fails. None today.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def test_import_contracts_hold():
    out = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                          "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 6 kept, 0 broken" in out.stdout


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of two or more modules that import one another, directly or not (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[module] = min(low[module], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        group.append(m)
                        if m == module:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def _describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    """One circle through the group, each step with the line that imports."""
    start = group[0]
    back = min((graph.find_shortest_chain(importer=nxt, imported=start) or () for nxt in
                graph.find_modules_directly_imported_by(start) if nxt in group), key=len)
    chain = [start, *back]
    steps = []
    for a, b in zip(chain, chain[1:]):
        lines = sorted({d["line_number"] for d in graph.get_import_details(importer=a, imported=b)})
        steps.append(f"{a} -> {b} (line {', '.join(map(str, lines))})")
    return f"{len(group)} modules: " + "; ".join(steps)


def test_no_import_circle_among_the_stations_modules():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    circles = [g for g in _strongly_connected(graph) if frozenset(g) not in KNOWN_CIRCLES]
    assert not circles, "import circles:\n" + "\n".join(_describe(graph, g) for g in circles)


def test_the_circle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.d", "p.e")):
        graph.add_import(importer=a, imported=b, line_number=1, line_contents=f"import {b}")
    assert _strongly_connected(graph) == [["p.a", "p.b", "p.c"]]


def test_the_engine_keeps_its_modules_in_its_capability_packages():
    loose = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(loose) <= MAX_ENGINE_MODULES, f"{len(loose)} modules directly in engine/: {', '.join(loose)}"


def test_no_source_file_is_longer_than_600_lines():
    long = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in (".py", ".cu") and "__pycache__" not in path.parts:
                n = len(path.read_text(encoding="utf-8").splitlines())
                if n > MAX_LINES:
                    long[path.relative_to(ROOT).as_posix()] = n
    assert not long, f"over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for p, n in long.items())


def test_the_engine_imports_no_qt_module():
    code = ("import sys, pkgutil, importlib, engine\n"
            "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
            "('PySide6', 'shiboken6', 'pyqtgraph', 'superqt', 'app', 'widgets'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
