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

A REST tool runs as a plain HTTP request: the addon shows each such request of the
agent here, and a call no MCP binding explains is joined to the request of its client
that carries all its arguments (calljoin.RestJoin). The request is followed by its flow
id, and its response body (JSON, else text; an error when the status is not 2xx) is
learned as the call's result in the model's conversation, on the same terms as an MCP
result: a certain join, the LLM scope decides where it is learned, nothing is served
across tool scopes because of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from lru import LRU

from prefire.patterns.canonical import canonical_key, loads_or_none
from prefire.patterns.events import Event, SessionKey, ToolCall, ToolExchange, ToolResult
from prefire.proxy.calljoin import Joined, ModelCall, RestAmbiguous, RestCall, RestJoin
from prefire.wire.observer import Observer
from prefire.wire.sessions import json_safe, mcp_session

log = structlog.get_logger(__name__)

_AMBIGUOUS = "ambiguous"
# (conversation, call id, model name, server tool, canonical args), or _AMBIGUOUS
_Waiting = tuple[SessionKey, str, str, str, bytes] | str
DOUBT_S = 300.0  # as long as CallJoin keeps a model call waiting
_NOT_TEXT = "replace"  # a REST body that is not UTF-8 is still learned, as text


class ToolSideResults:
    def __init__(
        self,
        observer: Observer,
        learn: Callable[[Event], None],
        rest_tool: Callable[[str, str], bool] = lambda client, name: True,
        capacity: int = 4096,
    ) -> None:
        """`rest_tool(client, name)`: whether a model-side call may run as a REST request
        (no MCP binding explains it)."""
        self.observer = observer
        self.learn = learn
        self.rest_tool = rest_tool
        # (client, MCP session key, server URL, JSON-RPC id) of a tools/call ->
        # (conversation, call id, model name, server tool, canonical args), or
        # _AMBIGUOUS when two joins came under one key
        self._waiting: LRU[tuple[str, SessionKey, str, Any], _Waiting] = LRU(capacity)
        # (client, tool, canonical args) -> time of an uncertain join: a later join of the same
        # call is certain only because the first took one conversation away, which may
        # have been the wrong one
        self._doubtful: LRU[tuple[str, str, bytes], float] = LRU(capacity)
        self.rest_join = RestJoin()
        # flow id of a REST request joined with certainty -> (conversation, call id, name)
        self._rest: LRU[str, tuple[SessionKey, str, str]] = LRU(capacity)

    def joined(self, joined: Joined) -> None:
        """A tools/call was joined to the model's call it runs (Speculator.on_join)."""
        model, server = joined.model, joined.server
        self.rest_join.ran_elsewhere(model)
        if not self._certain(joined.certain, (server.client, server.tool, server.args), model):
            return
        session = mcp_session(server.scope, server.mcp_session)
        key = (server.client, session, server.server, _id(server.request_id))
        if key in self._waiting:
            self._waiting[key] = _AMBIGUOUS
            return
        self._waiting[key] = (model.session, model.call_id, model.name, server.tool, server.args)

    def _certain(self, certain: bool, call: tuple[str, str, bytes], model: ModelCall) -> bool:
        """Whether a join may teach: it is certain, and no uncertain join of the same call
        came shortly before."""
        doubt = self._doubtful.get(call)
        if certain and (doubt is None or model.t - doubt > DOUBT_S):
            return True
        self._doubtful[call] = model.t
        log.info(
            "tool_result.not_learned",
            why="another conversation made the same call",
            tool=call[1],
            session=str(model.session),
        )
        return False

    def __call__(self, event: Event) -> None:
        """Listener: a model-side call may run as a REST request; an MCP exchange that
        answers a joined call teaches its conversation."""
        if isinstance(event, ToolCall):
            self._model_call(event)
            return
        if not isinstance(event, ToolExchange) or event.transport != "mcp":
            return
        origin = self.observer.origin(event.session)
        if origin is None:
            return
        key = (origin[0], event.session, event.url, _id(event.request_id))
        waiting = self._waiting.pop(key, None)
        if waiting is None:
            return
        if isinstance(waiting, str):  # _AMBIGUOUS
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

    def _model_call(self, event: ToolCall) -> None:
        origin = self.observer.origin(event.session)
        if origin is None or not isinstance(event.arguments, dict):
            return
        if not self.rest_tool(origin[0], event.name):
            return
        args = canonical_key(event.arguments)
        call = ModelCall(origin[0], event.session, event.call_id, event.name, args, event.t)
        self.rest_join.model_call(call, event.arguments)

    # -- REST: told by the addon -------------------------------------------------

    def rest_request(
        self, xid: str, client: str, method: str, url: str, content: bytes, t: float
    ) -> bool:
        """A plain HTTP request of the agent (`content`: its decoded body); True when it
        runs a call whose result will be learned (then tell `rest_response` or
        `rest_forget` of flow `xid`)."""
        if not self.rest_join.waiting(client):
            return False  # the common case: no body to parse
        body = loads_or_none(content) if content else None
        outcome = self.rest_join.request(RestCall(client, method, url, body, t))
        if isinstance(outcome, RestAmbiguous):
            log.info("join.ambiguous", url=url, model_names=list(outcome.names))
            return False
        if outcome is None:
            return False
        model = outcome.model
        if not self._certain(outcome.certain, (client, model.name, model.args), model):
            return False
        self._rest[xid] = (model.session, model.call_id, model.name)
        return True

    def rest_response(self, xid: str, status: int, body: bytes, t: float) -> None:
        """The response to a joined REST request: its body is the call's result."""
        waiting = self._rest.pop(xid, None)
        if waiting is None:
            return
        session, call_id, name = waiting
        content = loads_or_none(body) if body else None
        if content is None and body:
            content = body.decode("utf-8", _NOT_TEXT)
        self.learn(
            ToolResult(
                session=session,
                t=t,
                call_id=call_id,
                name=name,
                content=json_safe(content),
                is_error=not 200 <= status < 300,
            )
        )

    def rest_forget(self, xid: str) -> None:
        """The joined request failed (no response): nothing to learn."""
        self._rest.pop(xid, None)

    def following(self, xid: str) -> bool:
        return xid in self._rest


def _id(request_id: Any) -> Any:
    # JSON-RPC ids are strings or numbers; lists would not hash
    return request_id if isinstance(request_id, str | int | float) else repr(request_id)
