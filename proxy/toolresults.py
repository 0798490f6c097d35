"""The tool's own result, learned in the conversation whose call it ran.

The model sees a tool's result as its client chooses to show it: Codex wraps an
MCP result in a timing line and a JSON string, Claude Code shows its text, a
client may summarise or cut it. When the agent's tools/call is joined with
certainty to the model's call it runs (calljoin.py: same client, tool and
canonical arguments, close in time, and no other conversation made that call
then), the exchange's own result is learned as that call's result in the
model's conversation, as soon as the server answers. The client's version,
which comes later with the next LLM request, then changes nothing: a call's
first result counts (patterns/memory.py).

An exchange is matched to its join by client, tool scope, MCP session, server
URL and JSON-RPC id, then checked against the join's tool and arguments; two joins
waiting under one such key learn nothing. Only learning crosses from the tool
side to the LLM side here. What is served is decided by the tool side's scope
alone: a result fetched with one set of tool credentials answers only tool
requests that carry the same (speculator.py, cache.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from lru import LRU

from prefire.patterns.canonical import canonical_key
from prefire.patterns.events import Event, ToolExchange, ToolResult
from prefire.proxy.calljoin import Joined
from prefire.proxy.observer import Observer
from prefire.proxy.sessions import mcp_session

log = structlog.get_logger(__name__)

_AMBIGUOUS = "ambiguous"
DOUBT_S = 300.0  # as long as CallJoin keeps a model call waiting


class ToolSideResults:
    def __init__(
        self, observer: Observer, learn: Callable[[Event], None], capacity: int = 4096
    ) -> None:
        self.observer = observer
        self.learn = learn
        # (client, MCP session key, server URL, JSON-RPC id) of a tools/call ->
        # (conversation, call id, model name, server tool, canonical args), or
        # _AMBIGUOUS when two joins came under one key
        self._waiting: LRU = LRU(capacity)
        # (client, tool, canonical args) -> time of an uncertain join: a later join of the same
        # call is certain only because the first took one conversation away, which may
        # have been the wrong one
        self._doubtful: LRU = LRU(capacity)

    def joined(self, joined: Joined) -> None:
        """A tools/call was joined to the model's call it runs (Speculator.on_join)."""
        model, server = joined.model, joined.server
        call = (server.client, server.tool, server.args)
        doubt = self._doubtful.get(call)
        if not joined.certain or (doubt is not None and server.t - doubt <= DOUBT_S):
            self._doubtful[call] = server.t
            log.info(
                "tool_result.not_learned",
                why="another conversation made the same call",
                tool=server.tool,
                session=str(model.session),
            )
            return
        session = mcp_session(server.scope, server.mcp_session)
        key = (server.client, session, server.server, _id(server.request_id))
        if key in self._waiting:
            self._waiting[key] = _AMBIGUOUS
            return
        self._waiting[key] = (model.session, model.call_id, model.name, server.tool, server.args)

    def __call__(self, event: Event) -> None:
        """Listener: an MCP exchange that answers a joined call teaches its conversation."""
        if not isinstance(event, ToolExchange) or event.transport != "mcp":
            return
        origin = self.observer.origin(event.session)
        if origin is None:
            return
        key = (origin[0], event.session, event.url, _id(event.request_id))
        waiting = self._waiting.pop(key, None)
        if waiting is None:
            return
        if waiting == _AMBIGUOUS:
            log.info("tool_result.not_learned", why="two calls under one request id", url=event.url)
            return
        session, call_id, name, tool, args = waiting
        if tool != event.name or args != canonical_key(event.arguments):
            return
        self.learn(
            ToolResult(
                session=session,
                t=event.t,
                call_id=call_id,
                name=name,
                content=event.result,
                is_error=event.is_error,
            )
        )


def _id(request_id: Any) -> Any:
    # JSON-RPC ids are strings or numbers; lists would not hash
    return request_id if isinstance(request_id, str | int | float) else repr(request_id)
