"""Links stateless LLM requests into conversations and turns codec records into events.

Chat APIs repeat the whole history in every request. A request continues the
conversation whose last request is the longest prefix of its history (found
through rolling hashes of the items, O(history) per request); the items past
that prefix are what is new. Responses API requests chain by
`previous_response_id`; MCP traffic is keyed by `Mcp-Session-Id`.
A scope is a hash of the credentials a request carries; the credentials
themselves are never kept.

Replicas sharing a store tell each other where conversations stand (`on_link`:
a request's prefix hash, a call announced in a response, a response id), so a
conversation whose requests a load balancer spreads over several replicas stays
one conversation, under one id, on all of them (`remote_link`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lru import LRU

from prefire.patterns.canonical import canonical
from prefire.patterns.events import (
    Event,
    LLMRequest,
    SessionKey,
    ToolCall,
    ToolResult,
    ToolsOffered,
    UserMessage,
    toolset_id,
)
from prefire.proxy.providers.base import (
    SYSTEM,
    TOOL_CALL,
    TOOL_RESULT,
    USER,
    CallDraft,
    Item,
    ParsedRequest,
)

CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "proxy-authorization",
)
CREDENTIAL_QUERY_KEYS = ("key", "api_key", "api-key")
# Header and query names that may carry a secret besides the well-known ones above:
# Cookie, X-Auth-Token, Private-Token, X-Access-Token, Ocp-Apim-Subscription-Key,
# X-Functions-Key, X-Session-Token, ?access_token=, ?sig= ... Such values are redacted
# from captures and logs, are part of a tool request's scope, and are repeated by
# speculative calls (so that they run as the agent's own would).
_SECRET_NAME = re.compile(
    r"auth|token|secret|passw|credential|cookie|signature|session|api[-_]?key|"
    r"subscription-key|functions-key|^key$|^sig$",
    re.IGNORECASE,
)
# Secret-looking names that identify a session rather than a tenant: kept out of scopes
# (one agent opens many MCP sessions), hashed rather than dropped in captures.
SESSION_HEADERS = ("mcp-session-id",)
_REMEMBERED_CALLS = 512


def is_secret(name: str) -> bool:
    """Whether a header or query parameter of this name may carry a secret."""
    return name.lower() in CREDENTIAL_HEADERS or _SECRET_NAME.search(name) is not None


def repeated_by_speculation(name: str) -> bool:
    """Whether a speculative call repeats this secret header of the agent's request: all
    but the proxy's own credential (mitmproxy removes it anyway once checked)."""
    return is_secret(name) and name.lower() != "proxy-authorization"


def scope_of(headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str = "") -> str:
    """The tenant key of an LLM request: a hash of its credentials (API-key headers and
    query parameters). Cookies are left out: SDKs keep the cookies an API sets, which
    change, and a conversation must stay in one scope."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    creds = sorted((k.lower(), v) for k, v in pairs if k.lower() in CREDENTIAL_HEADERS)
    if url:
        query = parse_qsl(urlsplit(url).query)
        creds += sorted(("?" + k, v) for k, v in query if k.lower() in CREDENTIAL_QUERY_KEYS)
    return _hash(creds)


def tool_scope_of(headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str = "") -> str:
    """The tenant key of a tool request (MCP, REST): a hash of every header and query
    parameter that may carry a secret, cookies included, session ids excluded. A
    speculative result is served only to a request of the same tool scope."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    creds = sorted(
        (k.lower(), v) for k, v in pairs if is_secret(k) and k.lower() not in SESSION_HEADERS
    )
    if url:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        creds += sorted(("?" + k, v) for k, v in query if is_secret(k))
    return _hash(creds)


def _hash(creds: list[tuple[str, str]]) -> str:
    h = hashlib.blake2b(canonical(creds), digest_size=8, person=b"prefire-scope")
    return h.hexdigest()


@dataclass(slots=True)
class _Conversation:
    id: str
    toolset: str = ""
    # call id -> tool name, for calls already announced (from a response or from history)
    calls: dict[str, str] = field(default_factory=dict)
    # prefix hashes of this conversation's requests, oldest first
    hashes: dict[bytes, None] = field(default_factory=dict)

    def remember(self, call_id: str, name: str) -> None:
        self.calls[call_id] = name
        if len(self.calls) > _REMEMBERED_CALLS:
            del self.calls[next(iter(self.calls))]

    def add_hash(self, h: bytes) -> None:
        self.hashes[h] = None
        if len(self.hashes) > _REMEMBERED_CALLS:
            del self.hashes[next(iter(self.hashes))]


def json_safe(value: Any) -> Any:
    """`value` if it has a canonical form, else None.

    orjson reads JSON nested up to 1024 levels but writes only 254: a value nested
    deeper can be parsed but never compared, hashed or stored, so events carry None
    in its place (as for arguments that are not JSON).
    """
    try:
        canonical(value)
    except (TypeError, ValueError):
        return None
    return value


def _item_hash(prev: bytes, item: Item) -> tuple[bytes, bool]:
    """The rolling hash after `item`, and whether the item's values have a canonical form."""
    fields = [item.role, item.text, item.call_id, item.name, item.raw_arguments, item.content]
    try:
        body, ok = canonical(fields), True
    except (TypeError, ValueError):  # nested too deep to write (see json_safe)
        fields[-1] = None
        body, ok = canonical(fields) + b"\0deep", False
        with contextlib.suppress(RecursionError, ValueError, TypeError):
            body += json.dumps(item.content, sort_keys=True).encode("utf-8", "replace")
    return hashlib.blake2b(prev + body, digest_size=16).digest(), ok


# What `on_link` reports and `remote_link` takes: kind ("prefix", "call", "response"),
# session, and the hash (hex), the (call id, tool name), or the response id.
Link = Callable[[str, SessionKey, Any], None]


class Sessions:
    def __init__(self, max_prefixes: int = 200_000, max_conversations: int = 50_000) -> None:
        self._prefixes: LRU = LRU(max_prefixes)  # (scope, api, hash) -> conversation id
        self._responses: LRU = LRU(max_prefixes)  # (scope, response id) -> conversation id
        self._call_owner: LRU = LRU(max_prefixes)  # (scope, call id) -> conversation id
        self._conversations: LRU = LRU(max_conversations)  # conversation id -> _Conversation
        self.on_link: Link | None = None  # told how this replica linked a request

    def remote_link(self, kind: str, session: SessionKey, value: Any) -> None:
        """How another replica linked a request of `session` (whose conversation id is
        already in this replica's naming): the next request of that conversation that
        lands here continues it, with only its new items as events."""
        conv = self._get(session.conversation)
        if conv is None:
            conv = self._conversations[session.conversation] = _Conversation(session.conversation)
        scope = session.scope
        if kind == "prefix" and isinstance(value, str):
            h = bytes.fromhex(value)
            self._prefixes[(scope, h)] = conv.id
            conv.add_hash(h)
        elif kind == "call" and isinstance(value, list) and len(value) == 2:
            call_id, name = str(value[0]), str(value[1])
            conv.remember(call_id, name)
            self._call_owner[(scope, call_id)] = conv.id
        elif kind == "response" and isinstance(value, str):
            self._responses[(scope, value)] = conv.id

    def _link(self, kind: str, session: SessionKey, value: Any) -> None:
        if self.on_link is not None:
            self.on_link(kind, session, value)

    def request_events(
        self, scope: str, req: ParsedRequest, t: float
    ) -> tuple[SessionKey, list[Event]]:
        """Place a request in its conversation and return the events its new items carry."""
        hashes: list[bytes] = []
        deep: set[int] = set()  # indexes of items whose values have no canonical form
        h = req.api.encode()
        for i, item in enumerate(req.items):
            h, ok = _item_hash(h, item)
            hashes.append(h)
            if not ok:
                deep.add(i)

        conv: _Conversation | None = None
        start = 0
        if req.previous_response_id:
            conv = self._get(self._responses.get((scope, req.previous_response_id)))
        else:
            conv, start = self._continued(scope, req, hashes)
        if conv is None:
            conv = _Conversation(secrets.token_hex(4))
            self._conversations[conv.id] = conv
        session = SessionKey(scope, conv.id)
        if hashes:
            self._prefixes[(scope, hashes[-1])] = conv.id
            conv.add_hash(hashes[-1])
            self._link("prefix", session, hashes[-1].hex())
        items = [
            _without_values(item) if i in deep else item
            for i, item in enumerate(req.items[start:], start)
        ]
        return session, self._new_item_events(session, conv, req, items, t)

    def _continued(
        self, scope: str, req: ParsedRequest, hashes: list[bytes]
    ) -> tuple[_Conversation | None, int]:
        """The conversation a stateless request continues and how many of its items
        that conversation has seen; (None, 0) for a new conversation.

        The owner of the history's last tool call decides first: two runs of the
        same task share their early prefixes, but not their call ids. Failing that,
        the longest known prefix decides.
        """
        has_history = any(i.role in (TOOL_CALL, TOOL_RESULT) for i in req.items)
        # An exact repeat of a first request is a new run of the same task, not a retry.
        top = len(hashes) if has_history else len(hashes) - 1
        last_call = next((i for i in reversed(req.items) if i.role == TOOL_CALL), None)
        if last_call is not None:
            owner = self._get(self._call_owner.get((scope, last_call.call_id)))
            if owner is not None:
                for k in range(top, 0, -1):
                    if hashes[k - 1] in owner.hashes:
                        return owner, k
        for k in range(top, 0, -1):
            conv = self._get(self._prefixes.get((scope, hashes[k - 1])))
            if conv is not None:
                return conv, k
        return None, 0

    def _new_item_events(
        self,
        session: SessionKey,
        conv: _Conversation,
        req: ParsedRequest,
        items: Iterable[Item],
        t: float,
    ) -> list[Event]:
        events: list[Event] = []
        if req.tools:
            toolset = toolset_id(req.tools)
            if toolset != conv.toolset:
                conv.toolset = toolset
                events.append(ToolsOffered(session=session, t=t, tools=req.tools, api=req.api))
        new_input = False
        for item in items:
            if item.role == USER and item.text:
                events.append(UserMessage(session=session, t=t, text=item.text))
                new_input = True
            elif item.role == SYSTEM and item.text:
                events.append(UserMessage(session=session, t=t, text=item.text, role="system"))
            elif item.role == TOOL_CALL and item.call_id not in conv.calls:
                conv.remember(item.call_id, item.name)
                self._call_owner[(session.scope, item.call_id)] = conv.id
                self._link("call", session, [item.call_id, item.name])
                events.append(
                    ToolCall(
                        session=session,
                        t=t,
                        call_id=item.call_id,
                        name=item.name,
                        arguments=json_safe(item.arguments),
                        raw_arguments=item.raw_arguments,
                        api=req.api,
                    )
                )
            elif item.role == TOOL_RESULT:
                name = item.name or conv.calls.get(item.call_id, "")
                events.append(
                    ToolResult(
                        session=session,
                        t=t,
                        call_id=item.call_id,
                        name=name,
                        content=item.content,
                        is_error=item.is_error,
                    )
                )
                new_input = True
        if new_input:
            events.append(
                LLMRequest(session=session, t=t, api=req.api, model=req.model, stream=req.stream)
            )
        return events

    def call_event(
        self, session: SessionKey, draft: CallDraft, api: str, t: float
    ) -> ToolCall | None:
        """The event for a call the LLM just emitted, or None if it was already announced."""
        conv = self._get(session.conversation)
        if draft.arguments is not None and json_safe(draft.arguments) is None:
            draft = replace(draft, arguments=None)
        if conv is not None:
            if draft.call_id in conv.calls:
                return None
            conv.remember(draft.call_id, draft.name)
            self._call_owner[(session.scope, draft.call_id)] = conv.id
            self._link("call", session, [draft.call_id, draft.name])
        return ToolCall(
            session=session,
            t=t,
            call_id=draft.call_id,
            name=draft.name,
            arguments=draft.arguments,
            raw_arguments=draft.raw_arguments,
            api=api,
        )

    def response_done(self, session: SessionKey, response_id: str) -> None:
        """Remember which conversation a response belongs to (Responses API chains)."""
        if response_id:
            self._responses[(session.scope, response_id)] = session.conversation
            self._link("response", session, response_id)

    def _get(self, conv_id: str | None) -> _Conversation | None:
        if conv_id is None:
            return None
        return self._conversations.get(conv_id)


def _without_values(item: Item) -> Item:
    """An item whose content has no canonical form, with None in its place."""
    return replace(item, content=None)


def mcp_session(scope: str, session_id: str) -> SessionKey:
    return SessionKey(scope, "mcp-" + (session_id or "none"))
