"""The import floors (README "How it is built"): each package imports only from the floors
below it, patterns/ is pure, and no modules import each other in a cycle. Read from the
source (every import statement, lazy ones inside functions included), not by importing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package (its folder) -> the prefire packages it may import, itself always allowed
ALLOWED: dict[str, set[str]] = {
    "patterns": set(),
    "configs": set(),
    "rules": {"patterns"},
    "wire": {"patterns"},
    "proxy": {"patterns", "rules", "wire", "configs"},
    "replay": {"patterns", "rules", "wire", "configs"},
    "cli": {"patterns", "rules", "wire", "proxy", "replay", "configs"},
}
# patterns/ is shared verbatim by the live proxy and replay: no I/O loop, no network
PURE_FORBIDDEN = ("asyncio", "mitmproxy", "aiohttp", "redis", "socket", "threading")


def _modules() -> dict[str, Path]:
    """prefire module name -> its file, for every shipped package."""
    found: dict[str, Path] = {}
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(("prefire", *parts))] = path
    return found


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every module name an import statement in `path` names (relative ones resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from prefire.x import y` may name a module y
            yield from (f"{base}.{alias.name}" for alias in node.names)


MODULES = _modules()
GRAPH: dict[str, set[str]] = {
    name: {imp for imp in _imports(path, name) if imp in MODULES and imp != name}
    for name, path in MODULES.items()
}


def _package(module: str) -> str:
    return module.split(".")[1]


def test_every_package_is_found() -> None:
    assert {_package(m) for m in MODULES} == set(ALLOWED)
    assert "prefire.wire.providers.openai_chat" in MODULES


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_only_downwards(package: str) -> None:
    upward = sorted(
        f"{name} imports {imp}"
        for name, imports in GRAPH.items()
        if _package(name) == package
        for imp in imports
        if _package(imp) != package and _package(imp) not in ALLOWED[package]
    )
    assert not upward, "\n".join(upward)


def test_patterns_is_pure() -> None:
    bad = sorted(
        f"{name} imports {imp}"
        for name, path in MODULES.items()
        if _package(name) == "patterns"
        for imp in _imports(path, name)
        if imp.split(".")[0] in PURE_FORBIDDEN
    )
    assert not bad, "\n".join(bad)


def test_wire_and_rules_need_no_mitmproxy_nor_asyncio() -> None:
    bad = sorted(
        f"{name} imports {imp}"
        for name, path in MODULES.items()
        if _package(name) in ("wire", "rules")
        for imp in _imports(path, name)
        if imp.split(".")[0] in PURE_FORBIDDEN
    )
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    """Between modules, counting every import in a module body or function."""
    graph = GRAPH
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(cycles)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The AST reading finds lazy imports inside functions, which is how an arrow up hides."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from prefire.replay import live\n    return live\n")
    assert "prefire.replay.live" in set(_imports(source, "prefire.proxy.mod"))
