"""Feeds the live proxy's events to the pattern model and keeps its state on disk.

The snapshot is written atomically (temporary file, fsync, rename) by a
periodic task and at shutdown, never from the request path, so a crash leaves
the last good one. A snapshot that cannot be read is set aside, not fatal: the
proxy starts fresh.

With a shared store, other replicas' events arrive here too (`remote`), and the
position in the shared
stream is saved beside the snapshot (`patterns.stream.json`), so that a restart
neither misses nor repeats the events the snapshot already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import orjson
import structlog

from prefire.patterns import snapshot
from prefire.patterns.events import Event
from prefire.patterns.model import PatternModel
from prefire.proxy.state import atomic_write

log = structlog.get_logger(__name__)

SNAPSHOT_NAME = "patterns.json"
POSITION_NAME = "patterns.stream.json"


class Learner:
    def __init__(self, state_root: Path, store_id: str = "") -> None:
        self.path = state_root / SNAPSHOT_NAME
        self.model = self._load()
        self._dirty = False
        # where this model stands in a shared store's event stream ("0": nothing read yet)
        self.store_id = store_id
        self.position = self._load_position() if store_id and self.path.exists() else "0"
        self._saved_position = self.position
        self.remote_events = 0

    def _load_position(self) -> str:
        try:
            saved = orjson.loads((self.path.parent / POSITION_NAME).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return "0"
        if not isinstance(saved, dict) or saved.get("store") != self.store_id:
            return "0"
        return str(saved.get("position") or "0")

    def _load(self) -> PatternModel:
        if not self.path.exists():
            return PatternModel()
        started = time.monotonic()
        try:
            model = snapshot.load(self.path.read_bytes())
        except (OSError, snapshot.SnapshotError, ArithmeticError) as exc:
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

    def remote(self, events: list[Event], position: str) -> None:
        """Events other replicas observed, up to `position` in the shared stream, their
        sessions already named as this replica names them (proxy/store/names.py `localize`):
        a conversation this replica never saw stays apart from local ones, one it shares
        with another replica continues, and what is learned per application (scope and
        toolset) merges."""
        for event in events:
            try:
                self.model.observe(event)
            except Exception as exc:  # one odd record must not stop learning from the rest
                log.warning("patterns.remote_event_failed", kind=event.kind, error=repr(exc))
                continue
            self.remote_events += 1
        self.position = position
        self._dirty = True

    def take_snapshot(self) -> bytes | None:
        """The model's state if it changed since the last call (taken on the loop,
        where the model is mutated; writing it can happen elsewhere)."""
        if not self._dirty:
            return None
        self._dirty = False
        self._saved_position = self.position
        try:
            return snapshot.dump(self.model)
        except (TypeError, ValueError) as exc:  # a value orjson cannot write: keep the last file
            log.error("patterns.snapshot_failed", error=repr(exc))
            return None

    def write(self, data: bytes) -> None:
        """Replace the snapshot atomically: a crash or a full disk leaves the last good one."""
        if self.store_id:
            # first: if we crash between the two, a few remote events are missed, not repeated
            position = {"store": self.store_id, "position": self._saved_position}
            self._write_file(self.path.parent / POSITION_NAME, orjson.dumps(position))
        self._write_file(self.path, data)

    def _write_file(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, data)
        except OSError as exc:
            self._dirty = True
            log.error("patterns.save_failed", file=str(path), error=str(exc))

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
