"""structlog set-up: key-value lines on stderr (stdout is for the proxy's own announcements)."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO

import structlog


class _SafeStream:
    """stderr for log lines that never raises: a full disk under `2>> prefire.log`, or a
    closed pipe, loses log lines, never a request."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost = 0

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            self.lost += 1
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def configure(fmt: str = "console", level: int = logging.INFO) -> None:
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # _SafeStream has the write/flush that PrintLogger uses
        logger_factory=structlog.PrintLoggerFactory(_SafeStream(sys.stderr)),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # mitmproxy logs through the stdlib; keep its warnings, drop per-connection chatter.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s"
    )
