"""Joins the model's side of a tool call with the tool server's side of the same call.

The model calls a tool by the name its client showed it (Claude Code shows an MCP tool
as `mcp__<server>__<tool>`), then the client runs it on the server under the server's
own name, with the same arguments, shortly after. Pairing the two tells prefire which
server tool a model name stands for, for this client, and which MCP session the
conversation's calls ride on.

A server call joins a model call of the same client with the same canonical arguments
made at most `window_s` before it (or `skew_s` after it: the two sides are seen by
different hooks). Among several such model calls, those whose name fits the server's
name by a common convention come first; if the rest still name more than one tool the
join is ambiguous and nothing is learned. Two conversations calling the same tool with
the same arguments at once join fine for the name, but say nothing certain about which
conversation the session belongs to (`Joined.certain` is False).

A REST tool has no name on the wire: `RestJoin` pairs a model call with the plain HTTP
request that carries all of its arguments instead (below).

Pure: no I/O, no clock; times are passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lru import LRU

from prefire.patterns.events import SessionKey
from prefire.rules.rest import derive

# how a client puts a server's name before a tool's: mcp__weather__get_weather,
# weather__get_weather, weather.get_weather, weather-get_weather, weather/get_weather
SEPARATORS = ("__", ".", "-", "/", ":")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_PER_KEY = 64  # pending calls kept per (client, arguments)


def normalized(name: str) -> str:
    """A name as clients that allow only [A-Za-z0-9_-] in tool names write it."""
    return _UNSAFE.sub("_", name)


def names_fit(model_name: str, tool: str) -> bool:
    """Whether a model-side name is `tool` itself or `tool` behind a server prefix."""
    for a, b in ((model_name, tool), (normalized(model_name), normalized(tool))):
        if a == b or any(a.endswith(sep + b) and len(a) > len(sep + b) for sep in SEPARATORS):
            return True
    return False


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A tool call the LLM emitted, as the proxy saw it."""

    client: str  # the agent's address
    session: SessionKey  # its conversation
    call_id: str
    name: str
    args: bytes  # canonical arguments
    t: float


@dataclass(frozen=True, slots=True)
class ServerCall:
    """A tools/call the agent sent to an MCP server."""

    client: str
    scope: str  # the tool scope: a hash of the credentials the request carried
    server: str  # the server's URL
    tool: str
    args: bytes
    mcp_session: str  # Mcp-Session-Id; "" for a protocol without sessions
    request_id: Any
    t: float


@dataclass(frozen=True, slots=True)
class Joined:
    model: ModelCall
    server: ServerCall
    # False when conversations other than model.session made the same call at the time:
    # the name is known, the session's owner is not
    certain: bool


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """The server call fits model calls of more than one name: nothing is learned."""

    server: ServerCall
    names: tuple[str, ...]


Outcome = Joined | Ambiguous | None


class CallJoin:
    def __init__(self, window_s: float = 300.0, skew_s: float = 5.0, capacity: int = 4096) -> None:
        self.window_s = window_s
        self.skew_s = skew_s
        # (client, args) -> calls not joined yet, oldest first
        self._models: LRU[tuple[str, bytes], list[ModelCall]] = LRU(capacity)
        self._servers: LRU[tuple[str, bytes], list[ServerCall]] = LRU(capacity)

    def model_call(self, call: ModelCall) -> Outcome:
        """The LLM emitted a call: join it with a server call seen first, else keep it."""
        key = (call.client, call.args)
        waiting = self._fresh(self._servers, key, call.t, self.skew_s, 0.0)
        # a server call that came first (within the skew) and fits this name
        for s in waiting:
            if names_fit(call.name, s.tool):
                self._servers[key].remove(s)
                return Joined(call, s, True)
        _keep(self._models, key, call)
        return None

    def server_call(self, call: ServerCall) -> Outcome:
        """The agent sent tools/call: join it with the model call it runs, if one fits."""
        key = (call.client, call.args)
        pending = self._fresh(self._models, key, call.t, self.window_s, self.skew_s)
        if not pending:
            _keep(self._servers, key, call)
            return None
        fitting = [m for m in pending if names_fit(m.name, call.tool)] or pending
        names, first, certain = _first_fitting(fitting)
        if len(names) > 1:
            return Ambiguous(call, names)
        self._models[key].remove(first)
        return Joined(first, call, certain)

    def _fresh(
        self, table: LRU, key: tuple[str, bytes], t: float, before: float, after: float
    ) -> list[Any]:
        """The calls kept under `key` made between t - before and t + after, oldest first
        (a copy; older ones are forgotten)."""
        calls: list[Any] | None = table.get(key)
        if calls is None:
            return []
        calls[:] = [c for c in calls if c.t >= t - before]
        return [c for c in calls if c.t <= t + after]


@dataclass(frozen=True, slots=True)
class RestCall:
    """A plain HTTP request of the agent (neither to an LLM nor MCP) that may run a tool."""

    client: str
    method: str
    url: str
    body: Any  # decoded JSON, or None
    t: float


@dataclass(frozen=True, slots=True)
class RestJoined:
    model: ModelCall
    request: RestCall
    # False when conversations other than model.session had a fitting call waiting
    certain: bool


@dataclass(frozen=True, slots=True)
class RestAmbiguous:
    """The request fits waiting calls of more than one name: nothing is learned."""

    request: RestCall
    names: tuple[str, ...]


RestOutcome = RestJoined | RestAmbiguous | None


class RestJoin:
    """Pairs a model-side call with the REST request that runs it: a request of the same
    client, at most `window_s` later, in which every argument of the call appears (a path
    segment, a query value, a JSON body value: rules/rest.py `derive`, the test the REST
    template learner applies). The caller offers only calls no MCP binding explains.
    The window is shorter than for MCP: a client runs a REST call right after the model
    asks, and a plain request matched by its values alone should not be an old call's."""

    def __init__(self, window_s: float = 60.0, capacity: int = 4096) -> None:
        self.window_s = window_s
        # client -> calls not joined yet, oldest first, with their arguments
        self._waiting: LRU[str, list[tuple[ModelCall, dict[str, Any]]]] = LRU(capacity)

    def model_call(self, call: ModelCall, arguments: dict[str, Any]) -> None:
        calls = self._waiting.get(call.client) or []
        if any(m.call_id == call.call_id and m.session == call.session for m, _ in calls):
            return  # seen again (a history repeated)
        _keep(self._waiting, call.client, (call, arguments))

    def ran_elsewhere(self, call: ModelCall) -> None:
        """The call was joined to a tools/call: no REST request runs it."""
        calls = self._waiting.get(call.client) or []
        calls[:] = [(m, a) for m, a in calls if m.call_id != call.call_id]

    def waiting(self, client: str) -> bool:
        """Whether any call of this client waits for its request."""
        return bool(self._waiting.get(client))

    def request(self, req: RestCall) -> RestOutcome:
        calls = self._waiting.get(req.client)
        if not calls:
            return None
        calls[:] = [(m, a) for m, a in calls if m.t >= req.t - self.window_s]
        fitting = [m for m, a in calls if derive(req.method, req.url, req.body, a) is not None]
        if not fitting:
            return None
        names, first, certain = _first_fitting(fitting)
        if len(names) > 1:
            return RestAmbiguous(req, names)
        calls[:] = [(m, a) for m, a in calls if m is not first]
        return RestJoined(first, req, certain)


def _keep(table: LRU, key: Any, item: Any) -> None:
    """Keep `item` under `key`, the newest `_PER_KEY` only."""
    items = table.get(key)
    if items is None:
        items = table[key] = []
    items.append(item)
    del items[:-_PER_KEY]


def _first_fitting(fitting: list[ModelCall]) -> tuple[tuple[str, ...], ModelCall, bool]:
    """Of the waiting model calls a request fits (oldest first): their names (more than
    one: ambiguous), the one it runs, and whether no other conversation had one waiting."""
    first = fitting[0]
    names = tuple(dict.fromkeys(m.name for m in fitting))
    return names, first, all(m.session == first.session for m in fitting)
