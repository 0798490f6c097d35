"""The running proxy's rules follow the file; a broken edit keeps the last good rules."""

from __future__ import annotations

import os
from pathlib import Path

from prefire.rules.files import RulesWatcher

GOOD = "rules:\n  - match: {tool: 'get_*'}\n    prefire: true\n"
OTHER = "rules:\n  - match: {tool: 'list_*'}\n    prefire: true\n"


def touch(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_reload_and_broken_edit(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    w = RulesWatcher(path)
    assert w.current.decide("get_x").allowed and not w.current.decide("list_x").allowed
    assert not w.reload_if_changed()  # unchanged file: nothing to do
    touch(path, OTHER, 1)
    assert w.reload_if_changed()
    assert w.current.decide("list_x").allowed and not w.current.decide("get_x").allowed
    touch(path, "rules:\n  - match: {tool: 'get_*'}\n    prefire: sometimes\n", 2)
    assert not w.reload_if_changed()  # broken: the last good rules stay
    assert w.current.decide("list_x").allowed
    touch(path, GOOD, 3)
    assert w.reload_if_changed() and w.current.decide("get_x").allowed


def test_without_a_file_nothing_runs_early() -> None:
    w = RulesWatcher(None)
    assert not w.current.decide("get_weather").allowed
    assert not w.current.decide("search", annotations={"readOnlyHint": True}).allowed
