"""The package layout holds: no import circles, stages talk through public names, cheap ``import featx``.

The import graph is read with :mod:`ast` from every module of ``featx/`` and ``scratch_models/``,
imports inside functions included, so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("featx", "scratch_models")
#: shared by every stage; never imports a stage or the CLI
FOUNDATION = {
    "featx.errors", "featx.outputs", "featx.utils", "featx.constants", "featx.registry",
    "featx.data", "featx.store", "featx.preprocess", "featx.backbones", "featx.results", "featx.runtime",
}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for top in OURS:
        for p in sorted((root / top).rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (``from pkg import name`` counts as ``pkg.name``
    when that is a module, else as ``pkg``)."""
    mods = _modules(root)

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for a in node.names:
                    full = f"{source}.{a.name}"
                    targets.add(full if full in mods else source)
        graph[mod] = {t for t in map(known, (t for t in targets if t.split(".")[0] in OURS)) if t and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _area(mod: str) -> str:
    """``featx.fit.search`` -> ``featx.fit``; ``featx.build`` -> ``featx.build``; ``scratch_models.x`` -> ``scratch_models``."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "featx" and len(parts) > 1 else parts[0]


def _stages(mods) -> set[str]:
    areas = {_area(m) for m in mods if m.startswith("featx.")}
    return areas - FOUNDATION - {"featx.cli", "featx.__main__"}


def violations(graph: dict[str, set[str]]) -> list[str]:
    stages = _stages(graph)
    found = []
    for src, targets in sorted(graph.items()):
        a = _area(src)
        for dst in sorted(targets):
            b = _area(dst)
            if b == "featx.cli" and a not in ("featx.cli", "featx.__main__"):
                found.append(f"{src} imports the CLI ({dst})")
            elif b in stages and a != b and dst != b:
                found.append(f"{src} imports {dst}, an internal module of the {b} stage (use `from {b} import ...`)")
            elif a in FOUNDATION and (b in stages or b == "featx.cli"):
                found.append(f"{src} (shared foundation) imports the stage {dst}")
    return found


def test_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "featx"
    (pkg / "fit").mkdir(parents=True)
    (pkg / "train").mkdir()
    (tmp_path / "scratch_models").mkdir()
    (tmp_path / "scratch_models" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "fit" / "__init__.py").write_text("from .core import go\n")
    (pkg / "fit" / "core.py").write_text("def go():\n    from featx.train.loop import run\n")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "loop.py").write_text("def run():\n    import featx.fit.core\n")
    (pkg / "cli").mkdir()
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "store.py").write_text("from featx.cli import main\n")
    g = import_graph(tmp_path)
    assert g["featx.fit"] == {"featx.fit.core"}
    assert cycles(g) == [["featx.fit.core", "featx.train.loop"]]
    v = violations(g)
    assert any("featx.fit.core imports featx.train.loop" in x for x in v)
    assert any("featx.train.loop imports featx.fit.core" in x for x in v)
    assert any("featx.store imports the CLI" in x for x in v)


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_stages_use_each_other_only_through_public_names():
    assert violations(import_graph()) == []


def test_few_modules_at_the_top_of_featx():
    top = sorted(p.name for p in (ROOT / "featx").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 8, top


def test_import_featx_imports_neither_tensorflow_nor_sklearn():
    code = (
        "import featx, sys; names = featx.__all__; "
        "bad = [m for m in ('tensorflow', 'sklearn', 'keras', 'jax', 'torch') if m in sys.modules]; "
        "print(len(names), bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 10 and out[1] == "[]", out


@pytest.mark.parametrize("name", ["build_images", "extract_features", "fit_features", "predict_images",
                                  "train_model", "evaluate_model", "make_report"])
def test_api_names_resolve(name):
    import featx

    assert name in featx.__all__
    assert callable(getattr(featx, name))
