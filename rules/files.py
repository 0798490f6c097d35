"""The rules file: reading it, and the rules in force, reloaded when the file changes.

Parsing and deciding live in prefire.rules.ruleset, which takes text, so the live
proxy and replay share them; this module only adds the file (`prefire rules check |
explain` print in prefire.cli.rules, the proxy polls `reload_if_changed`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import structlog

from prefire.rules.loader import load_rules
from prefire.rules.ruleset import RulesError, RuleSet

log = structlog.get_logger(__name__)


def read_rules(path: Path) -> RuleSet:
    """Load and check a rules file; RulesError lists every problem as file:line: key: what."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError([f"{path}: cannot read: {reason}"]) from exc
    return load_rules(text, str(path))


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
