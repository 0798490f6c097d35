"""The mitmproxy addon: hooks only. It observes every exchange and, for a tool
request whose result speculation already holds, lets the responder answer it with the
tool server's own bytes (proxy/responder.py); every other byte passes through as it is.

Every hook body is guarded: whatever goes wrong while observing or serving is
logged and the flow continues untouched, so the agent gets exactly what it would
get without prefire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from mitmproxy import ctx, http
from mitmproxy.proxy import server_hooks

from prefire.patterns.events import Event, ToolCall
from prefire.proxy.capture import Capture, redact_url
from prefire.proxy.responder import Responder
from prefire.proxy.state import DEFAULT_MAX_BODY
from prefire.proxy.toolresults import ToolSideResults
from prefire.proxy.transport import ConnectTo
from prefire.wire.decoding import ChunkDecoder, chunk_decoder, decode_body
from prefire.wire.observer import Observer

log = structlog.get_logger(__name__)

Listener = Callable[[Event], None]
ChunkObserver = Callable[[bytes, float], None]


class StreamTap:
    """Set as `flow.response.stream`: sees each chunk and returns it unchanged.

    It feeds the decoded chunk to an observer and, when capturing, keeps the raw
    chunks and their arrival times (mitmproxy keeps no body for a streamed flow).
    At most `observe_limit` decoded bytes are observed: past that, observing stops
    (`on_stop` is told why) and the rest only flows through.
    """

    def __init__(
        self,
        observe: ChunkObserver | None,
        decoder: ChunkDecoder | None,
        record_limit: int,
        observe_limit: int,
        on_stop: Callable[[str], None] | None = None,
    ) -> None:
        self._observe = observe if decoder is not None else None
        self._decoder = decoder
        self._record_limit = record_limit
        self._observe_left = observe_limit
        self._on_stop = on_stop
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.recorded = 0
        self.truncated = False

    def __call__(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        now = time.time()
        if self._record_limit:
            if self.recorded + len(chunk) <= self._record_limit:
                self.chunks.append(chunk)
                self.times.append(now)
                self.recorded += len(chunk)
            else:
                self.truncated = True
        if self._observe is not None:
            try:
                data = self._decoder.decode(chunk, self._observe_left)  # type: ignore[union-attr]
                self._observe_left -= len(data)
                if self._observe_left < 0:
                    self._stop("stream_above_max_body")
                else:
                    self._observe(data, now)
            except Exception as exc:  # an observer bug or bad encoding must not touch the stream
                log.warning("observe.stream_failed", error=repr(exc))
                self._stop("stream_failed")
        return chunk

    def _stop(self, why: str) -> None:
        self._observe = self._decoder = None
        if self._on_stop is not None:
            self._on_stop(why)


@dataclass(slots=True)
class AddonConfig:
    capture: Capture | None = None
    max_body: int = DEFAULT_MAX_BODY
    on_ready: Callable[[list[tuple[str, int]]], None] | None = None


class PrefireAddon:
    def __init__(self, config: AddonConfig) -> None:
        self.config = config
        self.listeners: list[Listener] = []
        self.observer = Observer()
        # told of each tool call the moment an LLM response closes it (after the listeners)
        self.on_call_closed: Callable[[ToolCall], None] | None = None
        self.responder: Responder | None = None  # answers tool requests from speculation
        # told of the agent's plain HTTP requests, to learn a REST tool's own result
        self.tool_side: ToolSideResults | None = None
        self._taps: dict[str, StreamTap] = {}
        # flows whose response has not ended yet, so a shutdown can let them finish
        self.in_flight: set[str] = set()
        self.draining = False
        self.idle = asyncio.Event()  # set when draining and nothing is in flight

    def running(self) -> None:
        if self.config.on_ready is not None:
            addrs = ctx.master.addons.get("proxyserver").listen_addrs()
            self.config.on_ready([(a[0], a[1]) for a in addrs])

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.draining:
            # shutting down: nothing of this request has gone upstream, so closing its
            # connection now is safe to retry (as when the listening socket is gone)
            flow.kill()
            return
        self.in_flight.add(flow.id)

    async def request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        raw = req.raw_content
        if raw is None or len(raw) > self.config.max_body:
            # streamed through by mitmproxy (stream_large_bodies): never buffered, not learned
            self._skipped(flow, "request_body_above_max_body", raw)
            return
        client = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        try:
            content, why = decode_body(
                raw, req.headers.get("content-encoding", ""), self.config.max_body
            )
            if content is None:
                self._skipped(flow, "request_" + why, raw)
                return
            events = self.observer.request(
                flow.id,
                req.method,
                req.url,
                req.path,
                req.headers.items(multi=True),
                content,
                req.timestamp_start,
                client,
            )
            for event in events:
                self._emit(event)
            ex = self.observer.exchange(flow.id)
        except Exception as exc:
            self.observer.forget(flow.id)
            log.warning("observe.request_failed", url=redact_url(req.pretty_url), error=repr(exc))
            return
        if ex is None:
            self._rest_request(flow, client, content)
        if self.responder is None or (ex is not None and ex.codec is not None):
            return
        try:
            if ex is not None:
                await self.responder.serve(flow, ex)
            else:
                await self.responder.serve_http(flow, client, content)
        except Exception as exc:  # serving failed: the request goes upstream as it is
            flow.response = None
            log.warning("speculate.serve_failed", url=redact_url(req.pretty_url), error=repr(exc))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        try:
            self._maybe_tap(flow)
        except Exception as exc:
            log.warning(
                "observe.headers_failed", url=redact_url(flow.request.pretty_url), error=repr(exc)
            )

    def response(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)
        resp = flow.response
        assert resp is not None
        tap = self._taps.pop(flow.id, None)
        try:
            body = None
            raw = resp.raw_content
            if tap is None and self.observer.exchange(flow.id) is not None:
                if raw is None or len(raw) > self.config.max_body:
                    self._skipped(flow, "response_body_above_max_body", raw)
                else:
                    body, why = decode_body(
                        raw, resp.headers.get("content-encoding", ""), self.config.max_body
                    )
                    if body is None:
                        self._skipped(flow, "response_" + why, raw)
            self._emit_response(
                self.observer.response(
                    flow.id,
                    resp.status_code,
                    resp.headers.get("content-type", ""),
                    body,
                    time.time(),
                )
            )
            if self.tool_side is not None and self.tool_side.following(flow.id):
                self._rest_response(flow, tap)
        except Exception as exc:
            self.observer.forget(flow.id)
            log.warning(
                "observe.response_failed", url=redact_url(flow.request.pretty_url), error=repr(exc)
            )
        self._capture_flow(flow, tap)

    def _rest_request(self, flow: http.HTTPFlow, client: str, content: bytes) -> None:
        """A plain HTTP request of the agent: it may run a REST tool the model called."""
        if self.tool_side is None:
            return
        req = flow.request
        try:
            self.tool_side.rest_request(
                flow.id, client, req.method, req.url, content, req.timestamp_start
            )
        except Exception as exc:
            log.warning("observe.request_failed", url=redact_url(req.pretty_url), error=repr(exc))

    def _rest_response(self, flow: http.HTTPFlow, tap: StreamTap | None) -> None:
        """The response to a request that ran a REST tool: its decoded body is learned."""
        assert self.tool_side is not None and flow.response is not None
        resp = flow.response
        raw = resp.raw_content
        body = None
        if tap is None and raw is not None and len(raw) <= self.config.max_body:
            body, _ = decode_body(
                raw, resp.headers.get("content-encoding", ""), self.config.max_body
            )
        if body is None:  # streamed, too large or undecodable: not learned
            self.tool_side.rest_forget(flow.id)
            return
        self.tool_side.rest_response(flow.id, resp.status_code, body, time.time())

    def error(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)
        self.observer.forget(flow.id)
        if self.tool_side is not None:
            self.tool_side.rest_forget(flow.id)
        self._capture_flow(flow, self._taps.pop(flow.id, None))

    def drain(self) -> None:
        """Refuse new requests from now on; `idle` is set once those in flight have ended."""
        self.draining = True
        if not self.in_flight:
            self.idle.set()

    def _ended(self, flow: http.HTTPFlow) -> None:
        self.in_flight.discard(flow.id)
        if self.draining and not self.in_flight:
            self.idle.set()

    def _maybe_tap(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        ex = self.observer.exchange(flow.id)
        if resp.stream:  # mitmproxy decided already (stream_large_bodies): not observed
            if ex is not None:
                self._skipped(flow, "response_body_above_max_body", None)
            return
        if resp.raw_content is not None:
            # made here (served from speculation) with its whole body: a tap would never see
            # a chunk, so the capture would keep an empty body; observed whole in `response`
            return
        event_stream = resp.headers.get("content-type", "").startswith("text/event-stream")
        if not (event_stream or (ex is not None and ex.wants_stream)):
            return
        record = self.config.max_body if self.config.capture is not None else 0
        observe = (
            self._chunks_of(flow.id) if self.observer.stream(flow.id, resp.status_code) else None
        )
        decoder = chunk_decoder(resp.headers.get("content-encoding", "")) if observe else None
        if decoder is None and not record:
            resp.stream = True
            return
        tap = self._taps[flow.id] = StreamTap(
            observe,
            decoder,
            record,
            self.config.max_body,
            on_stop=lambda why: self._skipped(flow, why, None),
        )
        resp.stream = tap

    def _skipped(self, flow: http.HTTPFlow, why: str, raw: bytes | None) -> None:
        """This exchange is passed through unobserved from here on: say why, forget it."""
        if self.observer.exchange(flow.id) is None and why.startswith("response"):
            return  # not an exchange we follow: nothing is lost
        self.observer.forget(flow.id)
        log.info(
            "observe.skipped",
            why=why,
            url=redact_url(flow.request.pretty_url),
            size=None if raw is None else len(raw),
            max_body=self.config.max_body,
        )

    def _chunks_of(self, xid: str) -> ChunkObserver:
        return lambda data, t: self._emit_response(self.observer.chunk(xid, data, t))

    def _emit_response(self, events: list[Event]) -> None:
        """Events of a response: a tool call among them has just been closed by the LLM."""
        for event in events:
            self._emit(event)
            if isinstance(event, ToolCall) and self.on_call_closed is not None:
                self.on_call_closed(event)

    def _emit(self, event: Event) -> None:
        if isinstance(event, ToolCall):
            log.info(
                "tool_call",
                session=str(event.session),
                tool=event.name,
                call_id=event.call_id,
                api=event.api,
            )
        if self.config.capture is not None:
            self.config.capture.write_event(event)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:
                log.warning("listener_failed", listener=repr(listener), error=repr(exc))

    def _capture_flow(self, flow: http.HTTPFlow, tap: StreamTap | None) -> None:
        capture = self.config.capture
        if capture is None:
            return
        if tap is None:
            capture.write_flow(flow)
            return
        origin = flow.response.timestamp_start if flow.response else 0.0
        capture.write_flow(
            flow,
            body=b"".join(tap.chunks),
            chunk_times=[
                [round(t - origin, 6), len(c)] for t, c in zip(tap.times, tap.chunks, strict=True)
            ],
            truncated=tap.truncated,
        )


class ConnectToAddon:
    """Sends every upstream connection where `connect_to` says, leaving the flow as it is
    (URL, Host header, TLS server name): live playback points the agent's traffic at
    recorded answers this way."""

    def __init__(self, connect_to: ConnectTo) -> None:
        self.connect_to = connect_to

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is not None:
            host, port, *_ = data.server.address
            data.server.address = self.connect_to(host, port)
