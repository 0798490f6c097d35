"""JSON inside tool-result text: found, indexed as leaves, resolved back, and bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefire.patterns.embedded import MAX_TEXT, embedded_json
from prefire.patterns.model import PatternModel
from prefire.patterns.values import JSON_STEP, MAX_EMBEDDED, MAX_LEAVES, at_path, leaves
from prefire.replay.simulate import Simulation
from prefire.replay.sources import openai_session
from tests import wrapped_outputs
from tests.patterns_util import Script

HITS = {
    "hits": [{"id": "doc-billing-acd14c", "team_id": "t-42"}, {"id": "doc-x", "team_id": "t-7"}]
}
# What Codex sends back to the model for an MCP tool's output.
CODEX_OUTPUT = "Wall time: 1.0083 seconds\nOutput:\n" + json.dumps({"result": json.dumps(HITS)})


def test_text_around_json_is_ignored() -> None:
    assert embedded_json(CODEX_OUTPUT) == {"result": json.dumps(HITS)}
    assert embedded_json("Exit code: 0\n  [1, 2, 3]\n(truncated)") == [1, 2, 3]


def test_json_lines_give_a_list() -> None:
    assert embedded_json('{"a": 1}\n{"a": 2}\nnot json\n{"a": 3}') == [{"a": 1}, {"a": 2}, {"a": 3}]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain text with a {brace} in the middle",
        "[1/3] Building\n[2/3] Linking",
        '{"unterminated": ',
        "{}\n[]",  # empty containers carry nothing
        '"just a string"',
        "42",
        "[" * 5000 + "]" * 5000,  # too deep to write canonically
    ],
)
def test_no_json_inside(text: str) -> None:
    assert embedded_json(text) is None


def test_long_texts_are_not_read() -> None:
    big = '{"k": "' + "x" * MAX_TEXT + '"}'
    assert embedded_json(big) is None


def test_leaves_reach_json_inside_json_strings() -> None:
    content = orjson.loads(orjson.dumps({"output": CODEX_OUTPUT}))
    found = dict(leaves(content))
    path = ("output", JSON_STEP, "result", JSON_STEP, "hits", 0, "id")
    assert found[path] == "doc-billing-acd14c"
    # the text itself stays a leaf too
    assert found[("output",)] == CODEX_OUTPUT
    assert at_path(content, path) == "doc-billing-acd14c"
    wildcard = ("output", JSON_STEP, "result", JSON_STEP, "hits", "*", "team_id")
    assert at_path(content, wildcard) == ["t-42", "t-7"]


def test_a_dict_key_named_like_the_step_is_still_a_key() -> None:
    value = {JSON_STEP: {"a": 1}}
    assert at_path(value, (JSON_STEP, "a")) == 1
    assert at_path("no json", (JSON_STEP, "a")) is None


def test_searching_strings_is_bounded() -> None:
    many = [json.dumps({"n": i}) for i in range(100)]
    inner = [p for p, _ in leaves(many) if JSON_STEP in p]
    assert len({p[0] for p in inner}) == MAX_EMBEDDED
    assert sum(1 for _ in leaves(many)) <= MAX_LEAVES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values, st.booleans(), st.text(max_size=12))
def test_every_leaf_path_resolves_to_its_value(value: Any, wrap: bool, prefix: str) -> None:
    # Wrapped as a JSON string, or as text after a prefix line, or not at all.
    content: Any = value
    if wrap:
        content = {"result": json.dumps(value)}
    elif prefix and "\n" not in prefix:
        content = prefix + "\n" + json.dumps(value)
    for path, leaf in leaves(content):
        assert at_path(content, path) == leaf


def _docs_session(i: int, query: str, ids: list[str], wrap: Any) -> Script:
    hits = {"hits": [{"id": x, "title": f"T {x}"} for x in ids]}
    s = Script(f"d{i}", ["search_docs", "get_doc"]).user(f"Find docs about {query}")
    s.turn(("search_docs", {"query": query}, wrap(hits)))
    s.turn(("get_doc", {"doc_id": ids[0]}, {"id": ids[0], "body": "..."}))
    return s


def _predicted_at_second_turn(wrap: Any) -> list[tuple[str, Any]]:
    m = PatternModel()
    got: list[Any] = []
    for i, q in enumerate(["billing", "refunds", "payroll", "onboarding", "security"]):
        s = _docs_session(i, q, [f"doc-{q}-{i}a", f"doc-{q}-{i}b"], wrap)
        decisions = 0
        for e in s.events:
            m.observe(e)
            if e.kind == "llm_request":
                decisions += 1
                if decisions == 2 and i == 4:
                    got = m.predict(e.session)
        m.end_session(s.key)
    return [(c.tool, c.arguments) for c in got]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda hits: "Wall time: 0.2 seconds\nOutput:\n" + json.dumps({"result": json.dumps(hits)}),
        lambda hits: {"content": [{"type": "text", "text": json.dumps(hits)}]},
    ],
    ids=["codex-text", "json-in-json"],
)
def test_an_argument_is_learned_from_json_wrapped_in_a_result(wrap: Any) -> None:
    got = _predicted_at_second_turn(wrap)
    assert got and got[0] == ("get_doc", {"doc_id": "doc-security-4a"})


DATA = Path(__file__).parent / "data" / "wrapped_outputs.jsonl"


def test_the_committed_workload_is_what_its_builder_writes() -> None:
    lines = DATA.read_text().splitlines()
    assert [json.loads(line) for line in lines] == wrapped_outputs.sessions()


def test_replay_predicts_the_chain_through_wrapped_outputs() -> None:
    # search_docs -> get_doc of each hit -> get_team of the owner: the ids exist only
    # inside the JSON-in-a-string of Codex-shaped outputs.
    totals = Simulation().run(openai_session(r) for r in wrapped_outputs.sessions())
    for tool in ("mcp__docs__get_doc", "mcp__docs__get_team"):
        row = totals.tools[tool]
        assert row.hits >= 0.8 * row.calls, (tool, row)
