"""Light modules stay light (presets, MIDI mappings and configurations load without PyTorch), and the
import graph has no cycles."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

LIGHT = [
    "lincae",
    "lincae.config",
    "lincae.presets",
    "lincae.io.mapping",
    "lincae.io.midi",
    "lincae.programs",
    "lincae.engine.params",
    "lincae.engine.config",
    "lincae.models",
    "lincae.models.config",
    "lincae.training.config",
]


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_with_torch_blocked(module: str) -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module}\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_blocker_does_block() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import lincae.models.autoencoder\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "torch is blocked" in done.stderr


# --------------------------------------------------------------------------- the import graph
# Every import statement of lincae and lincae_gui, at module level, inside functions and under
# ``if TYPE_CHECKING:``: an import moved into a function to dodge a cycle is the cycle still there.
# (``lint-imports`` checks the same graph against the layers written in pyproject.toml.)

Edge = tuple[str, str]


def _sources() -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package) for every module of lincae and lincae_gui (found, not imported)."""
    found: dict[str, tuple[Path, bool]] = {}
    for root in ("lincae", "lincae_gui"):
        spec = importlib.util.find_spec(root)
        assert spec is not None and spec.submodule_search_locations, f"{root} is not installed"
        base = Path(next(iter(spec.submodule_search_locations)))
        for path in base.rglob("*.py"):
            parts = [root, *path.relative_to(base).with_suffix("").parts]
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _imported(module: str, package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules of ``known`` an import statement of ``module`` names (``from p import m`` names ``p.m``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if package else module.split(".")[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, node.module] if node.level else [node.module or ""])
        subs = [f"{prefix}.{alias.name}" for alias in node.names if f"{prefix}.{alias.name}" in known]
        names = subs if len(subs) == len(node.names) else [prefix, *subs]
    found = []
    for name in names:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in known:
            found.append(name)
    return found


def import_graph(sources: dict[str, tuple[Path, bool]] | None = None) -> dict[Edge, list[str]]:
    """(importer, imported) → where (``file:line``), for every import statement between two modules."""
    sources = _sources() if sources is None else sources
    known = set(sources)
    edges: dict[Edge, list[str]] = {}
    for module, (path, package) in sources.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, package, node, known):
                    if target != module:
                        edges.setdefault((module, target), []).append(f"{path.name}:{node.lineno}")
    return edges


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_of(module: str) -> str:
    """``lincae.engine.effects.chain`` → ``lincae.engine``; the root ``lincae`` and ``lincae_gui`` stay whole."""
    if module.startswith("lincae_gui"):
        return "lincae_gui"
    return ".".join(module.split(".")[:2])


def _explain(components: list[list[str]], edges: dict[Edge, list[str]], key: Callable[[str], str]) -> str:
    lines = []
    for component in components:
        lines.append(" <-> ".join(component))
        for (a, b), where in sorted(edges.items()):
            if key(a) != key(b) and key(a) in component and key(b) in component:
                lines.append(f"    {a} -> {b} ({', '.join(where)})")
    return "\n".join(lines)


def test_no_import_cycles_between_packages() -> None:
    """lincae's packages (config, files, models, engine, io, presets, rig, cli, ...) and the GUI import each
    other one way only, counting the imports inside functions."""
    edges = import_graph()
    found = cycles((package_of(a), package_of(b)) for a, b in edges if package_of(a) != package_of(b))
    assert not found, "import cycles between packages:\n" + _explain(found, edges, package_of)


def test_no_import_cycles_between_modules() -> None:
    edges = import_graph()
    found = cycles(edges)
    assert not found, "import cycles between modules:\n" + _explain(found, edges, lambda m: m)


def test_the_graph_counts_imports_inside_functions_and_for_type_checking(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\n")
    (tmp_path / "c.py").write_text("import pkg.a\n")
    sources = {f"pkg.{n}": (tmp_path / f"{n}.py", False) for n in "abc"}
    edges = import_graph(sources)
    assert set(edges) == {("pkg.a", "pkg.b"), ("pkg.b", "pkg.a"), ("pkg.c", "pkg.a")}
    assert cycles(edges) == [["pkg.a", "pkg.b"]]
    # and the real graph holds the CLI's lazy imports, so the tests above are not vacuous
    assert ("lincae.cli", "lincae.rig") in import_graph()


def test_the_registry_names_every_family_by_its_class() -> None:
    """The registry builds families through FAMILY_CLASSES (import paths, not imports): each must name a
    LatentAutoencoder of that family."""
    from lincae.models.base import LatentAutoencoder
    from lincae.models.registry import FAMILY_CLASSES, FAMILY_FORMAT_VERSION, FAMILY_KEYS, family_class

    assert set(FAMILY_CLASSES) == set(FAMILY_KEYS) == set(FAMILY_FORMAT_VERSION)
    for family in FAMILY_CLASSES:
        cls = family_class(family)
        assert issubclass(cls, LatentAutoencoder) and cls.family == family
