"""No function in proxy/ is longer than MAX_LINES (from its `def` to its last line):
one job each, readable in one screen."""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parent.parent / "proxy"
MAX_LINES = 60


def test_no_function_in_proxy_is_over_the_limit() -> None:
    long = []
    for path in sorted(PROXY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(PROXY.parent)}:{node.lineno} {node.name}")
    assert not long, f"functions over {MAX_LINES} lines (split them by job): {long}"
