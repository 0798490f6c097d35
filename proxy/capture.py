"""Capture: normalized events as JSONL and raw flows as a `.mitm` file.

Both files are flushed after every record, so a killed process leaves them
valid up to the last complete record. Credentials are redacted in both.
"""

from __future__ import annotations

import hashlib
import os
import time
from io import BytesIO
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import structlog
from mitmproxy import http, io

from prefire.patterns.events import Event, to_record
from prefire.wire.sessions import SESSION_HEADERS, is_secret

log = structlog.get_logger(__name__)

REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """The URL with the values of secret-looking query parameters (?key=, ?api_key=,
    ?access_token=, ?sig= ...) replaced by REDACTED."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if is_secret(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _pseudonym(value: str) -> str:
    """A session id's stand-in: the same id gives the same stand-in (so replay can still
    link an MCP session's requests), and the id cannot be recovered from it."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:24]


def _redact_headers(headers: http.Headers) -> None:
    for name in {k.lower() for k in headers}:
        if name in SESSION_HEADERS:
            headers.set_all(name, [_pseudonym(v) for v in headers.get_all(name)])
        elif is_secret(name):
            headers.set_all(name, [REDACTED] * len(headers.get_all(name)))


def redacted_copy(flow: http.HTTPFlow) -> http.HTTPFlow:
    """A copy of the flow safe to write to disk: no credential values, in the request or
    the response (cookies, tokens, API keys, secret-looking query parameters)."""
    f = flow.copy()
    _redact_headers(f.request.headers)
    if f.request.query and any(is_secret(k) for k in f.request.query):
        f.request.url = redact_url(f.request.url)
    if f.response is not None:
        _redact_headers(f.response.headers)
    return f


class _Appender:
    """An append-only file that only ever holds whole records.

    Each record goes out in one unbuffered write. When a write fails part-way (a
    full disk, a file size limit), the file is cut back to the end of the last whole
    record, so a reader never meets a torn record, and later records are appended
    once there is room again. If even the cut fails, the file is left as it is and
    nothing more is written to it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = open(path, "ab", buffering=0)  # noqa: SIM115
        self._good = self._fh.tell()
        self.failures = 0

    def write(self, data: bytes) -> bool:
        fh = self._fh
        if fh is None:
            return False
        try:
            view = memoryview(data)
            while view:
                written = fh.write(view)
                view = view[written or 0 :]
        except OSError as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:
                log.error(
                    "capture.write_failed",
                    file=str(self.path),
                    error=str(exc),
                    failures=self.failures,
                )
            try:
                fh.truncate(self._good)
                fh.seek(self._good)
            except OSError as cut:
                log.error("capture.abandoned", file=str(self.path), error=str(cut))
                self.close()
            return False
        self._good += len(data)
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Capture:
    """Writes one events file and one flows file per run into `directory`.

    A record that cannot be written (a full disk) is dropped whole: the proxy and
    the agent's traffic go on, and both files stay readable to their last record.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.events_path = directory / f"events-{stem}.jsonl"
        self.flows_path = directory / f"flows-{stem}.mitm"
        self._events = _Appender(self.events_path)
        self._flows = _Appender(self.flows_path)

    def write_event(self, event: Event) -> None:
        record = to_record(event)
        if isinstance(record.get("url"), str):
            record["url"] = redact_url(record["url"])
        try:
            line = orjson.dumps(record, default=_jsonable) + b"\n"
        except TypeError as exc:  # e.g. a tool schema nested deeper than orjson writes
            log.warning("capture.event_unwritable", kind=event.kind, error=str(exc))
            return
        self._events.write(line)

    def write_flow(
        self,
        flow: http.HTTPFlow,
        body: bytes | None = None,
        chunk_times: list[list[float]] | None = None,
        truncated: bool = False,
    ) -> None:
        """Append a flow. A streamed response's body was not kept by mitmproxy, so the
        tap's recorded `body` and per-chunk [seconds since headers, size] go in here."""
        f = redacted_copy(flow)
        if body is not None and f.response is not None:
            f.response.raw_content = body
            f.metadata["prefire.chunks"] = chunk_times or []
            if truncated:
                f.metadata["prefire.truncated"] = True
        # Serialize first, then one write: a kill leaves whole records only.
        buf = BytesIO()
        io.FlowWriter(buf).add(f)
        self._flows.write(buf.getvalue())

    def close(self) -> None:
        self._events.close()
        self._flows.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
