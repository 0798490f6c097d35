"""REST bindings learned from traffic.

An LLM asks for `get_weather(city="Paris")`; moments later the same client sends
`GET https://api.example.com/weather?q=Paris`. Every argument of the call
appears in the request (a path segment, a query value, a JSON body value), so
the request is a template of the call: `.../weather?q={city}`. A template is
trusted once two different calls produced the same template; from then on the
tool can be run early by rendering the template, with the credential headers
the client last sent to that host.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lru import LRU

from prefire.patterns.canonical import canonical_key
from prefire.proxy.cache import Clock
from prefire.rules.rest import RestTemplate, derive, origin
from prefire.wire.sessions import repeated_by_speculation, tool_scope_of

CONFIRMATIONS = 2
_WINDOW_S = 30.0  # a request this long after a call can still be that call's
# headers a speculative request repeats: the secret ones (see sessions.is_secret) and these
_KEPT_HEADERS = ("accept", "user-agent")
# a client that sent two sets of credentials to one host within this long is ambiguous:
# nothing is fired there, as for MCP (prefire never guesses whose credentials to use)
_AMBIGUITY_WINDOW_S = 600.0


@dataclass(slots=True)
class _Learned:
    template: RestTemplate
    seen_args: set[bytes] = field(default_factory=set)

    @property
    def trusted(self) -> bool:
        return len(self.seen_args) >= CONFIRMATIONS


class RestLearner:
    def __init__(self, capacity: int = 10_000, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        # client -> deque of (t, tool, arguments)
        self._recent: LRU[str, deque[tuple[float, str, dict[str, Any]]]] = LRU(capacity)
        self._learned: LRU[tuple[str, str], _Learned] = LRU(capacity)  # (client, tool) -> _Learned
        # (client, scheme://host) -> {tool scope: (headers to repeat, last seen)}
        self._headers: LRU[tuple[str, str], dict[str, tuple[dict[str, str], float]]] = LRU(capacity)

    def call_seen(self, client: str, tool: str, arguments: dict[str, Any]) -> None:
        """A tool call the LLM made that no MCP binding explains: a REST request may follow."""
        recent = self._recent.get(client)
        if recent is None:
            recent = self._recent[client] = deque(maxlen=32)
        recent.append((self._clock(), tool, arguments))

    def request_seen(
        self, client: str, method: str, url: str, headers: list[tuple[str, str]], body: Any
    ) -> None:
        kept = {
            k.lower(): v
            for k, v in headers
            if k.lower() in _KEPT_HEADERS or repeated_by_speculation(k)
        }
        by_scope = self._headers.get((client, origin(url)))
        if by_scope is None:
            by_scope = self._headers[(client, origin(url))] = {}
        now = self._clock()
        by_scope[tool_scope_of(headers)] = (kept, now)
        for scope, (_, seen) in list(by_scope.items()):
            if now - seen > _AMBIGUITY_WINDOW_S:
                del by_scope[scope]
        recent = self._recent.get(client)
        if not recent:
            return
        now = self._clock()
        for i in range(len(recent) - 1, -1, -1):
            t, tool, arguments = recent[i]
            if now - t > _WINDOW_S:
                break
            template = derive(method, url, body, arguments)
            if template is None:
                continue
            del recent[i]
            learned = self._learned.get((client, tool))
            if learned is None or learned.template != template:
                learned = self._learned[(client, tool)] = _Learned(template)
            if not learned.trusted:  # enough once trusted: the set must not grow forever
                learned.seen_args.add(canonical_key(arguments))
            return

    def binding(self, client: str, tool: str) -> RestTemplate | None:
        learned = self._learned.get((client, tool))
        return learned.template if learned is not None and learned.trusted else None

    def headers_for(self, client: str, url: str) -> dict[str, str] | None:
        """The headers this client sends to the URL's host, or None when it sent more than
        one set of credentials there lately (ambiguous: whose would a call run as?)."""
        by_scope = self._headers.get((client, origin(url))) or {}
        now = self._clock()
        recent = [h for h, seen in by_scope.values() if now - seen <= _AMBIGUITY_WINDOW_S]
        if len(recent) > 1:
            return None
        return dict(recent[0]) if recent else {}
