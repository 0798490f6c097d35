"""The mitmproxy addon: hooks only. It observes, it never changes a byte.

Every hook body is guarded: whatever goes wrong while observing is logged and
the flow continues untouched, so the agent gets exactly what it would get
without prefire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from mitmproxy import ctx, http

from prefire.patterns.events import Event, SessionKey, ToolCall, ToolExchange, ToolsOffered
from prefire.proxy import sessions as sessions_mod
from prefire.proxy.capture import Capture
from prefire.proxy.decoding import ChunkDecoder, chunk_decoder
from prefire.proxy.providers import llm_codec_for, mcp
from prefire.proxy.providers.base import (
    CallDraft,
    LLMCodec,
    Output,
    ParsedRequest,
    ResponseDone,
    StreamDecoder,
)

log = structlog.get_logger(__name__)

Listener = Callable[[Event], None]


@dataclass(slots=True)
class _FlowState:
    scope: str
    session: SessionKey | None = None
    codec: LLMCodec | None = None
    parsed: ParsedRequest | None = None
    # MCP: JSON-RPC id -> (tool name, arguments) of tools/call requests; ids of tools/list
    mcp_calls: dict[Any, tuple[str, Any]] = field(default_factory=dict)
    mcp_lists: set[Any] = field(default_factory=set)
    tap: _StreamTap | None = None
    llm_decoder: StreamDecoder | None = None


class _StreamTap:
    """Set as `flow.response.stream`: sees each chunk and returns it unchanged."""

    def __init__(
        self,
        observe: Callable[[bytes], None] | None,
        decoder: ChunkDecoder | None,
        record_limit: int,
    ) -> None:
        self._observe = observe if decoder is not None else None
        self._decoder = decoder
        self._record_limit = record_limit
        self.chunks: list[bytes] = []
        self.times: list[float] = []
        self.recorded = 0
        self.truncated = False

    def __call__(self, chunk: bytes) -> bytes:
        if self._record_limit and chunk:
            if self.recorded + len(chunk) <= self._record_limit:
                self.chunks.append(chunk)
                self.times.append(time.time())
                self.recorded += len(chunk)
            else:
                self.truncated = True
        if self._observe is not None and chunk:
            try:
                self._observe(self._decoder.decode(chunk))  # type: ignore[union-attr]
            except Exception as exc:  # an observer bug or bad encoding must not touch the stream
                log.warning("observe.stream_failed", error=repr(exc))
                self._observe = None
        return chunk


@dataclass(slots=True)
class AddonConfig:
    capture: Capture | None = None
    max_body: int = 8 * 1024 * 1024
    on_ready: Callable[[list[tuple[str, int]]], None] | None = None


class PrefireAddon:
    def __init__(self, config: AddonConfig) -> None:
        self.config = config
        self.sessions = sessions_mod.Sessions()
        self.listeners: list[Listener] = []
        self._flows: dict[str, _FlowState] = {}

    # -- mitmproxy hooks -------------------------------------------------

    def running(self) -> None:
        if self.config.on_ready is not None:
            addrs = ctx.master.addons.get("proxyserver").listen_addrs()
            self.config.on_ready([(a[0], a[1]) for a in addrs])

    def request(self, flow: http.HTTPFlow) -> None:
        try:
            self._observe_request(flow)
        except Exception as exc:
            self._flows.pop(flow.id, None)
            log.warning("observe.request_failed", url=flow.request.pretty_url, error=repr(exc))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        try:
            self._maybe_stream(flow)
        except Exception as exc:
            log.warning("observe.headers_failed", url=flow.request.pretty_url, error=repr(exc))

    def response(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        try:
            if state is not None:
                self._observe_response(flow, state)
        except Exception as exc:
            log.warning("observe.response_failed", url=flow.request.pretty_url, error=repr(exc))
        self._capture_flow(flow, state)

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._flows.pop(flow.id, None)
        self._capture_flow(flow, state)

    # -- observation -----------------------------------------------------

    def _observe_request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        if (
            req.method != "POST"
            or req.raw_content is None
            or len(req.raw_content) > self.config.max_body
        ):
            return
        body = orjson.loads(req.get_content())
        scope = sessions_mod.scope_of(req.headers.items(multi=True), req.url)
        t = req.timestamp_start
        if mcp.matches(req.method, req.path, body):
            state = _FlowState(scope=scope)
            state.session = sessions_mod.mcp_session(scope, req.headers.get("mcp-session-id", ""))
            for msg in mcp.parse_request(body):
                if msg.method == "tools/list" and msg.id is not None:
                    state.mcp_lists.add(msg.id)
                elif msg.id is not None and (call := mcp.call_of(msg)) is not None:
                    state.mcp_calls[msg.id] = call
            if state.mcp_calls or state.mcp_lists:
                self._flows[flow.id] = state
            return
        codec = llm_codec_for(req.method, req.path, body)
        if codec is None:
            return
        parsed = codec.parse_request(body, req.path)
        session, events = self.sessions.request_events(scope, parsed, t)
        self._flows[flow.id] = _FlowState(scope=scope, session=session, codec=codec, parsed=parsed)
        for event in events:
            self._emit(event)

    def _maybe_stream(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        if resp.stream:  # mitmproxy decided already (stream_large_bodies)
            return
        state = self._flows.get(flow.id)
        event_stream = resp.headers.get("content-type", "").startswith("text/event-stream")
        llm_stream = state is not None and state.parsed is not None and state.parsed.stream
        if not (event_stream or llm_stream):
            return
        record = self.config.max_body if self.config.capture is not None else 0
        observe: Callable[[bytes], None] | None = None
        decoder: ChunkDecoder | None = None
        if state is not None and 200 <= resp.status_code < 300:
            decoder = chunk_decoder(resp.headers.get("content-encoding", ""))
            observe = self._stream_observer(flow, state)
        if observe is None and not record:
            resp.stream = True
            return
        state_tap = _StreamTap(observe, decoder, record)
        if state is not None:
            state.tap = state_tap
        else:
            self._flows[flow.id] = _FlowState(scope="", tap=state_tap)
        resp.stream = state_tap

    def _stream_observer(self, flow: http.HTTPFlow, state: _FlowState) -> Callable[[bytes], None]:
        codec = state.codec
        if codec is not None and state.parsed is not None:
            decoder = state.llm_decoder = codec.stream_decoder(state.parsed)

            def observe_llm(data: bytes) -> None:
                self._llm_outputs(state, decoder.feed(data), codec.api)

            return observe_llm
        mcp_decoder = mcp.McpStreamDecoder()
        started = flow.request.timestamp_start

        def observe_mcp(data: bytes) -> None:
            self._mcp_replies(flow, state, mcp_decoder.feed(data), started)

        return observe_mcp

    def _observe_response(self, flow: http.HTTPFlow, state: _FlowState) -> None:
        resp = flow.response
        assert resp is not None
        if not 200 <= resp.status_code < 300:
            return
        if state.tap is not None:
            if state.llm_decoder is not None and state.codec is not None:
                self._llm_outputs(state, state.llm_decoder.close(), state.codec.api)
            return
        if resp.raw_content is None or len(resp.raw_content) > self.config.max_body:
            return
        content = resp.get_content()
        if state.codec is not None and state.parsed is not None:
            outputs = state.codec.parse_response(orjson.loads(content), state.parsed)
            self._llm_outputs(state, outputs, state.codec.api)
        elif state.session is not None:
            ctype = resp.headers.get("content-type", "")
            replies = mcp.parse_response(content, ctype)
            self._mcp_replies(flow, state, replies, flow.request.timestamp_start)

    def _llm_outputs(self, state: _FlowState, outputs: list[Output], api: str) -> None:
        assert state.session is not None
        now = time.time()
        for out in outputs:
            if isinstance(out, CallDraft):
                event = self.sessions.call_event(state.session, out, api, now)
                if event is not None:
                    self._emit(event)
            elif isinstance(out, ResponseDone):
                self.sessions.response_done(state.session, out.response_id)

    def _mcp_replies(
        self, flow: http.HTTPFlow, state: _FlowState, replies: list[mcp.McpReply], started: float
    ) -> None:
        assert state.session is not None
        now = time.time()
        for reply in replies:
            if reply.id in state.mcp_lists and reply.error is None:
                tools = mcp.tool_specs(reply.result)
                self._emit(ToolsOffered(session=state.session, t=now, tools=tools, api="mcp"))
            elif reply.id in state.mcp_calls:
                name, arguments = state.mcp_calls.pop(reply.id)
                if reply.error is not None:
                    result, is_error = reply.error, True
                else:
                    result, is_error = mcp.call_result(reply.result)
                self._emit(
                    ToolExchange(
                        session=state.session,
                        t=now,
                        name=name,
                        arguments=arguments,
                        result=result,
                        is_error=is_error,
                        transport="mcp",
                        method=flow.request.method,
                        url=flow.request.url,
                        status=flow.response.status_code if flow.response else 0,
                        duration_s=max(0.0, now - started),
                        request_id=reply.id,
                    )
                )

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

    def _capture_flow(self, flow: http.HTTPFlow, state: _FlowState | None) -> None:
        capture = self.config.capture
        if capture is None:
            return
        tap = state.tap if state is not None else None
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
