"""Turns HTTP exchanges into events, without mitmproxy: the addon feeds it live
flows, replay feeds it flows read from files. Plain values in, events out: each
call returns the events that input produced, in order (as h11's `next_event`
does), and calls back into nothing; what to do with them is the caller's.

One Observer handles many exchanges at once, keyed by an exchange id. Nothing
here raises to the caller for bad traffic: codecs skip what they cannot read.
A ToolCall among the events of a response (`chunk`, `response`) is a call the
LLM's response has just closed: the moment it may be started eagerly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from lru import LRU

from prefire.patterns.events import Event, SessionKey, ToolExchange, ToolsOffered
from prefire.wire import sessions as sessions_mod
from prefire.wire.providers import llm_codec_for, mcp
from prefire.wire.providers.base import (
    CallDraft,
    LLMCodec,
    Output,
    ParsedRequest,
    ResponseDone,
    StreamDecoder,
)


@dataclass(slots=True)
class Exchange:
    """What is known about one request while its response is awaited."""

    method: str
    url: str
    started: float
    session: SessionKey
    client: str = ""
    codec: LLMCodec | None = None
    parsed: ParsedRequest | None = None
    # MCP: the requests and notifications of the body; JSON-RPC id -> (tool name,
    # arguments) of its tools/call requests; ids of its tools/list requests
    mcp_requests: list[mcp.McpRequest] = field(default_factory=list)
    mcp_calls: dict[Any, tuple[str, Any]] = field(default_factory=dict)
    mcp_lists: set[Any] = field(default_factory=set)
    llm_decoder: StreamDecoder | None = None
    mcp_decoder: mcp.McpStreamDecoder | None = None
    status: int = 0  # the response's, once it has begun
    streamed: bool = False

    @property
    def wants_stream(self) -> bool:
        """Whether the response should be observed chunk by chunk even if it is not SSE."""
        return self.parsed is not None and self.parsed.stream


class Observer:
    def __init__(self, sessions: sessions_mod.Sessions | None = None) -> None:
        self.sessions = sessions or sessions_mod.Sessions()
        # exchanges awaiting their response; bounded, in case a flow ends unannounced
        self._open: LRU[str, Exchange] = LRU(10_000)
        # session -> (client address, URL of its latest request)
        self._origins: LRU[SessionKey, tuple[str, str]] = LRU(100_000)

    def origin(self, session: SessionKey) -> tuple[str, str] | None:
        """The client address and the URL of a session's latest request."""
        return self._origins.get(session)

    def request(
        self,
        xid: str,
        method: str,
        url: str,
        path: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        t: float,
        client: str = "",
    ) -> list[Event]:
        """A request with its decoded body: the events it carries (the history of an LLM
        request). `exchange(xid)` is the exchange from here on, if it is one we follow."""
        if method != "POST" or not body:
            return []
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return []
        events: list[Event] = []
        header_list = list(headers)
        if mcp.matches(method, path, data):
            scope = sessions_mod.tool_scope_of(header_list, url)
            session_id = next((v for k, v in header_list if k.lower() == "mcp-session-id"), "")
            ex = Exchange(method, url, t, sessions_mod.mcp_session(scope, session_id), client)
            ex.mcp_requests = mcp.parse_request(data)
            for msg in ex.mcp_requests:
                if msg.method == "tools/list" and msg.id is not None:
                    ex.mcp_lists.add(msg.id)
                elif msg.id is not None and (call := mcp.call_of(msg)) is not None:
                    ex.mcp_calls[msg.id] = call
            if not ex.mcp_requests:
                return []
            self._origins[ex.session] = (client, url)
        else:
            codec = llm_codec_for(method, path, data)
            if codec is None:
                return []
            scope = sessions_mod.scope_of(header_list, url)
            parsed = codec.parse_request(data, path)
            session, events = self.sessions.request_events(scope, parsed, t)
            # the history is not needed for the response: do not hold it while it streams
            slim = replace(parsed, items=(), tools=())
            ex = Exchange(method, url, t, session, client, codec=codec, parsed=slim)
            self._origins[session] = (client, url)
        self._open[xid] = ex
        return events

    def exchange(self, xid: str) -> Exchange | None:
        return self._open.get(xid)

    def stream(self, xid: str, status: int) -> bool:
        """The response begins: whether its decoded body is to be fed chunk by chunk
        (`chunk`); False when the exchange is not followed or the status is no success."""
        ex = self._open.get(xid)
        if ex is None or not 200 <= status < 300:
            return False
        ex.streamed, ex.status = True, status
        if ex.codec is not None and ex.parsed is not None:
            ex.llm_decoder = ex.codec.stream_decoder(ex.parsed)
        else:
            ex.mcp_decoder = mcp.McpStreamDecoder()
        return True

    def chunk(self, xid: str, data: bytes, t: float) -> list[Event]:
        """The next piece of a streamed response's decoded body: the events it completes."""
        ex = self._open.get(xid)
        if ex is None:
            return []
        if ex.llm_decoder is not None and ex.codec is not None:
            return self._llm_outputs(ex, ex.llm_decoder.feed(data), ex.codec.api, t)
        if ex.mcp_decoder is not None:
            return self._mcp_replies(ex, ex.mcp_decoder.feed(data), ex.status, t)
        return []

    def response(
        self, xid: str, status: int, content_type: str, body: bytes | None, t: float
    ) -> list[Event]:
        """The response ended. `body` is the decoded whole body, or None if it was streamed."""
        ex = self._open.pop(xid, None)
        if ex is None or not 200 <= status < 300:
            return []
        if ex.streamed:
            if ex.llm_decoder is not None and ex.codec is not None:
                return self._llm_outputs(ex, ex.llm_decoder.close(), ex.codec.api, t)
            return []
        if body is None:
            return []
        if ex.codec is not None and ex.parsed is not None:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return []
            return self._llm_outputs(ex, ex.codec.parse_response(data, ex.parsed), ex.codec.api, t)
        return self._mcp_replies(ex, mcp.parse_response(body, content_type), status, t)

    def forget(self, xid: str) -> None:
        """The exchange failed (connection error): drop it."""
        self._open.pop(xid, None)

    def _llm_outputs(self, ex: Exchange, outputs: list[Output], api: str, t: float) -> list[Event]:
        events: list[Event] = []
        for out in outputs:
            if isinstance(out, CallDraft):
                event = self.sessions.call_event(ex.session, out, api, t)
                if event is not None:
                    events.append(event)
            elif isinstance(out, ResponseDone):
                self.sessions.response_done(ex.session, out.response_id)
        return events

    def _mcp_replies(
        self, ex: Exchange, replies: list[mcp.McpReply], status: int, t: float
    ) -> list[Event]:
        events: list[Event] = []
        for reply in replies:
            if reply.id in ex.mcp_lists and reply.error is None:
                tools = mcp.tool_specs(reply.result)
                events.append(ToolsOffered(session=ex.session, t=t, tools=tools, api="mcp"))
            elif reply.id in ex.mcp_calls:
                name, arguments = ex.mcp_calls.pop(reply.id)
                if reply.error is not None:
                    result, is_error = reply.error, True
                else:
                    result, is_error = mcp.call_result(reply.result)
                arguments = sessions_mod.json_safe(arguments)
                result = sessions_mod.json_safe(result)
                events.append(
                    ToolExchange(
                        session=ex.session,
                        t=t,
                        name=name,
                        arguments=arguments,
                        result=result,
                        is_error=is_error,
                        transport="mcp",
                        method=ex.method,
                        url=ex.url,
                        status=status,
                        duration_s=max(0.0, t - ex.started),
                        request_id=reply.id,
                    )
                )
        return events
