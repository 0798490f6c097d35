"""How a call the speculator wants becomes a call it can make, or why it cannot.

The model-side name resolves to an MCP server's tool (proxy/bindings.py) or to a REST
request (a template declared in the rules or learned from the client's traffic); a rule
must allow it; a rule with `session: agent` needs the conversation's own open MCP
session. The plan holds the cache key the agent's own request will build, the name the
call is counted and served under, and the call itself (proxy/caller.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from prefire.patterns.events import SessionKey
from prefire.proxy.bindings import Bindings, Target
from prefire.proxy.cache import CacheKey, Fetch
from prefire.proxy.caller import Caller
from prefire.proxy.rest import RestLearner
from prefire.rules import rest
from prefire.rules.files import RulesWatcher
from prefire.rules.rest import RestRequest
from prefire.rules.ruleset import Rule
from prefire.wire.sessions import tool_scope_of


@dataclass(frozen=True, slots=True)
class Plan:
    """How an allowed call is made: its cache key, the name it is counted and served
    under (the server's, for MCP), its tags (scope, server) and the call itself."""

    key: CacheKey
    name: str
    tags: tuple[str, str]
    rule: Rule
    call: Fetch
    is_mcp: bool


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a call cannot be made early; `relayable`: this replica has no binding for it
    (another replica may have one)."""

    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    relayable: bool = False


class Planner:
    def __init__(
        self, rules: RulesWatcher, bindings: Bindings, rest: RestLearner, caller: Caller
    ) -> None:
        self.rules = rules
        self.bindings = bindings
        self.rest = rest
        self.caller = caller

    def plan(
        self, client: str, tool: str, args: dict[str, Any], session: SessionKey | None
    ) -> Plan | Skip:
        """The plan of `client`'s call of `tool` (the name the model calls it by) for
        `session` (None: asked for by another replica)."""
        target = self.bindings.resolve(client, tool)
        if isinstance(target, Target):
            return self._mcp(target, tool, args, session)
        planned = self._rest_request(client, tool, args)
        if planned is None:
            return Skip(target.reason, target.detail, relayable=True)
        return self._rest(*planned, tool)

    def _mcp(
        self, target: Target, tool: str, args: dict[str, Any], session: SessionKey | None
    ) -> Plan | Skip:
        server, name = target.server, target.tool
        decision = self.rules.current.decide(
            (tool, name), server=server.url, annotations=server.annotations.get(name)
        )
        if not decision.allowed or decision.rule is None:
            return Skip("rule_denied", {"why": decision.reason})
        agent_session = None
        if decision.rule.session == "agent" and not server.sessionless:
            # the conversation's own session, if the join has seen it and it is open
            if session is not None:
                agent_session = self.bindings.agent_session(session, server)
            if agent_session is None:
                return Skip("agent_session_unknown", {"server": server.url})
        binding = f"{server.id}|{server.protocol}"
        if agent_session is not None:
            binding += "|" + agent_session
        return Plan(
            CacheKey.mcp(server.scope, binding, name, args),
            name,
            (server.scope, server.url),
            decision.rule,
            partial(self.caller.call_mcp, server, name, args, agent_session),
            is_mcp=True,
        )

    def _rest(
        self, request: RestRequest, headers: dict[str, str], scope: str, tool: str
    ) -> Plan | Skip:
        decision = self.rules.current.decide(
            tool, method=request.method, host=urlsplit(request.url).hostname
        )
        if not decision.allowed or decision.rule is None:
            return Skip("rule_denied", {"why": decision.reason})
        return Plan(
            CacheKey.rest(scope, request.method, request.url, request.body),
            tool,
            (scope, rest.origin(request.url)),
            decision.rule,
            partial(self.caller.call_rest, request, headers, tool),
            is_mcp=False,
        )

    def _rest_request(
        self, client: str, tool: str, args: dict[str, Any]
    ) -> tuple[RestRequest, dict[str, str], str] | None:
        """The request a REST tool call becomes, the headers to send and its scope: from a
        binding declared in the rules, or one learned from this client's traffic."""
        declared = self.rules.current.decide(tool).rule
        template = declared.rest if declared is not None and declared.rest is not None else None
        template = template or self.rest.binding(client, tool)
        if template is None:
            return None
        try:
            request = template.render(args)
        except KeyError:
            return None
        headers = self.rest.headers_for(client, request.url)
        if headers is None:
            return None  # this client sent that host more than one set of credentials
        return request, headers, tool_scope_of(headers, request.url)
