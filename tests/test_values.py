"""Values the model reads from tool schemas and from the user's words, and fan-out widths."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefire.patterns.events import SessionKey, ToolsOffered, ToolSpec, UserMessage
from prefire.patterns.memory import SessionMemory
from prefire.patterns.model import Candidate, PatternModel
from prefire.patterns.priors import Priors, proposals
from prefire.patterns.schema import conforms, parse_tool
from prefire.patterns.typed import extract, stated_count, stated_date
from tests.patterns_util import Script
from tests.test_patterns import best, feed

D = dt.date


def dates(text: str, today: dt.date | None = None) -> tuple[dt.date, ...]:
    return extract(text, today)["date"]


# -- dates, times, numbers in the user's words -------------------------------------


def test_relative_dates_count_from_the_stated_day() -> None:
    today = stated_date("Hi! Today is October 13th, 2024. I need a room.")
    assert today == D(2024, 10, 13)  # a Sunday
    assert dates("for tomorrow", today) == (D(2024, 10, 14),)
    assert dates("the day after tomorrow", today) == (D(2024, 10, 15),)
    assert dates("next Friday", today) == (D(2024, 10, 18),)
    assert dates("on Sunday", today) == (D(2024, 10, 13),)
    assert dates("next Sunday", today) == (D(2024, 10, 20),)
    assert dates("in two weeks", today) == (D(2024, 10, 27),)
    assert dates("in 3 days", today) == (D(2024, 10, 16),)


def test_dates_cross_month_and_year_ends() -> None:
    assert dates("tomorrow", D(2024, 1, 31)) == (D(2024, 2, 1),)
    assert dates("tomorrow", D(2024, 2, 28)) == (D(2024, 2, 29),)  # a leap year
    assert dates("tomorrow", D(2023, 12, 31)) == (D(2024, 1, 1),)
    assert dates("in two weeks", D(2024, 12, 25)) == (D(2025, 1, 8),)
    assert dates("next Monday", D(2024, 12, 31)) == (D(2025, 1, 6),)
    # a month and day without a year: the first one on or after today
    assert dates("on Jan 2 and back on Dec 31", D(2024, 12, 30)) == (
        D(2025, 1, 2),
        D(2024, 12, 31),
    )


def test_written_and_iso_dates() -> None:
    assert dates("on the 6th day of October in 2026") == (D(2026, 10, 6),)
    assert dates("next Tuesday, November 10th, 2026, for") == (D(2026, 11, 10),)
    assert dates("my birthdate is January 1st 1950 and") == (D(1950, 1, 1),)
    assert dates("from 2024-05-26 to 12/31/2024") == (D(2024, 5, 26), D(2024, 12, 31))
    assert dates("on 3 March 2025") == (D(2025, 3, 3),)


def test_without_a_stated_day_relative_dates_need_the_request_time() -> None:
    assert dates("tomorrow at noon") == ()  # no day to count from
    assert dates("May 26") == ()  # no year
    assert stated_date("I want to fly tomorrow") is None
    assert stated_date("The current time is 2024-05-15 15:00:00 EST.") == D(2024, 5, 15)


def test_times_numbers_and_emails() -> None:
    got = extract("four of us at 8 AM, back by 7:30 pm or 14:05; mail a.b+x@ex.org", None)
    assert got["time"] == (dt.time(8), dt.time(19, 30), dt.time(14, 5))
    assert got["number"][0] == 4
    assert got["email"] == ("a.b+x@ex.org",)
    assert extract("twenty-one guests at midnight", None)["number"] == (21,)
    assert extract("twenty-one guests at midnight", None)["time"] == (dt.time(0),)


def test_stated_counts() -> None:
    assert stated_count("details for the top three places") == 3
    assert stated_count("the two best hotels, please") == 2
    assert stated_count("show the first 5") == 5
    assert stated_count("a forecast for each of them") == 0
    assert stated_count("book a room for 2 adults") is None


# -- the model reading the user's words ------------------------------------------------

BOOK = ToolSpec(
    "book_table",
    parameters={
        "type": "object",
        "properties": {
            "date": {"type": "string", "description": "Date in YYYY-MM-DD format"},
            "time": {"type": "string", "description": "Time, HH:MM"},
            "guests": {"type": "integer"},
        },
        "required": ["date", "time", "guests"],
    },
)


def spec_script(sid: str, specs: list[ToolSpec], scope: str = "s") -> Script:
    s = Script(sid, [])
    s.key = SessionKey(scope, sid)
    s.events = [ToolsOffered(session=s.key, t=0.0, tools=tuple(specs))]
    return s


def booking(
    i: int, today: dt.date, words: str, when: dt.date, hour: int, n: int, nw: str
) -> Script:
    s = spec_script(f"b{i}", [BOOK])
    s.events.append(
        UserMessage(session=s.key, t=0.0, text=f"Today is {today:%B %d, %Y}.", role="system")
    )
    s.user(f"A table for {nw} {words} at {hour} PM please")
    s.turn(
        ("book_table", {"date": f"{when:%Y-%m-%d}", "time": f"{hour + 12}:00", "guests": n}, "ok")
    )
    return s


def test_dates_times_and_number_words_from_the_users_text() -> None:
    m = PatternModel()
    days = [D(2024, 10, 13), D(2024, 3, 31), D(2023, 12, 30), D(2025, 2, 27)]
    words = ["tomorrow", "the day after tomorrow", "next Friday", "tomorrow"]
    counts = [("four", 4), ("two", 2), ("six", 6), ("three", 3)]
    for i, (today, w, (nw, n)) in enumerate(zip(days, words, counts, strict=True)):
        when = dates(w, today)[0]
        feed(m, booking(i, today, w, when, 7, n, nw))
    # a new session: year end, a relative day, a time and a number, all in words
    got = feed(
        m, booking(9, D(2024, 12, 31), "tomorrow", D(2025, 1, 1), 8, 5, "five"), predict_at=0
    )
    assert best(got) == ("book_table", {"date": "2025-01-01", "time": "20:00", "guests": 5})


def test_a_phrase_between_cue_words_of_any_length() -> None:
    m = PatternModel()
    phrases = ["Oslo Opera House", "the old town of Riga", "Louvre", "botanical garden in Lisbon"]
    for i, phrase in enumerate(phrases[:3]):
        s = Script(f"p{i}", ["search", "details"]).user(f"Search for {phrase} and tell me more")
        s.turn(("search", {"query": phrase}, {"results": []}))
        feed(m, s)
    s = Script("p9", ["search", "details"]).user(f"Search for {phrases[3]} and tell me more")
    s.turn(("search", {"query": phrases[3]}, {"results": []}))
    assert best(feed(m, s, predict_at=0)) == ("search", {"query": "botanical garden in Lisbon"})


# -- schema priors ------------------------------------------------------------------------

SEARCH = ToolSpec(
    "search_hotels",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
DETAILS = ToolSpec(
    "hotel_details",
    parameters={
        "type": "object",
        "properties": {"hotel_id": {"type": "string"}},
        "required": ["hotel_id"],
    },
)


def hotels(
    i: int, city: str, ids: list[str], *, pick: str | None = None, scope: str = "s"
) -> Script:
    s = spec_script(f"h{i}", [SEARCH, DETAILS], scope=scope).user(f"Hotels in {city}")
    s.turn(("search_hotels", {"city": city}, {"hotels": [{"hotel_id": x} for x in ids]}))
    s.turn(("hotel_details", {"hotel_id": pick or ids[0]}, {"ok": True}))
    return s


def test_schema_name_match_is_proposed_before_any_observation() -> None:
    """A result field named like the argument is a source before the argument was
    ever sent: the memory of a session whose tool was never called proposes it."""
    m = PatternModel()
    s = hotels(0, "Oslo", ["H1", "H2"])
    for e in s.events[:4]:  # offered, user, request, search call
        m.observe(e)
    m.observe(s.events[4])  # the search result
    m.observe(s.events[5])  # the next request
    mem = m.memory(s.key)
    spec = parse_tool(DETAILS.parameters)
    assert spec is not None
    found = proposals("hotel_id", spec.args["hotel_id"], mem)
    assert ("name/first", ("res", "search_hotels", 0, ("hotels", 0, "hotel_id"), None)) in found
    values = Priors().values("hotel_details", "hotel_id", spec.args["hotel_id"], mem, 1.0)
    assert values[0][0] == "H1" and 0 < values[0][1] < 1


def test_a_prior_learned_in_other_applications_predicts_in_a_new_one() -> None:
    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Lima", "Kyiv", "Riga"]):
        feed(m, hotels(i, city, [f"A{i}", f"B{i}"], scope="tenant-a"))
    # tenant b has seen one session: the argument was sent once, not yet confirmed
    feed(m, hotels(10, "Oslo", ["C1", "C2"], scope="tenant-b"))
    got = feed(m, hotels(11, "Rome", ["Z1", "Z2"], scope="tenant-b"), predict_at=1)
    assert best(got) == ("hotel_details", {"hotel_id": "Z1"})
    assert m.priors.weight("name/first") > 0.7  # learned: name matches held in tenant a


def test_a_coincidental_name_match_loses_to_evidence() -> None:
    """The result has a `hotel_id` field, but this agent always sends its own constant."""
    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Lima", "Kyiv", "Riga", "Baku"]):
        feed(m, hotels(i, city, [f"A{i}", f"B{i}"], pick="FAV"))
    got = feed(m, hotels(9, "Pisa", ["Z1", "Z2"], pick="FAV"), predict_at=1)
    assert best(got) == ("hotel_details", {"hotel_id": "FAV"})
    by_id = {c.arguments["hotel_id"]: c.probability for c in got if c.tool == "hotel_details"}
    assert by_id.get("Z1", 0.0) < by_id["FAV"] / 3


def test_enum_members_the_user_wrote_and_defaults_are_constants() -> None:
    spec = parse_tool(
        {
            "type": "object",
            "properties": {
                "cabin": {"type": "string", "enum": ["economy", "business", "first"]},
                "currency": {"type": "string", "default": "USD"},
            },
        }
    )
    assert spec is not None
    mem = SessionMemory()
    mem.user_texts.append("One Business class seat, please")
    cabin = [s for _, s in proposals("cabin", spec.args["cabin"], mem)]
    assert cabin == [("const", '"business"')]
    assert ("default", ("const", '"USD"')) in proposals("currency", spec.args["currency"], mem)


def test_types_rule_values_in_and_out() -> None:
    spec = parse_tool(
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "x": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "s": {"type": "string", "enum": ["a", "b"]},
                "free": {},
            },
        }
    )
    assert spec is not None
    a = spec.args
    assert conforms(3, a["n"]) and not conforms("3", a["n"]) and not conforms(True, a["n"])
    assert conforms(3, a["x"]) and conforms(2.5, a["x"]) and conforms(None, a["x"])
    assert not conforms("2.5", a["x"])
    assert conforms("a", a["s"]) and not conforms(1, a["s"])
    assert conforms({"any": 1}, a["free"])


def test_an_argument_the_schema_types_differently_is_not_predicted() -> None:
    """The agent once sent a string where the schema wants an integer: the model
    does not repeat it."""
    m = PatternModel()
    for i in range(4):
        s = spec_script(f"t{i}", [BOOK]).user("book it")
        guests: Any = "4" if i % 2 else 4
        s.turn(("book_table", {"date": "2024-01-01", "time": "10:00", "guests": guests}, "ok"))
        feed(m, s)
    s = spec_script("t9", [BOOK]).user("book it")
    s.turn(("book_table", {"date": "2024-01-01", "time": "10:00", "guests": 4}, "ok"))
    got = feed(m, s, predict_at=0)
    assert got and all(isinstance(c.arguments["guests"], int) for c in got)


# -- fan-out widths ---------------------------------------------------------------------

PLACES = ["search_places", "place_details"]


def places(i: int, ids: list[str], take: int, ask: str) -> Script:
    s = Script(f"fo{i}", PLACES).user(f"Find museums and give me details for {ask}")
    s.turn(("search_places", {"q": "museums"}, {"places": [{"id": x} for x in ids]}))
    s.turn(*[("place_details", {"place_id": x}, {"ok": x}) for x in ids[:take]])
    return s


def shares(got: list[Candidate]) -> dict[str, float]:
    return {c.arguments["place_id"]: c.probability for c in got if c.tool == "place_details"}


def test_a_stated_count_sets_how_many_per_item_calls() -> None:
    m = PatternModel()
    asks = [(2, "the two best"), (3, "the top three"), (4, "the top 4"), (2, "the 2 best")] * 2
    for i, (n, ask) in enumerate(asks):
        feed(m, places(i, [f"P{i}{k}" for k in range(6)], n, ask))
    ids = [f"Z{k}" for k in range(6)]
    got = shares(feed(m, places(99, ids, 3, "the top three"), predict_at=1))
    assert min(got[x] for x in ids[:3]) > 0.5
    assert max(got.get(x, 0.0) for x in ids[3:]) < 0.3


def test_the_share_of_a_list_an_agent_takes_is_learned() -> None:
    m = PatternModel()
    for i in range(8):  # no count in the words; the agent always takes the first two
        feed(m, places(i, [f"P{i}{k}" for k in range(5)], 2, "some of them"))
    ids = [f"Z{k}" for k in range(5)]
    got = shares(feed(m, places(99, ids, 2, "some of them"), predict_at=1))
    assert min(got[x] for x in ids[:2]) > 0.5
    assert max(got.get(x, 0.0) for x in ids[2:]) < 0.3


def test_each_means_the_whole_list() -> None:
    m = PatternModel()
    for i in range(8):
        n = 2 + i % 3
        feed(m, places(i, [f"P{i}{k}" for k in range(n)], n, "each of them"))
    ids = [f"Z{k}" for k in range(4)]
    got = shares(feed(m, places(99, ids, 4, "each of them"), predict_at=1))
    assert min(got[x] for x in ids) > 0.5


def test_a_flag_the_user_names_and_numbers_with_separators() -> None:
    spec = parse_tool({"type": "object", "properties": {"human_readable": {"type": "boolean"}}})
    assert spec is not None
    mem = SessionMemory()
    mem.user_texts.append("Show the human-readable disk usage")
    assert ("bool_named", ("const", "true")) in proposals(
        "human_readable", spec.args["human_readable"], mem
    )
    assert extract("convert 20,000 RMB and 1,250.5 EUR", None)["number"] == (20000, 1250.5)


def test_a_locator_is_found_by_its_shape_whatever_its_letters() -> None:
    m = PatternModel()
    for i, code in enumerate(["JMO1MG", "PEP4E0", "4OG6T3", "XEHM4B"]):
        s = Script(f"l{i}", ["get_reservation"]).user(f"My confirmation number is {code}.")
        s.turn(("get_reservation", {"reservation_id": code}, {"ok": True}))
        feed(m, s)
    s = Script("l9", ["get_reservation"]).user("Hi, I'm Ann. The booking is 9ZQ2KA, thanks")
    s.turn(("get_reservation", {"reservation_id": "9ZQ2KA"}, {"ok": True}))
    assert best(feed(m, s, predict_at=0)) == ("get_reservation", {"reservation_id": "9ZQ2KA"})


def test_a_stated_date_form_rules_out_other_strings() -> None:
    spec = parse_tool(
        {
            "type": "object",
            "properties": {
                "travel_date": {"type": "string", "description": "in the format YYYY-MM-DD"},
                "update_note": {"type": "string"},
            },
        }
    )
    assert spec is not None
    date = spec.args["travel_date"]
    assert date.form == "date" and date.strict
    assert conforms("2026-10-15", date) and not conforms("the", date)
    assert spec.args["update_note"].form == ""  # "update" is not a date


def test_a_snapshot_keeps_prior_weights_and_fan_out_counts() -> None:
    from prefire.patterns import snapshot

    m = PatternModel()
    for i, city in enumerate(["Oslo", "Rome", "Lima"]):
        feed(m, hotels(i, city, [f"A{i}", f"B{i}"]))
    for i in range(3):
        feed(m, places(10 + i, [f"P{i}{k}" for k in range(4)], 2, "the two best"))
    back = snapshot.load(snapshot.dump(m))
    assert back.priors.weight("name/first") == m.priors.weight("name/first") > 0.5
    assert back.fanout.stated == m.fanout.stated and back.fanout.stated.trials == 3
    assert dict(back.fanout.taken.items()) == dict(m.fanout.taken.items())


def test_a_number_next_to_the_arguments_name() -> None:
    spec = parse_tool(
        {
            "type": "object",
            "properties": {"gallon": {"type": "number"}, "nights": {"type": "integer"}},
        }
    )
    assert spec is not None
    mem = SessionMemory()
    mem.user_texts.append("I filled up with 30 gallons; book four nights, 2 rooms")
    assert ("number_named", ("const", "30.0")) in proposals("gallon", spec.args["gallon"], mem)
    assert ("number_named", ("const", "4")) in proposals("nights", spec.args["nights"], mem)
    assert all(k != "number_named" for k, _ in proposals("adults", spec.args["nights"], mem))


def test_a_name_by_its_place_among_the_names_in_the_text() -> None:
    m = PatternModel()
    texts = [
        ("Drive from Oslo to Rome, how far?", "Oslo"),
        ("I'm in San Francisco and want to see Lima.", "San Francisco"),
        ("Could you tell me the distance between Baku and Quito?", "Baku"),
    ]
    for i, (text, city) in enumerate(texts):
        s = Script(f"pn{i}", ["zipcode"]).user(text)
        s.turn(("zipcode", {"city": city}, {"zip": "1"}))
        feed(m, s)
    s = Script("pn9", ["zipcode"]).user("We live in New York. What about Accra?")
    s.turn(("zipcode", {"city": "New York"}, {"zip": "1"}))
    assert best(feed(m, s, predict_at=0)) == ("zipcode", {"city": "New York"})
