"""General prediction mechanisms for agents prefire has not seen: enum members named in
another case, argument names that depend on the step, re-reads and tools a schema says
can follow. Pure and fast: hand-made sessions through the pattern model."""

from __future__ import annotations

from typing import Any

from prefire.patterns.events import ToolsOffered, ToolSpec
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
