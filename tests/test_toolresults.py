"""The tool's own result reaches the conversation whose call it ran, and no other."""

from __future__ import annotations

import json
from typing import Any

from prefire.patterns.canonical import canonical_key
from prefire.patterns.events import Event, SessionKey, ToolExchange, ToolResult
from prefire.proxy.calljoin import CallJoin, ModelCall, ServerCall
from prefire.proxy.toolresults import ToolSideResults
from prefire.wire.observer import Observer
from prefire.wire.sessions import tool_scope_of

URL = "http://tools.local/mcp"
ARGS = {"q": "shoes"}


class Rig:
    """An observer that sees MCP exchanges, the join, and what is learned."""

    def __init__(self) -> None:
        self.learned: list[Event] = []
        self.results = ToolSideResults(Observer(), self.learned.append)
        self.join = CallJoin()
        self._n = 0

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.results(event)

    def model_call(self, client: str, conversation: str, call_id: str, t: float) -> None:
        session = SessionKey("llm-" + client, conversation)
        call = ModelCall(client, session, call_id, "search", canonical_key(ARGS), t)
        assert self.join.model_call(call) is None

    def tools_call(
        self, client: str, session_id: str, rpc_id: int, result: Any, t: float, args: Any = ARGS
    ) -> None:
        """The agent's tools/call and the server's answer; the speculator's join of it."""
        self._n += 1
        xid = f"x{self._n}"
        body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call"}
        body["params"] = {"name": "search", "arguments": args}
        headers = [("mcp-session-id", session_id), ("authorization", f"Bearer {client}")]
        self._emit(
            self.results.observer.request(
                xid, "POST", URL, "/mcp", headers, json.dumps(body).encode(), t, client
            )
        )
        assert self.results.observer.exchange(xid) is not None
        scope = tool_scope_of(headers, URL)
        server = ServerCall(
            client, scope, URL, "search", canonical_key(args), session_id, rpc_id, t
        )
        outcome = self.join.server_call(server)
        if outcome is not None:
            self.results.joined(outcome)  # type: ignore[arg-type]
        text = json.dumps(result)
        reply = {
            "jsonrpc": "2.0",
            "id": rpc_id,
            "result": {"content": [{"type": "text", "text": text}]},
        }
        self._emit(
            self.results.observer.response(
                xid, 200, "application/json", json.dumps(reply).encode(), t + 0.2
            )
        )


def learned(rig: Rig) -> list[tuple[str, str, Any]]:
    return [
        (str(e.session), e.call_id, e.content) for e in rig.learned if isinstance(e, ToolResult)
    ]


def test_a_joined_call_learns_the_servers_result_in_its_conversation() -> None:
    rig = Rig()
    rig.model_call("10.0.0.1", "conv-a", "call_1", 1.0)
    rig.tools_call("10.0.0.1", "sess-a", 7, {"ids": ["a-1"]}, 1.1)
    assert learned(rig) == [("llm-10.0.0.1/conv-a", "call_1", {"ids": ["a-1"]})]


def test_two_clients_making_the_same_call_at_once_each_learn_their_own() -> None:
    rig = Rig()
    rig.model_call("10.0.0.1", "conv-a", "call_a", 1.0)
    rig.model_call("10.0.0.2", "conv-b", "call_b", 1.0)
    # the same session id and JSON-RPC id on both sides, the answers interleaved
    rig.tools_call("10.0.0.2", "s", 1, {"ids": ["b-1"]}, 1.1)
    rig.tools_call("10.0.0.1", "s", 1, {"ids": ["a-1"]}, 1.1)
    assert sorted(learned(rig)) == [
        ("llm-10.0.0.1/conv-a", "call_a", {"ids": ["a-1"]}),
        ("llm-10.0.0.2/conv-b", "call_b", {"ids": ["b-1"]}),
    ]


def test_two_conversations_of_one_client_making_the_same_call_learn_nothing() -> None:
    rig = Rig()
    rig.model_call("10.0.0.1", "conv-a", "call_a", 1.0)
    rig.model_call("10.0.0.1", "conv-b", "call_b", 1.0)
    rig.tools_call("10.0.0.1", "sa", 1, {"ids": ["x"]}, 1.1)
    rig.tools_call("10.0.0.1", "sb", 1, {"ids": ["y"]}, 1.1)
    assert learned(rig) == []  # whose result is whose is not known
    # later, one conversation making that call alone learns again
    rig.model_call("10.0.0.1", "conv-c", "call_c", 1000.0)
    rig.tools_call("10.0.0.1", "sc", 1, {"ids": ["z"]}, 1000.1)
    assert learned(rig) == [("llm-10.0.0.1/conv-c", "call_c", {"ids": ["z"]})]


def test_an_exchange_that_is_not_the_joined_one_teaches_nothing() -> None:
    rig = Rig()
    rig.model_call("10.0.0.1", "conv-a", "call_1", 1.0)
    rig.tools_call("10.0.0.1", "sess-a", 7, {"ids": ["a-1"]}, 1.1, args={"q": "hats"})
    assert learned(rig) == []  # not joined: other arguments
    assert not any(isinstance(e, ToolExchange) for e in rig.learned)


# -- REST: the response to a request joined with a model call is that call's result


def rest_rig() -> tuple[ToolSideResults, list[Event]]:
    got: list[Event] = []
    return ToolSideResults(Observer(), got.append), got


def rest_call(results: ToolSideResults, conversation: str, call_id: str, t: float) -> None:
    session = SessionKey("llm-c", conversation)
    call = ModelCall("c", session, call_id, "get_item", canonical_key({"id": "x-1"}), t)
    results.rest_join.model_call(call, {"id": "x-1"})


def test_a_joined_rest_response_is_learned_in_its_conversation() -> None:
    results, got = rest_rig()
    rest_call(results, "conv-a", "call_1", 1.0)
    assert not results.rest_request("f0", "c", "GET", "http://api/v1/search?q=x", b"", 1.1)
    assert results.rest_request("f1", "c", "GET", "http://api/v1/items/x-1", b"", 1.1)
    results.rest_response("f1", 200, b'{"id": "x-1", "owner": "u-7"}', 1.5)
    results.rest_response("f1", 200, b'{"id": "other"}', 1.6)  # once
    assert [(str(e.session), e.call_id, e.content, e.is_error) for e in got] == [
        ("llm-c/conv-a", "call_1", {"id": "x-1", "owner": "u-7"}, False)
    ]


def test_a_rest_error_is_learned_as_an_error_and_text_as_text() -> None:
    results, got = rest_rig()
    rest_call(results, "conv-a", "call_1", 1.0)
    assert results.rest_request("f1", "c", "GET", "http://api/v1/items/x-1", b"", 1.1)
    results.rest_response("f1", 404, b"no such item", 1.5)
    assert [(e.content, e.is_error) for e in got] == [("no such item", True)]


def test_a_rest_call_two_conversations_made_teaches_neither() -> None:
    results, got = rest_rig()
    rest_call(results, "conv-a", "call_a", 1.0)
    rest_call(results, "conv-b", "call_b", 1.0)
    for xid in ("f1", "f2"):
        assert not results.rest_request(xid, "c", "GET", "http://api/v1/items/x-1", b"", 1.1)
    assert got == []


def test_a_failed_rest_request_teaches_nothing() -> None:
    results, got = rest_rig()
    rest_call(results, "conv-a", "call_1", 1.0)
    assert results.rest_request("f1", "c", "GET", "http://api/v1/items/x-1", b"", 1.1)
    results.rest_forget("f1")
    results.rest_response("f1", 200, b"{}", 1.5)
    assert got == [] and not results.following("f1")


def test_a_rest_call_sent_as_a_json_body_is_joined() -> None:
    results, got = rest_rig()
    rest_call(results, "conv-a", "call_1", 1.0)
    assert not results.rest_request("f1", "c", "POST", "http://api/items", b"{}", 1.1)
    assert results.rest_request("f2", "c", "POST", "http://api/items", b'{"id": "x-1"}', 1.1)
    results.rest_response("f2", 200, b'{"id": "x-1", "owner": "u-7"}', 1.5)
    assert [e.content for e in got] == [{"id": "x-1", "owner": "u-7"}]
