"""The join of a model-side tool call with the MCP tools/call that runs it."""

from __future__ import annotations

import pytest

from prefire.patterns.canonical import canonical
from prefire.patterns.events import SessionKey
from prefire.proxy.calljoin import (
    Ambiguous,
    CallJoin,
    Joined,
    ModelCall,
    RestAmbiguous,
    RestCall,
    RestJoin,
    RestJoined,
    ServerCall,
    names_fit,
)

A, B = SessionKey("s", "conv-a"), SessionKey("s", "conv-b")
URL = "http://127.0.0.1:9/mcp"


def model(name: str, args: dict, t: float, session: SessionKey = A, client: str = "c") -> ModelCall:
    return ModelCall(client, session, f"call-{name}-{t}", name, canonical(args), t)


def server(
    tool: str, args: dict, t: float, mcp_session: str = "m1", client: str = "c"
) -> ServerCall:
    return ServerCall(client, "s", URL, tool, canonical(args), mcp_session, 1, t)


@pytest.mark.parametrize(
    ("model_name", "tool", "fits"),
    [
        ("get_weather", "get_weather", True),
        ("mcp__weather__get_weather", "get_weather", True),
        ("weather__get_weather", "get_weather", True),
        ("weather.get_weather", "get_weather", True),
        ("weather-get_weather", "get_weather", True),
        ("mcp__my_server__get_weather", "get.weather", True),  # clients write . as _
        ("mcp__weather__get_weather", "weather", False),  # a single _ is no separator
        ("get_weather", "mcp__weather__get_weather", False),
        ("__get_weather", "get_weather", False),  # no server before the separator
        ("search", "get_weather", False),
    ],
)
def test_names_fit_by_common_conventions(model_name: str, tool: str, fits: bool) -> None:
    assert names_fit(model_name, tool) is fits


def test_prefixed_model_name_joins_the_servers_call() -> None:
    join = CallJoin()
    call = model("mcp__weather__get_weather", {"city": "Paris"}, 10.0)
    assert join.model_call(call) is None
    got = join.server_call(server("get_weather", {"city": "Paris"}, 10.5))
    assert isinstance(got, Joined)
    assert got.model == call and got.server.tool == "get_weather" and got.certain
    # used once: the same call again joins nothing
    assert join.server_call(server("get_weather", {"city": "Paris"}, 10.6)) is None


def test_a_clients_own_renaming_is_joined_when_only_one_call_fits() -> None:
    join = CallJoin()
    join.model_call(model("WeatherNow", {"city": "Oslo"}, 1.0))
    got = join.server_call(server("get_weather", {"city": "Oslo"}, 2.0))
    assert isinstance(got, Joined) and got.model.name == "WeatherNow"


def test_arguments_and_client_must_be_the_same() -> None:
    join = CallJoin()
    join.model_call(model("get_weather", {"city": "Oslo"}, 1.0))
    assert join.server_call(server("get_weather", {"city": "Rome"}, 1.5)) is None
    assert join.server_call(server("get_weather", {"city": "Oslo"}, 1.5, client="x")) is None
    assert isinstance(join.server_call(server("get_weather", {"city": "Oslo"}, 1.6)), Joined)


def test_a_call_older_than_the_window_joins_nothing() -> None:
    join = CallJoin(window_s=60)
    join.model_call(model("get_weather", {"city": "Oslo"}, 0.0))
    assert join.server_call(server("get_weather", {"city": "Oslo"}, 61.0)) is None


def test_two_names_with_the_same_arguments_and_no_fitting_name_are_ambiguous() -> None:
    join = CallJoin()
    join.model_call(model("lookup", {"id": 1}, 1.0))
    join.model_call(model("fetch", {"id": 1}, 1.1))
    got = join.server_call(server("get_item", {"id": 1}, 1.5))
    assert isinstance(got, Ambiguous) and set(got.names) == {"lookup", "fetch"}


def test_a_fitting_name_wins_over_others_with_the_same_arguments() -> None:
    join = CallJoin()
    join.model_call(model("mcp__w__get_forecast", {"city": "Oslo"}, 1.0))
    join.model_call(model("mcp__w__get_weather", {"city": "Oslo"}, 1.0))
    got = join.server_call(server("get_weather", {"city": "Oslo"}, 1.5))
    assert isinstance(got, Joined) and got.model.name == "mcp__w__get_weather"
    got = join.server_call(server("get_forecast", {"city": "Oslo"}, 1.6))
    assert isinstance(got, Joined) and got.model.name == "mcp__w__get_forecast"


def test_two_conversations_making_the_same_call_leave_the_sessions_owner_uncertain() -> None:
    join = CallJoin()
    join.model_call(model("get_weather", {"city": "Oslo"}, 1.0, session=A))
    join.model_call(model("get_weather", {"city": "Oslo"}, 1.1, session=B))
    first = join.server_call(server("get_weather", {"city": "Oslo"}, 1.5, mcp_session="m1"))
    assert isinstance(first, Joined) and first.model.session == A and not first.certain
    # the one left is certain: no other conversation's call is pending
    second = join.server_call(server("get_weather", {"city": "Oslo"}, 1.6, mcp_session="m2"))
    assert isinstance(second, Joined) and second.model.session == B and second.certain


def test_a_server_call_seen_just_before_the_model_call_joins_it() -> None:
    join = CallJoin(skew_s=2)
    assert join.server_call(server("get_weather", {"city": "Oslo"}, 10.0)) is None
    got = join.model_call(model("mcp__w__get_weather", {"city": "Oslo"}, 11.0))
    assert isinstance(got, Joined) and got.server.mcp_session == "m1"
    # too long before: not joined
    join.server_call(server("get_weather", {"city": "Rome"}, 10.0))
    assert join.model_call(model("get_weather", {"city": "Rome"}, 13.0)) is None


# -- REST: a model call joins the request of its client that carries all its arguments


def rest_join(*calls: tuple[str, dict, float, SessionKey, str]) -> RestJoin:
    join = RestJoin(window_s=30.0)
    for name, args, t, session, client in calls:
        join.model_call(model(name, args, t, session, client), args)
    return join


def get(url: str, t: float, client: str = "c") -> RestCall:
    return RestCall(client, "GET", url, None, t)


def test_a_request_carrying_every_argument_joins_the_call() -> None:
    join = rest_join(("get_item", {"id": "x-1"}, 1.0, A, "c"))
    assert join.request(get("http://api/v1/search?q=x", 1.1)) is None  # id not in it
    got = join.request(get("http://api/v1/items/x-1", 1.2))
    assert isinstance(got, RestJoined) and got.certain
    assert (got.model.name, got.model.session) == ("get_item", A)
    assert join.request(get("http://api/v1/items/x-1", 1.3)) is None  # joined once


def test_a_json_body_joins_and_values_keep_their_type() -> None:
    join = rest_join(("add", {"a": 2, "b": "two"}, 1.0, A, "c"))
    assert (
        join.request(RestCall("c", "POST", "http://api/add", {"a": "2", "b": "two"}, 1.1)) is None
    )
    got = join.request(RestCall("c", "POST", "http://api/add", {"a": 2, "b": "two"}, 1.2))
    assert isinstance(got, RestJoined)


def test_rest_join_needs_the_same_client_and_the_window() -> None:
    join = rest_join(("get_item", {"id": "x-1"}, 1.0, A, "c"))
    assert join.request(get("http://api/v1/items/x-1", 1.1, client="other")) is None
    assert join.request(get("http://api/v1/items/x-1", 40.0)) is None  # 39 s later


def test_two_names_fitting_one_request_are_ambiguous() -> None:
    join = rest_join(
        ("get_item", {"id": "x-1"}, 1.0, A, "c"), ("get_price", {"id": "x-1"}, 1.0, A, "c")
    )
    got = join.request(get("http://api/v1/items/x-1", 1.1))
    assert isinstance(got, RestAmbiguous) and set(got.names) == {"get_item", "get_price"}


def test_two_conversations_making_the_same_rest_call_are_not_certain() -> None:
    join = rest_join(
        ("get_item", {"id": "x-1"}, 1.0, A, "c"), ("get_item", {"id": "x-1"}, 1.0, B, "c")
    )
    got = join.request(get("http://api/v1/items/x-1", 1.1))
    assert isinstance(got, RestJoined) and not got.certain


def test_a_call_run_over_mcp_joins_no_request() -> None:
    call = model("search", {"q": "x"}, 1.0)
    join = RestJoin()
    join.model_call(call, {"q": "x"})
    join.model_call(call, {"q": "x"})  # seen again: kept once
    join.ran_elsewhere(call)
    assert join.request(get("http://api/search?q=x", 1.1)) is None
