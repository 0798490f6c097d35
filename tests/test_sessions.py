"""Sessions: linking stateless requests into conversations, and scopes."""

from __future__ import annotations

from prefire.patterns.events import (
    LLMRequest,
    ToolCall,
    ToolResult,
    ToolsOffered,
    ToolSpec,
    UserMessage,
)
from prefire.proxy.providers.base import (
    ASSISTANT,
    SYSTEM,
    TOOL_CALL,
    TOOL_RESULT,
    USER,
    CallDraft,
    Item,
    ParsedRequest,
)
from prefire.proxy.sessions import Sessions, scope_of

TOOLS = (ToolSpec("search"), ToolSpec("open"))
SYS = Item(SYSTEM, text="You are helpful.")
U1 = Item(USER, text="find flights to Oslo")
CALL = Item(
    TOOL_CALL, call_id="c1", name="search", arguments={"q": "Oslo"}, raw_arguments='{"q":"Oslo"}'
)
RES = Item(TOOL_RESULT, call_id="c1", content={"ids": [1, 2]})


def req(*items: Item, prev: str = "") -> ParsedRequest:
    return ParsedRequest(api="openai_chat", tools=TOOLS, items=items, previous_response_id=prev)


def test_first_request_emits_tools_user_and_llm_request() -> None:
    s = Sessions()
    session, events = s.request_events("scope", req(SYS, U1), 1.0)
    assert [type(e) for e in events] == [ToolsOffered, UserMessage, UserMessage, LLMRequest]
    assert all(e.session == session for e in events)
    # the system prompt is passed on for context (a stated date), marked as such
    assert (events[1].role, events[1].text) == ("system", "You are helpful.")
    assert (events[2].role, events[2].text) == ("user", "find flights to Oslo")


def test_followup_continues_conversation_and_only_new_items_are_events() -> None:
    s = Sessions()
    first, _ = s.request_events("scope", req(SYS, U1), 1.0)
    call = s.call_event(
        first, CallDraft("c1", "search", {"q": "Oslo"}, '{"q":"Oslo"}'), "openai_chat", 1.5
    )
    assert isinstance(call, ToolCall)
    second, events = s.request_events("scope", req(SYS, U1, CALL, RES), 2.0)
    assert second == first
    # the call was announced from the response already; the result names its tool
    assert [type(e) for e in events] == [ToolResult, LLMRequest]
    assert events[0].name == "search" and events[0].content == {"ids": [1, 2]}


def test_call_seen_only_in_history_is_announced_once() -> None:
    s = Sessions()
    first, _ = s.request_events("scope", req(SYS, U1), 1.0)
    _, events = s.request_events("scope", req(SYS, U1, CALL, RES), 2.0)
    assert [type(e) for e in events] == [ToolCall, ToolResult, LLMRequest]
    assert s.call_event(first, CallDraft("c1", "search", {}, "{}"), "openai_chat", 3.0) is None


def test_retry_of_a_request_with_history_adds_nothing() -> None:
    s = Sessions()
    s.request_events("scope", req(SYS, U1), 1.0)
    a, _ = s.request_events("scope", req(SYS, U1, CALL, RES), 2.0)
    b, events = s.request_events("scope", req(SYS, U1, CALL, RES), 2.5)
    assert a == b and events == []


def test_same_first_request_again_is_a_new_conversation() -> None:
    s = Sessions()
    a, _ = s.request_events("scope", req(SYS, U1), 1.0)
    b, events = s.request_events("scope", req(SYS, U1), 5.0)
    assert a != b and any(isinstance(e, UserMessage) for e in events)


def test_branches_and_other_scopes_are_separate() -> None:
    s = Sessions()
    a, _ = s.request_events("scope", req(SYS, U1), 1.0)
    other_user = Item(USER, text="hotels in Rome")
    b, _ = s.request_events("scope", req(SYS, other_user), 1.0)
    c, _ = s.request_events("other", req(SYS, U1, CALL, RES), 1.0)
    assert len({a.conversation, b.conversation, c.conversation}) == 3
    assert c.scope == "other"


def test_multi_turn_text_chat_links_by_prefix() -> None:
    s = Sessions()
    a, _ = s.request_events("scope", req(SYS, U1), 1.0)
    u2 = Item(USER, text="and back?")
    b, events = s.request_events("scope", req(SYS, U1, Item(ASSISTANT, text="Found 2."), u2), 2.0)
    assert a == b
    assert [e.text for e in events if isinstance(e, UserMessage)] == ["and back?"]


def test_responses_chain_by_previous_response_id() -> None:
    s = Sessions()
    a, _ = s.request_events("scope", ParsedRequest(api="openai_responses", items=(U1,)), 1.0)
    s.response_done(a, "resp_1")
    b, events = s.request_events(
        "scope",
        ParsedRequest(api="openai_responses", items=(RES,), previous_response_id="resp_1"),
        2.0,
    )
    assert a == b and isinstance(events[0], ToolResult)
    # a response id is only honoured within its own scope
    c, _ = s.request_events(
        "other",
        ParsedRequest(api="openai_responses", items=(RES,), previous_response_id="resp_1"),
        2.0,
    )
    assert c.conversation != a.conversation


def test_scope_hashes_credentials_and_hides_them() -> None:
    a = scope_of({"Authorization": "Bearer sk-1", "Content-Type": "json"})
    b = scope_of({"authorization": "Bearer sk-1"})
    c = scope_of({"Authorization": "Bearer sk-2"})
    d = scope_of({}, "https://g.example/v1/models/x:generateContent?key=AIza1")
    e = scope_of({}, "https://g.example/v1/models/x:generateContent?key=AIza2")
    assert a == b and a != c and d != e
    assert "sk-1" not in a and len(a) == 16


def test_repeated_task_runs_stay_apart() -> None:
    """Run 2 sends exactly run 1's requests: its follow-up belongs to run 2, not to run 1."""
    s = Sessions()
    a, _ = s.request_events("scope", req(SYS, U1), 1.0)
    s.call_event(a, CallDraft("c1", "search", {"q": "Oslo"}, '{"q":"Oslo"}'), "openai_chat", 1.1)
    s.request_events("scope", req(SYS, U1, CALL, RES), 2.0)
    b, _ = s.request_events("scope", req(SYS, U1), 3.0)
    s.call_event(b, CallDraft("c1", "search", {"q": "Oslo"}, '{"q":"Oslo"}'), "openai_chat", 3.1)
    b2, events = s.request_events("scope", req(SYS, U1, CALL, RES), 4.0)
    assert b2 == b != a
    assert [type(e) for e in events] == [ToolResult, LLMRequest]


def test_concurrent_runs_with_the_same_question_follow_their_call_ids() -> None:
    s = Sessions()
    a, _ = s.request_events("scope", req(SYS, U1), 1.0)
    b, _ = s.request_events("scope", req(SYS, U1), 1.0)
    s.call_event(a, CallDraft("ca", "search", {"q": "Oslo"}, '{"q":"Oslo"}'), "openai_chat", 1.1)
    s.call_event(b, CallDraft("cb", "search", {"q": "Oslo"}, '{"q":"Oslo"}'), "openai_chat", 1.1)
    call_a = Item(
        TOOL_CALL, call_id="ca", name="search", arguments={"q": "Oslo"}, raw_arguments="{}"
    )
    res_a = Item(TOOL_RESULT, call_id="ca", content=1)
    a2, events = s.request_events("scope", req(SYS, U1, call_a, res_a), 2.0)
    assert a2 == a != b
    assert [type(e) for e in events] == [ToolResult, LLMRequest]
