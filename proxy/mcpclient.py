"""prefire's own MCP requests, spoken as the agent speaks to that server.

- MCP 2026-07-28 and later (the agent's requests carry a `_meta` envelope): there are
  no sessions; each request carries the agent's envelope, its MCP-Protocol-Version and
  the headers a client derives from the body (Mcp-Method, Mcp-Name, Mcp-Param-*).
- Earlier protocols: early calls run in a session prefire opens itself, one per
  (scope, server, initialize params), with the agent's own initialize params and
  credentials; reused while the server keeps it (a 404 opens a new one once), closed
  with DELETE at shutdown. Never in a session the agent opened: an agent's session
  belongs to one of its tasks, which may end it at any time.
- A rule with `session: agent`: in the conversation's own session, as the join learned
  it (the caller passes its id), for servers whose tools read session state.

Whatever the agent's requests to that server carried, prefire's carry too: Mcp-Method
and Mcp-Name only if the agent sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from prefire.patterns.canonical import canonical_key
from prefire.proxy.bindings import McpServer
from prefire.proxy.cache import Failure, Result
from prefire.wire.providers import mcp

log = structlog.get_logger(__name__)

# method, url, body, headers -> the response, or a Failure when none came
Send = Callable[[str, str, bytes | None, dict[str, str]], Awaitable[Result | Failure]]
CLOSE_TIMEOUT_S = 3.0
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class _Session:
    id: str  # "" when the server keeps no sessions
    version: str  # the protocol version the server answered
    url: str
    headers: dict[str, str]  # the credentials it was opened with


class McpClient:
    def __init__(self, send: Send) -> None:
        self._send = send
        prefix = f"prefire-{secrets.token_hex(4)}-"  # how prefire's JSON-RPC ids start
        self._ids = (f"{prefix}{n}" for n in itertools.count(1))
        # (scope, url, initialize params) -> the task opening (or that opened) the session
        self._sessions: dict[tuple[str, str, bytes], asyncio.Task[_Session | Failure]] = {}

    def next_id(self) -> str:
        return next(self._ids)

    async def call(
        self,
        server: McpServer,
        tool: str,
        args: dict[str, Any],
        rid: str,
        agent_session: str | None = None,
    ) -> Result | Failure:
        """tools/call `tool` as this server's agent would: the response, or why none."""
        params: dict[str, Any] = {"name": tool, "arguments": args}
        schema = server.schemas.get(tool)
        if server.sessionless:
            params["_meta"] = dict(server.envelope)
            version = server.envelope.get(mcp.PROTOCOL_VERSION_KEY)
            headers = {
                **server.headers,
                "content-type": _JSON,
                "mcp-protocol-version": version if isinstance(version, str) else server.protocol,
                **mcp.routing_headers("tools/call", params, schema),
            }
            return await self._post(server.url, rid, "tools/call", params, headers)
        if agent_session is not None:
            headers = self._headers(server, server.protocol, agent_session, "tools/call", params)
            return await self._post(server.url, rid, "tools/call", params, headers)
        for attempt in range(2):
            session = await self._session(server)
            if isinstance(session, Failure):
                return session
            headers = self._headers(server, session.version, session.id, "tools/call", params)
            got = await self._post(server.url, rid, "tools/call", params, headers)
            if not (isinstance(got, Failure) and got.status == 404 and session.id):
                return got
            # the server no longer knows our session (it expired): open another, once
            self._forget(server, session)
            log.info("speculate.session_expired", server=server.url, attempt=attempt + 1)
        return got

    def _headers(
        self, server: McpServer, version: str, session_id: str, method: str, params: Any
    ) -> dict[str, str]:
        headers = {**server.headers, "content-type": _JSON}
        if version:
            headers["mcp-protocol-version"] = version
        if session_id:
            headers["mcp-session-id"] = session_id
        if server.mirrors:
            headers.update(mcp.routing_headers(method, params, server.schemas.get(params["name"])))
        return headers

    async def _post(
        self, url: str, rid: str, method: str, params: Any, headers: dict[str, str]
    ) -> Result | Failure:
        """One JSON-RPC request: the response if it answers `rid` with a result."""
        sent = await self._send("POST", url, mcp.request_body(rid, method, params), headers)
        if isinstance(sent, Failure):
            return sent
        if not 200 <= sent.status < 300:
            return Failure.of_response("status", sent)
        reply = next(
            (r for r in mcp.parse_response(sent.body, sent.content_type) if r.id == rid), None
        )
        if reply is None:
            return Failure.of_response("no_reply", sent)
        if reply.error is not None:
            return Failure.of_response("rpc_error", sent)
        sent.request_id = rid
        sent.reply = reply.result
        return sent

    # -- sessions of prefire's own ----------------------------------------------------

    async def _session(self, server: McpServer) -> _Session | Failure:
        init = server.initialize
        if init is None:
            return Failure("no_initialize_seen")
        key = (server.scope, server.url, canonical_key(init))
        task = self._sessions.get(key)
        if task is None:
            task = self._sessions[key] = asyncio.get_running_loop().create_task(
                self._open(server, init)
            )
        got = await asyncio.shield(task)
        if isinstance(got, Failure) and self._sessions.get(key) is task:
            del self._sessions[key]  # the next call tries again
        return got

    def _forget(self, server: McpServer, session: _Session) -> None:
        for key, task in list(self._sessions.items()):
            if task.done() and not task.cancelled() and task.result() is session:
                del self._sessions[key]

    async def _open(self, server: McpServer, init: dict[str, Any]) -> _Session | Failure:
        """initialize with the agent's own params, then notifications/initialized."""
        rid = self.next_id()
        headers = {**server.headers, "content-type": _JSON}
        if server.mirrors:
            headers.update(mcp.routing_headers("initialize", init))
        opened = await self._post(server.url, rid, "initialize", init, headers)
        if isinstance(opened, Failure):
            return Failure("session_open_failed", opened.status, opened.body or opened.reason)
        answered = opened.reply.get("protocolVersion") if isinstance(opened.reply, dict) else None
        asked = init.get("protocolVersion")
        version = answered if isinstance(answered, str) else asked if isinstance(asked, str) else ""
        session_id = next(
            (v.decode("latin-1") for k, v in opened.headers if k.lower() == b"mcp-session-id"), ""
        )
        session = _Session(session_id, version, server.url, dict(server.headers))
        note = {**server.headers, "content-type": _JSON}
        if version:
            note["mcp-protocol-version"] = version
        if session_id:
            note["mcp-session-id"] = session_id
        if server.mirrors:
            note[mcp.METHOD_HEADER] = "notifications/initialized"
        done = await self._send(
            "POST", server.url, mcp.notification_body("notifications/initialized"), note
        )
        if isinstance(done, Failure) or not 200 <= done.status < 300:
            failed = done if isinstance(done, Failure) else Failure.of_response("status", done)
            await self._delete(session)
            return Failure("session_open_failed", failed.status, failed.body or failed.reason)
        log.info("speculate.session_opened", server=server.url, protocol=version)
        return session

    async def _delete(self, session: _Session) -> None:
        if not session.id:
            return
        headers = {**session.headers, "mcp-session-id": session.id}
        if session.version:
            headers["mcp-protocol-version"] = session.version
        await self._send("DELETE", session.url, None, headers)

    async def close(self) -> None:
        """End every session prefire opened (bounded: shutdown must not hang on a server)."""
        sessions = []
        for task in self._sessions.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled() and isinstance(session := task.result(), _Session):
                sessions.append(session)
        self._sessions.clear()
        if sessions:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self._delete(s) for s in sessions), return_exceptions=True),
                    CLOSE_TIMEOUT_S,
                )
            log.info("speculate.sessions_closed", count=len(sessions))
