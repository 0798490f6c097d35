"""Feeds the live proxy's events to the pattern model and keeps its state on disk.

The snapshot is written atomically (temporary file, fsync, rename) by a
periodic task and at shutdown, never from the request path, so a crash leaves
the last good one. A snapshot that cannot be read is set aside, not fatal: the
proxy starts fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import structlog

from prefire.patterns import snapshot
from prefire.patterns.events import Event
from prefire.patterns.model import PatternModel
from prefire.proxy.state import atomic_write

log = structlog.get_logger(__name__)

SNAPSHOT_NAME = "patterns.json"


class Learner:
    def __init__(self, state_root: Path) -> None:
        self.path = state_root / SNAPSHOT_NAME
        self.model = self._load()
        self._dirty = False

    def _load(self) -> PatternModel:
        if not self.path.exists():
            return PatternModel()
        started = time.monotonic()
        try:
            model = snapshot.load(self.path.read_bytes())
        except (OSError, snapshot.SnapshotError, RecursionError, ArithmeticError) as exc:
            aside = self.path.with_suffix(f".bad-{int(time.time())}")
            log.warning(
                "patterns.snapshot_unreadable",
                file=str(self.path),
                error=str(exc),
                moved_to=str(aside),
            )
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            return PatternModel()
        log.info(
            "patterns.loaded", file=str(self.path), seconds=round(time.monotonic() - started, 3)
        )
        return model

    def __call__(self, event: Event) -> None:
        self.model.observe(event)
        self._dirty = True

    def take_snapshot(self) -> bytes | None:
        """The model's state if it changed since the last call (taken on the loop,
        where the model is mutated; writing it can happen elsewhere)."""
        if not self._dirty:
            return None
        self._dirty = False
        try:
            return snapshot.dump(self.model)
        except (TypeError, ValueError) as exc:  # a value orjson cannot write: keep the last file
            log.error("patterns.snapshot_failed", error=repr(exc))
            return None

    def write(self, data: bytes) -> None:
        """Replace the snapshot atomically: a crash or a full disk leaves the last good one."""
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            self._dirty = True
            log.error("patterns.save_failed", file=str(self.path), error=str(exc))

    def save(self) -> None:
        data = self.take_snapshot()
        if data is not None:
            self.write(data)

    async def save_periodically(self, every_s: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            data = self.take_snapshot()
            if data is not None:
                await asyncio.to_thread(self.write, data)
