"""`prefire rules check | explain`: a rules file's problems, and which rule decides a tool."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from prefire.rules.files import read_rules
from prefire.rules.ruleset import Decision, RulesError


def check(path: Path, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        ruleset = read_rules(path)
    except RulesError as exc:
        print(exc, file=err)
        return 1
    for warning in ruleset.warnings:
        print(f"warning: {warning}", file=err)
    print(f"{path}: {len(ruleset.rules)} rules OK", file=out)
    return 0


def explain(
    path: Path,
    tool: str,
    annotations: Mapping[str, Any] | None = None,
    servers: Sequence[str] = (),
    method: str | None = None,
    host: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    try:
        ruleset = read_rules(path)
    except RulesError as exc:
        print(exc, file=err)
        return 1
    decision = ruleset.decide(tool, servers, annotations, method, host)
    out.write(format_decision(decision, tool, str(path)))
    return 0


def format_decision(decision: Decision, tool: str, source: str) -> str:
    """The deciding rule as written and why, then why each earlier rule did not match
    (the usual surprise is an earlier rule catching the tool, or one never reached)."""
    lines: list[str] = []
    rule = decision.rule
    if rule is None:
        lines.append(decision.reason)
    else:
        verdict = "may run early" if decision.allowed else "may not run early"
        lines.append(f"{tool} {verdict}: rule {rule.index + 1} at {source}:{rule.line} decides")
        lines.extend(f"    {text_line}" for text_line in rule.text.splitlines())
        lines.append(f"why: {decision.reason}")
        if decision.allowed:
            lines.append(
                f"ttl {rule.ttl:g}s, served at most {rule.reuse} time(s), "
                f"a wasted early call costs {rule.cost:g}s"
            )
            if rule.session == "agent":
                lines.append("an early MCP call runs in the conversation's own MCP session")
        if rule.invalidates:
            lines.append(f"a call to it drops cached results of: {', '.join(rule.invalidates)}")
        if rule.shared_learning:
            lines.append("where its arguments come from is learned across scopes (tenants)")
    if decision.skipped:
        lines.append("rules that did not match:")
        lines.extend(
            f"  rule {r.index + 1} at {source}:{r.line}: {why}" for r, why in decision.skipped
        )
    return "\n".join(lines) + "\n"
