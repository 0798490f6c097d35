"""Events from mitmproxy flow files (.mitm, HAR), through the live proxy's Observer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mitmproxy import exceptions, http
from mitmproxy import io as mitm_io

from prefire.patterns.events import Event
from prefire.replay.errors import InputError
from prefire.wire.observer import Exchange, Observer


def flow_events(path: Path) -> Iterator[Event | InputError]:
    out: list[Event] = []
    observer = Observer()
    n = 0
    with path.open("rb") as fh:
        reader = mitm_io.FlowReader(fh)
        try:
            for n, flow in enumerate(reader.stream(), 1):
                if isinstance(flow, http.HTTPFlow):
                    try:
                        observe_flow(observer, flow, out)
                    except ValueError as exc:  # a body that cannot be decoded
                        observer.forget(flow.id)
                        yield InputError(str(path), n, f"flow {flow.id}: {exc}")
                yield from out
                out.clear()
        except exceptions.FlowReadException as exc:
            yield InputError(
                str(path), n + 1, f"flow {n + 1} cannot be read: {exc}; flows after it are lost"
            )


def observe_flow(observer: Observer, flow: http.HTTPFlow, out: list[Event]) -> Exchange | None:
    """Feed one recorded flow to the observer, request then response, adding the events
    to `out` as they come; the exchange it opened (None when the request is not one
    prefire follows). ValueError: a body that cannot be decoded (the events before it are
    in `out`)."""
    req = flow.request
    body = req.get_content() if req.raw_content is not None else b""
    out += observer.request(
        flow.id,
        req.method,
        req.url,
        req.path,
        req.headers.items(multi=True),
        body or b"",
        req.timestamp_start,
    )
    ex = observer.exchange(flow.id)
    resp = flow.response
    if ex is None or resp is None:
        observer.forget(flow.id)
        return ex
    ctype = resp.headers.get("content-type", "")
    content = resp.get_content() if resp.raw_content is not None else None
    end = resp.timestamp_end or resp.timestamp_start
    if ctype.startswith("text/event-stream") or ex.wants_stream:
        if observer.stream(flow.id, resp.status_code) and content is not None:
            for data, t in _chunks(flow, content):
                out += observer.chunk(flow.id, data, t)
        out += observer.response(flow.id, resp.status_code, ctype, None, end)
    else:
        out += observer.response(flow.id, resp.status_code, ctype, content, end)
    return ex


def _chunks(flow: http.HTTPFlow, content: bytes) -> Iterator[tuple[bytes, float]]:
    """The body as it arrived, chunk by chunk with arrival times, where the capture
    recorded them and the body was not content-encoded; else whole, at the end."""
    resp = flow.response
    assert resp is not None
    recorded = flow.metadata.get("prefire.chunks")
    if recorded and "content-encoding" not in resp.headers:
        pos = 0
        for offset, size in recorded:
            yield content[pos : pos + int(size)], resp.timestamp_start + float(offset)
            pos += int(size)
        if pos < len(content):
            yield content[pos:], resp.timestamp_end or resp.timestamp_start
        return
    yield content, resp.timestamp_end or resp.timestamp_start
