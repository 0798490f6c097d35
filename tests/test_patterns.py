"""The pattern model on small hand-made sequences: what it must learn, and what it must not."""

from __future__ import annotations

from typing import Any

from prefire.patterns.model import Candidate, PatternModel
from tests.patterns_util import Script, feed

TOOLS = ["search", "details", "weather", "book"]


def flight_session(i: int, city: str, ids: list[str], *, pick: int = 0) -> Script:
    s = Script(f"f{i}", TOOLS).user(f"Please find flights to {city} for next week")
    s.turn(
        (
            "search",
            {"to": city},
            {"flights": [{"id": x, "price": 100 + n} for n, x in enumerate(ids)]},
        )
    )
    s.turn(("details", {"flight_id": ids[pick]}, {"id": ids[pick], "seats": 3}))
    return s


def best(cands: list[Candidate]) -> tuple[str, Any] | None:
    return (cands[0].tool, cands[0].arguments) if cands else None


def test_argument_from_an_earlier_result_by_position() -> None:
    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Paris", "Lima"]):
        feed(m, flight_session(i, city, [f"X{i}1", f"X{i}2"]))
    got = feed(m, flight_session(9, "Kyiv", ["Q1", "Q2"]), predict_at=1)
    assert best(got) == ("details", {"flight_id": "Q1"})
    assert 0.3 < got[0].probability <= 1.0


def test_argument_from_user_text() -> None:
    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Paris", "Lima"]):
        feed(m, flight_session(i, city, ["A", "B"]))
    got = feed(m, flight_session(9, "Kyiv", ["Q1", "Q2"]), predict_at=0)
    assert best(got) == ("search", {"to": "Kyiv"})


def test_argument_copied_from_an_earlier_call_with_transform() -> None:
    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Paris"]):
        s = Script(f"w{i}", TOOLS).user("weather please")
        s.turn(("search", {"to": city}, {"ok": True}))
        s.turn(("weather", {"city": city.lower(), "unit": "celsius"}, {"t": 20}))
        feed(m, s)
    s = Script("w9", TOOLS).user("weather please")
    s.turn(("search", {"to": "Kyiv"}, {"ok": True}))
    s.turn(("weather", {"city": "kyiv", "unit": "celsius"}, {"t": 1}))
    got = feed(m, s, predict_at=1)
    assert best(got) == ("weather", {"city": "kyiv", "unit": "celsius"})


def test_number_from_a_string_in_a_result() -> None:
    m = PatternModel()
    for i in range(4):
        s = Script(f"n{i}", TOOLS).user("go")
        s.turn(("search", {"q": "x"}, {"count": str(10 + i)}))
        s.turn(("details", {"n": 10 + i}, "ok"))
        feed(m, s)
    s = Script("n9", TOOLS).user("go")
    s.turn(("search", {"q": "x"}, {"count": "77"}))
    s.turn(("details", {"n": 77}, "ok"))
    assert best(feed(m, s, predict_at=1)) == ("details", {"n": 77})


def test_fan_out_over_a_result_list() -> None:
    m = PatternModel()
    for i in range(4):
        ids = [f"d{i}{k}" for k in range(3)]
        s = Script(f"fo{i}", TOOLS).user("read all")
        s.turn(("search", {"q": "all"}, {"docs": [{"id": d} for d in ids]}))
        s.turn(*[("details", {"doc": d}, {"text": d}) for d in ids])
        feed(m, s)
    ids = ["z1", "z2", "z3"]
    s = Script("fo9", TOOLS).user("read all")
    s.turn(("search", {"q": "all"}, {"docs": [{"id": d} for d in ids]}))
    s.turn(*[("details", {"doc": d}, {"text": d}) for d in ids])
    got = feed(m, s, predict_at=1)
    predicted = {c.arguments["doc"] for c in got if c.tool == "details"}
    assert predicted >= set(ids)


def test_coincidental_match_is_not_learned() -> None:
    """The id happens to equal a value in the result once; afterwards it does not."""
    m = PatternModel()
    s = Script("c0", TOOLS).user("go")
    s.turn(("search", {"q": "a"}, {"code": "K7"}))
    s.turn(("details", {"ref": "K7"}, "ok"))
    feed(m, s)
    for i in range(1, 6):
        s = Script(f"c{i}", TOOLS).user("go")
        s.turn(("search", {"q": "a"}, {"code": f"R{i}"}))
        s.turn(("details", {"ref": "K7"}, "ok"))  # always the constant, never the result
        feed(m, s)
    s = Script("c9", TOOLS).user("go")
    s.turn(("search", {"q": "a"}, {"code": "ZZ"}))
    s.turn(("details", {"ref": "K7"}, "ok"))
    assert best(feed(m, s, predict_at=1)) == ("details", {"ref": "K7"})


def test_changing_values_are_not_predicted_as_constants() -> None:
    m = PatternModel()
    for i in range(6):
        s = Script(f"v{i}", TOOLS).user("go")
        s.turn(("book", {"seat": f"{i}A"}, "ok"))  # from nowhere, different every time
        feed(m, s)
    s = Script("v9", TOOLS).user("go")
    s.turn(("book", {"seat": "9A"}, "ok"))
    got = feed(m, s, predict_at=0)
    assert all(c.probability < 0.3 for c in got)


def test_no_more_tools_lowers_every_candidate() -> None:
    m = PatternModel()
    for i in range(5):
        feed(m, flight_session(i, "Oslo", ["A", "B"]))
    got = feed(
        m, flight_session(9, "Oslo", ["A", "B"]), predict_at=2
    )  # after details: the agent answers
    assert all(c.probability < 0.3 for c in got)


def test_predictions_follow_drift() -> None:
    m = PatternModel()
    for i in range(30):
        s = Script(f"d{i}", TOOLS).user("go")
        s.turn(("search", {"q": "a"}, "r"))
        s.turn(("weather", {"city": "Oslo"}, "r"))
        feed(m, s)
    for i in range(400):
        s = Script(f"e{i}", TOOLS).user("go")
        s.turn(("search", {"q": "a"}, "r"))
        s.turn(("details", {"id": 1}, "r"))
        feed(m, s)
    s = Script("z", TOOLS).user("go")
    s.turn(("search", {"q": "a"}, "r"))
    s.turn(("details", {"id": 1}, "r"))
    assert best(feed(m, s, predict_at=1)) == ("details", {"id": 1})


def test_applications_are_kept_apart_by_toolset() -> None:
    m = PatternModel()
    for i in range(5):
        s = Script(f"a{i}", ["search", "details"]).user("go")
        s.turn(("search", {"q": "a"}, "r"))
        s.turn(("details", {"id": 1}, "r"))
        feed(m, s)
    s = Script("b", ["search", "weather"]).user("go")
    s.turn(("search", {"q": "a"}, "r"))
    got = feed(m, s, predict_at=1)
    assert all(c.tool != "details" for c in got)


def test_scopes_do_not_share_learning() -> None:
    m = PatternModel()
    for i in range(5):
        feed(m, flight_session(i, "Oslo", ["A", "B"]))
    other = Script("x", TOOLS, scope="tenant-2").user("Please find flights to Oslo for next week")
    assert feed(m, other, predict_at=0) == []


def test_learned_latency_shapes_value() -> None:
    m = PatternModel()
    for i in range(3):
        feed(m, flight_session(i, "Oslo", ["A", "B"]))
    s = flight_session(9, "Oslo", ["A", "B"])
    got = feed(m, s, predict_at=1)
    # the scripts take 2 s per LLM turn and 1 s per tool
    assert abs(got[0].value - got[0].probability * 1.0) < 1e-6


def research_session(i: int, day: int) -> Script:
    """Three searches in parallel; then the best of each result; then the weather on each
    searched date: each later call maps over the earlier parallel calls."""
    dates = [f"2025-07-{day + k:02d}" for k in range(3)]
    best_ids = [f"F{i}{k}" for k in range(3)]
    s = Script(f"r{i}", TOOLS).user(f"compare flights on {dates[0]} and the two days after")
    s.turn(
        *[
            ("search", {"date": d}, {"flights": [{"id": f}, {"id": f + "x"}]})
            for d, f in zip(dates, best_ids, strict=True)
        ]
    )
    s.turn(*[("details", {"flight_id": f}, {"id": f, "price": 9}) for f in best_ids])
    s.turn(*[("weather", {"date": d}, {"sky": "sun"}) for d in dates])
    return s


def test_a_map_over_parallel_calls_predicts_one_call_per_earlier_call() -> None:
    m = PatternModel()
    for i in range(4):
        feed(m, research_session(i, 1 + i))
    s = research_session(9, 20)
    details = {c.arguments["flight_id"] for c in feed(m, s, predict_at=1) if c.tool == "details"}
    assert details >= {"F90", "F91", "F92"}
    s = research_session(9, 20)
    weather = {c.arguments["date"] for c in feed(m, s, predict_at=2) if c.tool == "weather"}
    assert weather >= {"2025-07-20", "2025-07-21", "2025-07-22"}


def test_big_values_are_kept_bounded() -> None:
    """Sessions and hypotheses are kept by the thousand: long arguments are identified by
    a digest, a huge result is not kept (and cannot be a source), a long value is never
    learned as a constant."""
    from prefire.patterns.dataflow import MAX_CONSTANT, discover
    from prefire.patterns.memory import MAX_KEPT_RESULT, SessionMemory
    from prefire.patterns.model import MAX_KEY_ARGS, call_key

    short, long_a, long_b = {"q": "x"}, {"q": "a" * 4000}, {"q": "b" * 4000}
    assert call_key("t", short) == b't\0{"q":"x"}'
    assert len(call_key("t", long_a)) <= MAX_KEY_ARGS
    assert call_key("t", long_a) != call_key("t", long_b)
    assert call_key("t", long_a) == call_key("t", {"q": "a" * 4000})

    mem = SessionMemory()
    mem.add_call("c1", "read", {}, b"")
    rec = mem.add_result("c1", {"text": "z" * (MAX_KEPT_RESULT + 1), "id": "K1"})
    assert rec is not None and rec.has_result and rec.result is None
    mem.turn += 1
    assert not [s for s in discover("K1", mem) if s[0] == "res"]
    assert not [s for s in discover("y" * (MAX_CONSTANT + 1), mem) if s[0] == "const"]
    assert [s for s in discover("y", mem) if s[0] == "const"]


def test_a_shared_tool_learns_its_arguments_across_scopes_and_only_it() -> None:
    """With a rule's shared_learning, every tenant's calls of that tool teach where its
    arguments come from; the other tools stay learned per scope."""
    from prefire.rules.loader import load_rules

    rules = load_rules(
        "rules:\n"
        "  - match: {tool: search}\n    prefire: true\n    shared_learning: true\n"
        "  - match: {tool: details}\n    prefire: true\n"
    )
    words = ["shoes", "boots", "hats", "socks", "belts", "scarves"]

    def session(scope: str, n: int) -> Script:
        s = Script(f"{scope}{n}", TOOLS, scope=scope).user(f"find {words[n % 6]} please")
        # B's first session searched for something its user did not say
        q = "LOCAL" if (scope, n) == ("b", 0) else words[n % 6]
        s.turn(("search", {"q": q}, {"items": [{"id": f"{scope}-{n}"}]}))
        s.turn(("details", {"id": "PLANTED" if scope == "a" else f"{scope}-{n}"}, {"ok": 1}))
        return s

    def first_search(m: PatternModel) -> list[Candidate]:
        for n in range(20):
            feed(m, session("a", n))
        feed(m, session("b", 0))  # B's one session: the tools' order, and one constant
        return feed(m, session("b", 1), predict_at=0)

    shared = PatternModel()
    shared.shared = rules.shares_learning
    got = first_search(shared)
    assert ("search", {"q": "boots"}) in [(c.tool, c.arguments) for c in got]
    assert rules.shares_learning("search") and not rules.shares_learning("details")

    apart = PatternModel()
    # apart, B knows only its own one example: A's text source does not reach it
    got = [c.arguments for c in first_search(apart) if c.tool == "search"]
    assert got and {"q": "boots"} not in got

    for m in (shared, apart):  # A's planted constant never reaches B: details is not shared
        feed(m, session("b", 2))
        s = session("b", 3)
        assert all("PLANTED" not in str(c.arguments) for c in feed(m, s, predict_at=1))
