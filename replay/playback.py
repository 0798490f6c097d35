"""Playback servers: answer recorded requests with their recorded responses and timing.

One aiohttp application listens on four loopback doors: plain and TLS, for the agent's
requests (forwarded by the proxy) and for prefire's own early calls (its speculator).
Every upstream connection of the proxy under test is sent to one of them (see
`ProxyConfig.connect_to`); the URL, Host header and TLS server name stay as recorded,
so a request is matched by the same key it was recorded under (`recorded.playback_key`).

- The agent's requests: the playback client announces each request it sends; the proxy's
  tap (`EntryTap`) matches it by key, first come first served like mitmproxy's server
  playback, and hands the ones the proxy forwards to the agent doors in that order.
- prefire's early calls: answered with the recorded response of the first recorded
  request with the same key that the agent has not been answered for yet (the call the
  speculation anticipates), else with the last one of that key. A call the recording
  has no answer for is answered with an error after the tool's recorded latency, so it
  costs what it would cost and counts as wasted; it never gets another call's response.

Answers keep their recorded timing, scaled by `speed`: the time from the request to the
response headers, the offsets of streamed chunks, and the end of the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import ssl
import tempfile
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from mitmproxy import http
from mitmproxy.net import encoding
from multidict import CIMultiDict

from prefire.replay.plan import ToolIndex
from prefire.replay.recorded import Recorded, authority, jsonrpc_request, playback_key

# where a connection for (host, port) really goes: the proxy's `connect_to` option
ConnectTo = Callable[[str, int], tuple[str, int]]

_RESPONSE_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection"}
)
DEFAULT_TOOL_LATENCY_S = 1.0


@dataclass(slots=True)
class DoorRequest:
    """A request that reached a playback door, for the report and the timeline."""

    speculative: bool
    method: str
    url: str
    tool: str | None
    step: int | None  # the recorded step whose response answered it; None: none did
    t_start: float
    t_end: float = 0.0
    why: str = ""


@dataclass(slots=True)
class PassState:
    """What one pass's playback knows: recorded steps by key, what the client has sent
    and been answered, and what the doors received."""

    steps: list[Recorded]
    speed: float = 1.0
    tool_latency_s: float = DEFAULT_TOOL_LATENCY_S
    by_key: dict[bytes, list[int]] = field(default_factory=dict)
    sent: dict[bytes, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    forwarded: dict[bytes, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    answered: set[int] = field(default_factory=set)
    served: dict[int, tuple[str, bool]] = field(default_factory=dict)  # step -> (kind, promoted)
    # step -> steps of a chain past its decision point of the early call that served it
    depth: dict[int, int] = field(default_factory=dict)
    doors: list[DoorRequest] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # requests the tap could not place
    # steps whose recorded time is not the server's (answered early when captured)
    override_s: dict[int, float] = field(default_factory=dict)
    # the tools' recorded times and URL shapes, for calls with no recorded answer
    index: ToolIndex | None = None
    tools: dict[int, str] = field(default_factory=dict)  # step -> the tool it ran

    def __post_init__(self) -> None:
        for i, rec in enumerate(self.steps):
            self.by_key.setdefault(rec.key, []).append(i)

    # the client's side
    def will_send(self, step: int) -> None:
        self.sent[self.steps[step].key].append(step)

    def was_answered(self, step: int) -> None:
        self.answered.add(step)
        queue = self.sent.get(self.steps[step].key)
        if queue and step in queue:  # answered by the proxy itself: the tap saw it pass
            queue.remove(step)

    # the proxy's side (EntryTap)
    def entered(self, key: bytes) -> int | None:
        queue = self.sent.get(key)
        return queue.popleft() if queue else None

    # the doors' side
    def for_agent(self, key: bytes) -> int | None:
        queue = self.forwarded.get(key)
        return queue.popleft() if queue else None

    def for_speculation(self, key: bytes) -> int | None:
        steps = self.by_key.get(key)
        if not steps:
            return None
        return next((i for i in steps if i not in self.answered), steps[-1])


class Playback:
    """The doors, and the answers for one pass at a time (`state`)."""

    def __init__(self, state: PassState) -> None:
        self.state = state
        self._runner: web.AppRunner | None = None
        self.ports: dict[tuple[bool, bool], int] = {}  # (speculative, tls) -> port
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        tls = self_signed_context()
        for speculative in (False, True):
            for secure in (False, True):
                site = web.TCPSite(
                    self._runner, "127.0.0.1", 0, ssl_context=tls if secure else None
                )
                await site.start()
                server = site._server
                assert server is not None and server.sockets  # type: ignore[attr-defined]
                port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
                self.ports[(speculative, secure)] = port
        self._door = {port: door for door, port in self.ports.items()}

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def route(self, speculative: bool, origins: dict[tuple[str, int], str]) -> ConnectTo:
        """A `connect_to` function: (host, port) -> the door for it. The recorded scheme of
        an origin says whether TLS is spoken; an origin never recorded still goes to a
        door (port 443 to the TLS one), so nothing leaves the machine."""

        def connect_to(host: str, port: int) -> tuple[str, int]:
            scheme = origins.get((host.lower(), port))
            secure = scheme == "https" if scheme else port == 443
            return "127.0.0.1", self.ports[(speculative, secure)]

        return connect_to

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        speculative, secure = self._door[sockname[1]] if sockname else (False, False)
        scheme = "https" if secure else "http"
        raw = await request.read()
        try:
            content = encoding.decode(raw, request.headers.get("content-encoding", "identity"))
        except ValueError:
            content = raw
        assert isinstance(content, bytes)
        host, port = authority(request.headers.get("Host", ""), scheme)
        key = playback_key(scheme, request.method, host, port, request.path_qs, content)
        state = self.state
        loop = asyncio.get_running_loop()
        rpc = jsonrpc_request(content)
        url = f"{scheme}://{request.headers.get('Host', '')}{request.path_qs}"
        door = DoorRequest(speculative, request.method, url, rpc[1] if rpc else None, None, 0.0)
        door.t_start = loop.time()
        state.doors.append(door)
        step = state.for_speculation(key) if speculative else state.for_agent(key)
        try:
            if step is None:
                resp = await self._unrecorded(request, door, rpc, scheme, host, port, speculative)
            else:
                door.step = step
                rec = state.steps[step]
                door.tool = door.tool or state.tools.get(step)
                new_id = rpc[0] if rpc is not None else None
                resp = await self._answer(request, rec, new_id, state.override_s.get(step))
        finally:
            door.t_end = loop.time()
        # The proxy's connections here are redirected, so it cannot reuse them (it would
        # keep opening new ones, five at most per address and client connection): one
        # answer per connection.
        resp.force_close()
        return resp

    async def _unrecorded(
        self,
        request: web.Request,
        door: DoorRequest,
        rpc: tuple[Any, str | None] | None,
        scheme: str,
        host: str,
        port: int,
        speculative: bool,
    ) -> web.StreamResponse:
        if not speculative:
            door.why = "no recorded request has this method, host, path and body"
            return web.Response(
                status=502,
                text=f"prefire replay: no recorded answer for {request.method} {door.url}\n",
                headers={"x-prefire-playback": "unmatched"},
            )
        index = self.state.index
        if index is not None and door.tool is None:
            door.tool = index.rest_tool(request.method, scheme, host, port, request.path_qs)
        known = index.latency(door.tool, scheme, host, port) if index is not None else None
        delay = known if known is not None else self.state.tool_latency_s
        door.why = "the recording has no answer for this call"
        await asyncio.sleep(delay / self.state.speed)
        message = "prefire replay: the recording has no answer for this call"
        if rpc is not None:
            body = {"jsonrpc": "2.0", "id": rpc[0], "error": {"code": -32603, "message": message}}
            return web.Response(
                body=orjson.dumps(body),
                content_type="application/json",
                headers={"x-prefire-playback": "unrecorded"},
            )
        return web.Response(
            status=502, text=message + "\n", headers={"x-prefire-playback": "unrecorded"}
        )

    async def _answer(
        self, request: web.Request, rec: Recorded, new_id: Any, latency: float | None
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        speed = self.state.speed
        t0 = loop.time()
        if rec.status is None:
            await asyncio.sleep(rec.duration_s / speed)
            return web.Response(
                status=502,
                text=f"prefire replay: recorded without a response ({rec.error or '-'})\n",
                headers={"x-prefire-playback": "no-response"},
            )
        headers = CIMultiDict(
            (k, v) for k, v in rec.response_headers if k.lower() not in _RESPONSE_HOP
        )
        body, chunks = rec.response_body, rec.chunks
        if new_id is not None and rec.jsonrpc_id is not None and new_id != rec.jsonrpc_id:
            body, chunks, decoded = _with_id(rec, new_id)
            if decoded:
                headers.popall("content-encoding", None)
        assert rec.t_headers is not None and rec.t_end is not None
        to_headers = max(0.0, rec.t_headers - rec.t_sent)
        to_end = max(to_headers, rec.t_end - rec.t_sent)
        if latency is not None:  # the recorded time is not the tool's: it was served early
            to_headers = to_end = latency
        if chunks is None:
            await _sleep_until(t0 + to_end / speed)
            return web.Response(status=rec.status, body=body, headers=headers)
        await _sleep_until(t0 + to_headers / speed)
        resp = web.StreamResponse(status=rec.status, headers=headers)
        resp.force_close()
        start = loop.time()
        with contextlib.suppress(ConnectionResetError, ConnectionError):
            await resp.prepare(request)
            pos = 0
            for offset, size in chunks:
                await _sleep_until(start + offset / speed)
                await resp.write(body[pos : pos + size])
                pos += size
            if pos < len(body):
                await resp.write(body[pos:])
            await _sleep_until(start + max(0.0, rec.t_end - rec.t_headers) / speed)
            await resp.write_eof()
        return resp


async def _sleep_until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _with_id(rec: Recorded, new_id: Any) -> tuple[bytes, list[tuple[float, int]] | None, bool]:
    """The recorded response answering JSON-RPC id `new_id` instead of the recorded one:
    only the id's value changes, so the speculator's swap back gives the recorded bytes.
    Chunk sizes follow the change. Returns (body, chunks, whether the body was decoded)."""
    body = rec.response_body
    decoded = False
    enc = next((v for k, v in rec.response_headers if k.lower() == "content-encoding"), None)
    if enc:
        try:
            body = encoding.decode(body, enc)  # type: ignore[assignment]
            decoded = True
        except ValueError:
            return rec.response_body, rec.chunks, False
    old = re.escape(orjson.dumps(rec.jsonrpc_id))
    pattern = re.compile(rb'("id"\s*:\s*)' + old + rb"(?=\s*[,}])")
    m = pattern.search(body)
    if m is None:
        return body, None if decoded else rec.chunks, decoded
    new = m.group(1) + orjson.dumps(new_id)
    patched = body[: m.start()] + new + body[m.end() :]
    chunks = rec.chunks
    if chunks is not None and not decoded:
        delta = len(new) - (m.end() - m.start())
        out, pos = [], 0
        for offset, size in chunks:
            end = pos + size
            grown = size + delta if pos <= m.start() < end else size
            out.append((offset, grown))
            pos = end
        chunks = out
    elif decoded:
        chunks = None
    return patched, chunks, decoded


def self_signed_context(host: str = "localhost") -> ssl.SSLContext:
    """A server TLS context with a throwaway certificate for `host`: the proxy under test
    does not verify upstream certificates in playback (`ssl_insecure`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="prefire-playback-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx.load_cert_chain(cert_path, key_path)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class EntryTap:
    """A mitmproxy addon, after prefire's: sees every agent request as it enters the proxy
    under test, places it (which recorded step it is), and notes whether prefire answered
    it from speculation or forwarded it to the playback doors."""

    def __init__(self, state: PassState, observer: Any) -> None:
        self.state = state
        self.observer = observer
        self.live_sessions: dict[int, Any] = {}  # step -> the live proxy's session key

    def request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        try:
            content = req.get_content() or b""
        except ValueError:
            content = req.raw_content or b""
        host, port = authority(req.host_header or f"{req.host}:{req.port}", req.scheme)
        key = playback_key(req.scheme, req.method, host, port, req.path, content)
        step = self.state.entered(key)
        if step is None:
            self.state.unexpected.append(f"{req.method} {req.pretty_url}")
            return
        ex = self.observer.exchange(flow.id)
        if ex is not None and ex.codec is not None:
            self.live_sessions[step] = ex.session
        if flow.response is not None:
            kind = flow.metadata.get("prefire.served", "served")
            self.state.served[step] = (str(kind), bool(flow.metadata.get("prefire.promoted")))
            self.state.depth[step] = int(flow.metadata.get("prefire.depth") or 0)
        else:
            self.state.forwarded[key].append(step)
