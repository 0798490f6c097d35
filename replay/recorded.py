"""Recorded exchanges for live playback: read from `.mitm` files (and HAR) with their
timings, and the key a request is matched by.

The key follows mitmproxy's server playback (`mitmproxy/addons/serverplayback.py`):
scheme, method, host, port, path, query pairs in order and the body, with two changes
for this traffic: a JSON body counts by its canonical form (sorted keys), and a
JSON-RPC message counts without its `id` and `params._meta` (prefire's own MCP calls
carry their own id; the recorded answer is sent back under the id asked for).

A `.mitm` file is a run of tnetstring records, one per flow. A record that cannot be
read is reported by its number, its byte range and, when it can be found, its flow id;
reading resumes at the next record that can be read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from mitmproxy import exceptions, flow, http
from mitmproxy import io as mitm_io
from mitmproxy.io import compat, tnetstring

from prefire.patterns.canonical import canonical
from prefire.replay.errors import InputError

_RECORD_HEAD = re.compile(rb"(\d{1,12}):")
_FLOW_ID = re.compile(rb"2:id;36:([0-9a-f-]{36});4:type;")
# request headers the playback client does not repeat: its own connection sets them
HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "upgrade",
        "expect",
    }
)


@dataclass(slots=True)
class Recorded:
    """One recorded request and what answered it, with its timings (seconds, wall clock)."""

    file: str
    number: int  # the flow's position in its file, from 1
    flow_id: str
    method: str
    url: str
    scheme: str
    host: str
    port: int
    path: str  # with the query
    headers: list[tuple[str, str]]
    body: bytes  # as sent (content-encoded if it was)
    content: bytes  # decoded
    key: bytes
    t_start: float
    t_sent: float  # the whole request had reached the proxy
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""  # as received (content-encoded if it was)
    chunks: list[tuple[float, int]] | None = None  # (seconds after the headers, size)
    t_headers: float | None = None
    t_end: float | None = None
    error: str | None = None
    served: str | None = None  # answered by prefire's speculation when it was captured
    truncated: bool = False
    jsonrpc_id: Any = None
    tool: str | None = None  # the MCP tool a tools/call runs
    flow: http.HTTPFlow | None = field(default=None, repr=False, compare=False)

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def streamed(self) -> bool:
        return self.chunks is not None

    @property
    def background(self) -> bool:
        """A server-push channel (an MCP or SSE GET stream): replayed, but nothing waits
        for it and it does not count towards completion times."""
        ctype = _header(self.response_headers, "content-type") or ""
        return self.method == "GET" and ctype.startswith("text/event-stream")

    @property
    def duration_s(self) -> float:
        """From the request to the end of its response (or its error)."""
        end = self.t_end if self.t_end is not None else self.t_sent
        return max(0.0, end - self.t_start)


def authority(host_header: str, scheme: str) -> tuple[str, int]:
    """(host, port) from a Host header value, with the scheme's default port."""
    default = 443 if scheme == "https" else 80
    text = host_header.strip().lower()
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    try:
        return host, int(port) if port else default
    except ValueError:
        return text, default


def playback_key(
    scheme: str, method: str, host: str, port: int, path: str, content: bytes
) -> bytes:
    parts = urlsplit(path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    body = body_key(content)
    ident = [scheme.lower(), method.upper(), parts.path, host.lower(), port, query, body]
    return hashlib.sha256(canonical(ident)).digest()


def body_key(content: bytes) -> Any:
    if not content:
        return None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ["raw", hashlib.sha256(content).hexdigest()]
    if isinstance(value, dict) and "jsonrpc" in value:
        value = _without_id(value)
    elif isinstance(value, list) and all(isinstance(v, dict) and "jsonrpc" in v for v in value):
        value = [_without_id(v) for v in value]
    return ["json", value]


def _without_id(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "id"}
    params = out.get("params")
    if isinstance(params, dict) and "_meta" in params:
        out["params"] = {k: v for k, v in params.items() if k != "_meta"}
    return out


def jsonrpc_request(content: bytes) -> tuple[Any, str | None] | None:
    """(id, tool name of a tools/call) of a single JSON-RPC request, or None."""
    try:
        value = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or "jsonrpc" not in value or "id" not in value:
        return None
    tool = None
    params = value.get("params")
    if value.get("method") == "tools/call" and isinstance(params, dict):
        name = params.get("name")
        tool = name if isinstance(name, str) else None
    return value["id"], tool


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


# -- reading --------------------------------------------------------------------------


def read_file(path: Path) -> Iterator[Recorded | InputError]:
    """The HTTP flows of one `.mitm` (or HAR) file in file order, and an InputError for
    each flow that cannot be read or used; the others are still read."""
    data = path.read_bytes()
    if data.lstrip(b"\xef\xbb\xbf \r\n\t")[:1] == b"{":
        yield from _read_har(path, data)
        return
    for number, item in _records(data):
        if isinstance(item, str):
            yield InputError(str(path), number, item)
            continue
        yield from _recorded(path, number, item)


def _read_har(path: Path, data: bytes) -> Iterator[Recorded | InputError]:
    import io

    try:
        flows = list(mitm_io.FlowReader(io.BytesIO(data)).stream())
    except exceptions.FlowReadException as exc:
        yield InputError(str(path), 1, f"cannot be read as HAR: {exc}")
        return
    for number, f in enumerate(flows, 1):
        yield from _recorded(path, number, f)


def _records(data: bytes) -> Iterator[tuple[int, flow.Flow | str]]:
    pos, number = 0, 0
    while pos < len(data):
        if not data[pos:].strip():
            return
        number += 1
        end = _record_end(data, pos)
        if end is None:
            nxt = _resync(data, pos + 1)
            m = _RECORD_HEAD.match(data, pos)
            cut = m is not None and m.end() + int(m.group(1)) >= len(data)
            why = "the file ends inside it" if cut else "its length prefix is damaged"
            yield number, _unreadable(data, number, pos, nxt, why)
            pos = nxt
            continue
        try:
            yield number, _parse(data[pos:end])
        except Exception as exc:  # any damage inside a whole record: skip just that record
            why = (str(exc) or type(exc).__name__).split(":")[0][:80]
            yield number, _unreadable(data, number, pos, end, why)
        pos = end


def _record_end(data: bytes, pos: int) -> int | None:
    """Where the record at `pos` ends, if its length prefix and end marker are intact."""
    m = _RECORD_HEAD.match(data, pos)
    if m is None:
        return None
    end = m.end() + int(m.group(1))
    if end >= len(data) or data[end : end + 1] != b"}":
        return None
    return end + 1


def _parse(record: bytes) -> flow.Flow:
    value = tnetstring.loads(record)
    if not isinstance(value, dict):
        raise ValueError("not a flow record")
    return flow.Flow.from_state(compat.migrate_flow(value))


def _resync(data: bytes, start: int) -> int:
    """The next position from `start` where a whole record can be read, or the end."""
    pos = data.find(b"}", start - 1)
    while pos != -1 and pos + 1 < len(data):
        candidate = pos + 1
        end = _record_end(data, candidate)
        if end is not None:
            try:
                _parse(data[candidate:end])
                return candidate
            except Exception:
                pass
        pos = data.find(b"}", candidate)
    return len(data)


def _unreadable(data: bytes, number: int, start: int, end: int, why: str) -> str:
    ids = [m.group(1) for m in _FLOW_ID.finditer(data, start, end)]
    named = f" (id {ids[-1].decode()})" if ids else ""
    skipped = f"bytes {start}-{end}" + (", to the end of the file" if end >= len(data) else "")
    return f"flow {number}{named} cannot be read ({why}); skipped {skipped}"


def _recorded(path: Path, number: int, f: flow.Flow) -> Iterator[Recorded | InputError]:
    if not isinstance(f, http.HTTPFlow):
        yield InputError(str(path), number, f"flow {f.id}: a {f.type} flow, not replayed")
        return
    if f.websocket is not None:
        yield InputError(str(path), number, f"flow {f.id}: a WebSocket, not replayed")
        return
    req = f.request
    try:
        content = req.get_content() or b""
    except ValueError as exc:
        yield InputError(str(path), number, f"flow {f.id}: request body cannot be decoded: {exc}")
        content = req.raw_content or b""
    host, port = authority(req.host_header or f"{req.host}:{req.port}", req.scheme)
    rpc = jsonrpc_request(content)
    rec = Recorded(
        file=str(path),
        number=number,
        flow_id=f.id,
        method=req.method,
        url=req.url,
        scheme=req.scheme,
        host=host,
        port=port,
        path=req.path,
        headers=[(k, v) for k, v in req.headers.items(multi=True)],
        body=req.raw_content or b"",
        content=content,
        key=playback_key(req.scheme, req.method, host, port, req.path, content),
        t_start=req.timestamp_start,
        t_sent=req.timestamp_end or req.timestamp_start,
        jsonrpc_id=rpc[0] if rpc else None,
        tool=rpc[1] if rpc else None,
        served=f.metadata.get("prefire.served"),
        truncated=bool(f.metadata.get("prefire.truncated")),
        flow=f,
    )
    resp = f.response
    if f.error is not None:
        rec.error = f.error.msg
        rec.t_end = f.error.timestamp
    if resp is not None:
        rec.status = resp.status_code
        rec.response_headers = [(k, v) for k, v in resp.headers.items(multi=True)]
        rec.response_body = resp.raw_content or b""
        rec.t_headers = resp.timestamp_start
        chunks = f.metadata.get("prefire.chunks")
        if chunks is not None:
            rec.chunks = [(float(o), int(n)) for o, n in chunks]
        last_chunk = resp.timestamp_start + (rec.chunks[-1][0] if rec.chunks else 0.0)
        # a client that stops reading a finished stream leaves no end time: the last chunk
        rec.t_end = resp.timestamp_end or max(last_chunk, resp.timestamp_start)
    elif rec.t_end is None:
        rec.t_end = rec.t_sent
    yield rec
