"""The rules file at the I/O edge: reading it, and `prefire rules check | explain`.

Parsing and deciding live in prefire.patterns.rules, which takes text, so the live
proxy and replay share them; this module only adds the file and the terminal.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import structlog

from prefire.patterns.rules import Decision, RulesError, RuleSet, load_rules

log = structlog.get_logger(__name__)


def read_rules(path: Path) -> RuleSet:
    """Load and check a rules file; RulesError lists every problem as file:line: key: what."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError([f"{path}: cannot read: {reason}"]) from exc
    return load_rules(text, str(path))


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


class RulesWatcher:
    """The rules in force for the running proxy, reloaded when the file changes.

    A broken edit keeps the last good rules and says why in the log; fixing the
    file brings the new rules in. With no file, the packaged default applies
    (no rules: nothing runs early).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime: float | None = None
        self.current = read_rules(path) if path is not None else default_rules()
        if path is not None:
            self._mtime = _mtime(path)
        _warn(self.current)

    def reload_if_changed(self) -> bool:
        if self.path is None:
            return False
        mtime = _mtime(self.path)
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self.current = read_rules(self.path)
        except RulesError as exc:
            log.warning("rules.reload_failed", file=str(self.path), problems=exc.problems)
            return False
        log.info("rules.reloaded", file=str(self.path), rules=len(self.current.rules))
        _warn(self.current)
        return True

    async def watch(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.reload_if_changed()


def _warn(ruleset: RuleSet) -> None:
    for warning in ruleset.warnings:
        log.warning("rules.deprecated", file=ruleset.source, warning=warning)


def default_rules() -> RuleSet:
    text = resources.files("prefire.configs").joinpath("rules.yaml").read_text(encoding="utf-8")
    return load_rules(text, "prefire/configs/rules.yaml")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
