"""Capture: normalized events as JSONL and raw flows as a `.mitm` file.

Both files are flushed after every record, so a killed process leaves them
valid up to the last complete record. Credentials are redacted in both.
"""

from __future__ import annotations

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
from prefire.proxy.sessions import CREDENTIAL_HEADERS, CREDENTIAL_QUERY_KEYS

log = structlog.get_logger(__name__)

REDACTED = "REDACTED"
_REQUEST_SECRET_HEADERS = (*CREDENTIAL_HEADERS, "cookie")
_RESPONSE_SECRET_HEADERS = ("set-cookie",)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if k.lower() in CREDENTIAL_QUERY_KEYS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redacted_copy(flow: http.HTTPFlow) -> http.HTTPFlow:
    """A copy of the flow safe to write to disk: no credential values."""
    f = flow.copy()
    for name in _REQUEST_SECRET_HEADERS:
        if name in f.request.headers:
            f.request.headers[name] = REDACTED
    if f.request.query and any(k.lower() in CREDENTIAL_QUERY_KEYS for k in f.request.query):
        f.request.url = redact_url(f.request.url)
    if f.response is not None:
        for name in _RESPONSE_SECRET_HEADERS:
            if name in f.response.headers:
                f.response.headers[name] = REDACTED
    return f


class Capture:
    """Writes one events file and one flows file per run into `directory`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.events_path = directory / f"events-{stem}.jsonl"
        self.flows_path = directory / f"flows-{stem}.mitm"
        self._events: IO[bytes] | None = open(self.events_path, "ab")  # noqa: SIM115
        self._flows: IO[bytes] | None = open(self.flows_path, "ab")  # noqa: SIM115

    def write_event(self, event: Event) -> None:
        record = to_record(event)
        if isinstance(record.get("url"), str):
            record["url"] = redact_url(record["url"])
        self._write(self._events, orjson.dumps(record, default=_jsonable) + b"\n")

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
        self._write(self._flows, buf.getvalue())

    def _write(self, fh: IO[bytes] | None, data: bytes) -> None:
        if fh is None:
            return
        try:
            fh.write(data)
            fh.flush()
        except OSError as exc:
            # A full disk must not stop the proxy; the agent's traffic is unaffected.
            log.error("capture.write_failed", file=fh.name, error=str(exc))

    def close(self) -> None:
        for fh in (self._events, self._flows):
            if fh is not None:
                fh.close()
        self._events = self._flows = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
