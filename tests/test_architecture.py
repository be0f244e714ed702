"""The layout a reader sees is the layout the imports keep: read from the source itself.

Every import counts, also those inside functions (a lazy import is still a dependency); only
imports under `if TYPE_CHECKING:` are left out, as they never run.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "spotme_hub"

#: The lower layers: they import nothing above them.
LOWER = ("clock", "cards", "record", "schedule", "config", "yamlsource", "normalize", "store")
ABOVE = (
    "adapters",
    "api",
    "forward",
    "attendance",
    "pipeline",
    "cli",
    "service",
    "registry",
    "contract",
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path) -> set[str]:
    """The spotme_hub modules `path` imports (absolute names)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("spotme_hub"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("spotme_hub"):
                continue
            out.add(target)
            for alias in node.names:  # `from . import wire` imports a module
                if (
                    (ROOT.parent / Path(*f"{target}.{alias.name}".split(".")))
                    .with_suffix(".py")
                    .exists()
                ):
                    out.add(f"{target}.{alias.name}")
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def area(module: str) -> str:
    """The room a module belongs to: a top-level module or package, an adapter kind's folder."""
    parts = module.split(".")[1:]
    if not parts:
        return "spotme_hub"
    if parts[0] == "adapters" and len(parts) > 1:
        return f"adapters.{parts[1]}"
    return parts[0]


def test_the_scanner_sees_imports() -> None:
    """The checks below rely on the scanner: it must find known edges of every form."""
    g = graph()
    assert "spotme_hub.store" in g["spotme_hub.pipeline.runtime"]  # from ..store import
    assert "spotme_hub.adapters.zkteco_adms.db" in g["spotme_hub.adapters.zkteco_adms.routes"]
    assert "spotme_hub.adapters.serial.osdp" in g["spotme_hub.adapters.serial.adapter"]  # lazy
    assert "spotme_hub.pipeline.runtime" not in g["spotme_hub.api.app"]  # TYPE_CHECKING only


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_import_nothing_above_them(lower: str) -> None:
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in graph().items()
        if area(mod) == lower
        for dep in deps
        if area(dep).split(".")[0] in ABOVE
    ]
    assert not bad, "\n".join(bad)


def test_no_part_reaches_into_an_adapter() -> None:
    """Only the registry (by entry-point path) and the kind itself know an adapter's modules;
    the rest of the hub meets a kind through the contract."""
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in graph().items()
        for dep in deps
        if area(dep).startswith("adapters.") and area(mod) != area(dep)
    ]
    assert not bad, "\n".join(bad)


def test_no_cycles_between_parts() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, deps in graph().items():
        for dep in deps:
            if area(dep) != area(mod) and area(dep) != "spotme_hub":
                edges[area(mod)].add(area(dep))
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_no_cycles_inside_a_part_at_import_time() -> None:
    """Module-level imports inside one part form no cycle (a lazy import inside a function may
    point back, as an adapter's classmethod does to its routes)."""
    edges: dict[str, set[str]] = defaultdict(set)
    modules = {module_name(q) for q in ROOT.rglob("*.py")}
    for p in ROOT.rglob("*.py"):
        mod = module_name(p)
        tree = ast.parse(p.read_text(encoding="utf-8"))
        package = mod if p.name == "__init__.py" else mod.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{target}.{a.name}" for a in node.names]
                for t in [target, *names]:
                    own_package = p.name != "__init__.py" and t == package
                    if t in modules and t != mod and area(t) == area(mod) and not own_package:
                        edges[mod].add(t)
    seen: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                cycles.append(" → ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)
