"""General prediction mechanisms for agents prefire has not seen: enum members named in
another case, argument names that depend on the step, re-reads and tools a schema says
can follow. Pure and fast: hand-made sessions through the pattern model."""

from __future__ import annotations

from typing import Any

from prefire.patterns.events import LLMRequest, ToolsOffered, ToolSpec
from prefire.patterns.model import Candidate, PatternModel
from prefire.patterns.schema import conforms, parse_tool, snap
from tests.patterns_util import Script, feed

BRANCH = {
    "type": "object",
    "properties": {
        "title_id": {"type": "string"},
        "branch": {"type": "string", "enum": ["Central", "Eastside", "Harbor"]},
    },
    "required": ["title_id", "branch"],
}


def find(cands: list[Candidate], tool: str, args: dict[str, Any]) -> Candidate | None:
    return next((c for c in cands if c.tool == tool and c.arguments == args), None)


def test_a_value_outside_the_enum_is_ruled_out_and_one_in_another_case_is_snapped() -> None:
    spec = parse_tool(BRANCH).args["branch"]  # type: ignore[union-attr]
    assert conforms("Eastside", spec)
    assert not conforms("Tomorrow", spec)
    assert not conforms("eastside", spec)
    assert snap("eastside", spec) == "Eastside"
    assert snap("EASTSIDE", spec) == "Eastside"
    assert snap("Tomorrow", spec) == "Tomorrow"


def library(sid: str, branch_said: str, title: str) -> Script:
    s = Script(sid, [])
    s.events[0] = ToolsOffered(
        session=s.key,
        t=0.0,
        tools=(
            ToolSpec("search", parameters={"type": "object", "properties": {"q": {}}}),
            ToolSpec("check_availability", parameters=BRANCH),
        ),
    )
    s.user(f"is {title} on the shelf at {branch_said} today?")
    s.turn(("search", {"q": title}, {"results": [{"title_id": f"T-{title}"}]}))
    s.turn(("check_availability", {"title_id": f"T-{title}", "branch": branch_said.title()}, {}))
    return s


def test_the_users_lower_case_word_is_predicted_as_the_enum_member() -> None:
    m = PatternModel()
    feed(m, library("a", "harbor", "dune"))
    got = feed(m, library("b", "eastside", "emma"), predict_at=1)
    c = find(got, "check_availability", {"title_id": "T-emma", "branch": "Eastside"})
    assert c is not None, got
    assert not any(
        c.arguments.get("branch") not in BRANCH["properties"]["branch"]["enum"]  # type: ignore[index]
        for c in got
        if c.tool == "check_availability"
    )


def catalog(sid: str, title: str, author: str) -> Script:
    """The same tool called with other optional arguments at another step."""
    s = Script(sid, ["search_catalog", "get_title"]).user(f"find {title} and more by {author}")
    s.turn(("search_catalog", {"query": title, "format": "print"}, {"hits": [{"id": "T1"}]}))
    s.turn(("get_title", {"title_id": "T1"}, {"author": author}))
    s.turn(("search_catalog", {"query": author, "limit": 3}, {"hits": []}))
    return s


def test_the_argument_names_a_tool_takes_after_the_previous_tool_are_predicted() -> None:
    m = PatternModel()
    for i in range(3):
        feed(m, catalog(f"s{i}", f"Book{i}", f"Author{i}"))
    got = feed(m, catalog("next", "Emma", "Austen"), predict_at=2)
    assert find(got, "search_catalog", {"query": "Austen", "limit": 3}) is got[0], got
    first = feed(m, catalog("again", "Ulysses", "Joyce"), predict_at=0)
    assert find(first, "search_catalog", {"query": "Ulysses", "format": "print"}) is not None, first


def _schema(*required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {r: {"type": "string"} for r in required},
        "required": list(required),
    }


def patron(sid: str, email: str, pid: str, scope: str = "s", app: str = "") -> Script:
    s = Script(sid, [], scope=scope)
    s.events[0] = ToolsOffered(
        session=s.key,
        t=0.0,
        tools=(
            ToolSpec(f"find_patron{app}", parameters=_schema("email")),
            ToolSpec(f"list_loans{app}", parameters=_schema("patron_id")),
            ToolSpec(f"get_branch{app}", parameters=_schema("branch_id")),
        ),
    )
    s.user(f"renew my books, I am {email}")
    s.turn((f"find_patron{app}", {"email": email}, {"patron": {"patron_id": pid}}))
    s.turn((f"list_loans{app}", {"patron_id": pid}, {"loans": []}))
    return s


def test_a_tool_never_called_is_predicted_when_the_latest_result_fills_its_arguments() -> None:
    m = PatternModel()
    # another application taught how often an afforded tool is called next
    for i in range(4):
        feed(m, patron(f"o{i}", f"u{i}@x.org", f"PT-{i}", app="_v1"))
    got = feed(m, patron("new", "ana@x.org", "PT-77"), predict_at=1)
    c = find(got, "list_loans", {"patron_id": "PT-77"})
    assert c is not None and c is got[0], got
    assert c.probability > 0.3
    # a tool whose required argument no result names is not proposed
    assert not any(c.tool == "get_branch" for c in got)


def test_the_affordance_rate_falls_when_afforded_tools_are_not_called() -> None:
    m = PatternModel()
    before = m.affordance.probability()
    for i in range(6):
        s = patron(f"n{i}", f"u{i}@x.org", f"PT-{i}", app=f"_{i}")
        s.events = s.events[:-3]  # the agent stops after find_patron: list_loans not called
        feed(m, s)
    assert m.affordance.probability() < before / 2


def test_a_snapshot_keeps_the_affordance_rate() -> None:
    from prefire.patterns import snapshot

    m = PatternModel()
    for i in range(3):
        feed(m, patron(f"o{i}", f"u{i}@x.org", f"PT-{i}", app=f"_{i}"))
    again = snapshot.load(snapshot.dump(m))
    assert again.affordance.stat.trials == m.affordance.stat.trials > 0
    assert again.affordance.probability() == m.affordance.probability()


def test_sources_read_from_the_users_words_follow_a_new_message_and_outlive_the_turn() -> None:
    from prefire.patterns.dataflow import resolve
    from prefire.patterns.memory import SessionMemory

    mem = SessionMemory()
    mem.add_text("rename 'a.txt' please", context=False)
    source = ("user", 0, "quoted", 0, None)
    assert resolve(source, mem) == "a.txt"
    mem.turn += 1  # a turn that answers tool results: the words are the same
    assert resolve(source, mem) == "a.txt"
    assert source in mem.text_resolved
    mem.add_text("now 'b.txt'", context=False)
    assert resolve(source, mem) == "b.txt"
    assert resolve(("user", 1, "quoted", 0, None), mem) == "a.txt"


def renewal(sid: str, pid: str, loan: str, reread: bool = True) -> Script:
    s = Script(sid, ["list_loans", "renew_loan", "get_patron"]).user(f"renew my loans, id {pid}")
    s.turn(("list_loans", {"patron_id": pid}, {"loans": [{"loan_id": loan, "due": "soon"}]}))
    s.turn(("renew_loan", {"loan_id": loan}, {"ok": True}))
    if reread:
        s.turn(("list_loans", {"patron_id": pid}, {"loans": [{"loan_id": loan, "due": "later"}]}))
    return s


def test_the_records_a_call_touches_are_those_it_sends_an_id_of() -> None:
    from prefire.patterns.memory import SessionMemory
    from prefire.patterns.reread import Rereads

    mem = SessionMemory()
    mem.turn = 1
    for cid, name, args, result in (
        ("1", "list_loans", {"patron_id": "PT-1"}, {"loans": [{"loan_id": "L-100"}]}),
        ("2", "get_branch", {"branch": "main"}, {"open": True}),
    ):
        mem.add_call(cid, name, args, name.encode() + cid.encode())
        mem.add_result(cid, result)
    mem.turn = 2
    mem.add_call("3", "renew_loan", {"loan_id": "L-100", "branch": "main"}, b"renew")
    mem.turn = 3
    touched = Rereads().touched(mem)
    # the loan id reaches the list that returned it; a word ("main") touches nothing
    assert [(t, r.name) for t, r in touched] == [("renew_loan", "list_loans")]


def renewal_after(sid: str, pid: str, loan: str, step: str) -> Script:
    """The same renewal, with another lookup before the write: a context control flow
    has not seen."""
    s = Script(sid, ["list_loans", "renew_loan", "get_patron", "get_fees"])
    s.user(f"renew my loans, id {pid}")
    s.turn(("list_loans", {"patron_id": pid}, {"loans": [{"loan_id": loan}]}))
    s.turn((step, {"patron_id": pid}, {"ok": True}))
    s.turn(("renew_loan", {"loan_id": loan}, {"ok": True}))
    s.turn(("list_loans", {"patron_id": pid}, {"loans": [{"loan_id": loan}]}))
    return s


def test_a_record_touched_by_the_latest_call_is_read_again_after_one_example() -> None:
    m = PatternModel()
    feed(m, renewal_after("a", "PT-1", "L-100", "get_patron"))
    got = feed(m, renewal_after("b", "PT-2", "L-200", "get_fees"), predict_at=3)
    c = find(got, "list_loans", {"patron_id": "PT-2"})
    assert c is not None and c is got[0] and c.probability > 0.3, got
    # the renewal does not touch another patron's records
    assert not any(c.arguments == {"patron_id": "PT-1"} for c in got)


def test_a_re_read_that_stops_happening_loses_its_probability() -> None:
    m = PatternModel()
    feed(m, renewal("a", "PT-1", "L-100"))
    p1 = m.rereads.probability(m.memory(Script("x", []).key).app, "renew_loan", "list_loans")
    for i in range(8):
        feed(m, renewal(f"n{i}", f"PT-{i + 5}", f"L-{i + 500}", reread=False))
    app = next(iter(m.rereads.pairs.keys()))[0]
    assert m.rereads.probability(app, "renew_loan", "list_loans") < 0.25
    assert p1 == 0.0 or p1 > 0.25


def test_a_snapshot_keeps_the_re_read_rates() -> None:
    from prefire.patterns import snapshot

    m = PatternModel()
    feed(m, renewal("a", "PT-1", "L-100"))
    again = snapshot.load(snapshot.dump(m))
    assert dict(again.rereads.pairs.items()).keys() == dict(m.rereads.pairs.items()).keys()
    assert again.rereads.shared.trials == m.rereads.shared.trials > 0


def test_an_enum_member_with_separators_is_found_in_the_users_words() -> None:
    from prefire.patterns.memory import SessionMemory
    from prefire.patterns.priors import proposals

    spec = parse_tool(
        {"properties": {"service": {"type": "string", "enum": ["oil_change", "tires"]}}}
    ).args["service"]  # type: ignore[union-attr]
    mem = SessionMemory()
    mem.add_text("truck 7 needs an oil change tomorrow", context=False)
    assert ("enum_text", ("const", '"oil_change"')) in proposals("service", spec, mem)


def test_a_title_the_user_wrote_in_lower_case_is_sent_as_a_title() -> None:
    from prefire.patterns.values import apply, transform_between

    assert transform_between("salt and signal", "Salt and Signal") == "headline"
    assert apply("headline", "a map of small rivers") == "A Map of Small Rivers"
    # plain title case still wins where it is what was sent
    assert transform_between("maria garcia", "Maria Garcia") == "title"


def test_dates_counted_back_from_the_day() -> None:
    import datetime as dt

    from prefire.patterns.typed import extract

    today = dt.date(2026, 1, 7)  # a Wednesday, a week into the year

    def dates(text: str) -> tuple[dt.date, ...]:
        return extract(text, today)["date"]

    assert dates("two weeks ago") == (dt.date(2025, 12, 24),)
    assert dates("over the last 10 days") == (dt.date(2025, 12, 28),)
    assert dates("in the past three weeks") == (dt.date(2025, 12, 17),)
    assert dates("a day ago") == (dt.date(2026, 1, 6),)
    assert dates("how far did she drive this week?") == (dt.date(2026, 1, 5),)
    assert dates("the last one, please") == ()
    assert dates("99999999999 weeks ago") == ()  # before the first day there is
    assert extract("two weeks ago", None)["date"] == ()  # no day to count from


class _Unpruned(PatternModel):
    """The model without the floor on a tool's arguments: every combination worked out."""

    def _arguments(self, mem: Any, tool: str, floor: float = 0.0) -> list[tuple[Any, float]]:
        return super()._arguments(mem, tool, 0.0)


def test_pruning_arguments_that_cannot_beat_the_limit_keeps_the_same_candidates() -> None:
    sessions = [catalog(f"c{i}", f"Book{i}", f"Author{i}") for i in range(4)]
    sessions += [renewal_after(f"r{i}", f"PT-{i}", f"L-{i}", "get_patron") for i in range(4)]
    sessions += [patron(f"p{i}", f"u{i}@x.org", f"PT-{i}") for i in range(4)]
    pruned, full = PatternModel(), _Unpruned()
    compared = 0
    for s in sessions:
        for e in s.events:
            pruned.observe(e)
            full.observe(e)
            if isinstance(e, LLMRequest):
                for limit in (8, 2, 1):
                    a = [(c.key, round(c.probability, 12)) for c in pruned.predict(s.key, limit)]
                    b = [(c.key, round(c.probability, 12)) for c in full.predict(s.key, limit)]
                    assert a == b
                    compared += len(a) > limit - 1
        pruned.end_session(s.key)
        full.end_session(s.key)
    assert compared > 10
