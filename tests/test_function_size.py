"""No function in the shipped packages (patterns, rules, wire, replay, cli), nor in the
benchmarks, is longer than MAX_LINES, so each says one thing. Read from the source with
ast, like the import floors.

Argument-parser tables are exempt by name (PARSER_TABLES): a long list of add_argument
calls is a table, not logic. LONG_FUNCTIONS lists the functions still over the limit, to
be split and removed from it; both lists are checked to stay true (a listed function that
is gone or has become short must leave its list), so they can only shrink."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("patterns", "rules", "wire", "replay", "cli", "bench")
MAX_LINES = 60
# "path:function" of argument-parser tables
PARSER_TABLES = {"cli/main.py:build_parser"}
# "path:function" still over the limit (to shrink; none now)
LONG_FUNCTIONS: set[str] = set()


def _lengths() -> dict[str, int]:
    """'path:qualified.name' -> lines from `def` to the function's last line."""
    out: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            _walk(ast.parse(path.read_text(encoding="utf-8")), rel, "", out)
    return out


def _walk(node: ast.AST, rel: str, prefix: str, out: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + child.name
            if not isinstance(child, ast.ClassDef):
                assert child.end_lineno is not None
                out[f"{rel}:{name}"] = child.end_lineno - child.lineno + 1
            _walk(child, rel, name + ".", out)
        else:
            _walk(child, rel, prefix, out)


def test_no_function_in_shipped_code_is_over_the_limit() -> None:
    lengths = _lengths()
    assert lengths, "no function found: the package list is wrong"
    long = {
        f"{where} is {n} lines (limit {MAX_LINES}): split it"
        for where, n in lengths.items()
        if n > MAX_LINES and where not in PARSER_TABLES | LONG_FUNCTIONS
    }
    assert not long, "\n".join(sorted(long))


def test_the_exceptions_are_still_true() -> None:
    lengths = _lengths()
    for where in PARSER_TABLES | LONG_FUNCTIONS:
        assert where in lengths, f"{where}: no such function any more; drop it from the list"
        assert lengths[where] > MAX_LINES, (
            f"{where} is {lengths[where]} lines now, within the limit: drop it from the list"
        )


def test_the_check_sees_a_long_function() -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES))
    out: dict[str, int] = {}
    _walk(ast.parse(f"class C:\n    def f(self):\n{body}"), "m.py", "", out)
    assert out == {"m.py:C.f": MAX_LINES + 1}
