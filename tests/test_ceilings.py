"""The perfect-speculator ceilings of a recorded task (patterns/ceilings.py)."""

from __future__ import annotations

import json

import pytest

from prefire.patterns.ceilings import Timed, Turn, ceilings

PROMPT = "Weather at the cafes in Lyon?"


def search(seconds: float) -> Timed:
    return Timed("search", {"q": "Lyon"}, json.dumps({"ids": ["ly1"]}), seconds, True)


def details(seconds: float, early: bool = True) -> Timed:
    return Timed("details", {"id": "ly1"}, {"lat": 45.7}, seconds, early)


def forecast(seconds: float) -> Timed:
    return Timed("forecast", {"lat": 45.7}, {"sky": "sun"}, seconds, True)


def test_tools_as_slow_as_the_llm_leave_chaining_nothing() -> None:
    # every call takes its LLM turn's time: once per turn already hides it all
    c = ceilings(PROMPT, [Turn(1.0, (search(1.0),)), Turn(1.0, (details(1.0),)), Turn(1.0)])
    assert c.base == pytest.approx(5.0)
    assert c.per_turn == c.chained == c.llm_only == pytest.approx(3.0)


def test_a_quick_parent_lets_a_slow_child_start_sooner() -> None:
    turns = [
        Turn(1.0, (search(0.2),)),  # its result exists 0.8 s before the agent asks
        Turn(1.0, (details(2.0),)),
        Turn(1.0, (forecast(2.0),)),
        Turn(1.0),
    ]
    c = ceilings(PROMPT, turns)
    assert c.base == pytest.approx(4.0 + 0.2 + 2.0 + 2.0)
    # per turn: details waits 1.0 s past its LLM turn, forecast too
    assert c.per_turn == pytest.approx(4.0 + 1.0 + 1.0)
    # chained: details starts at 0.2 (ready 2.2), forecast at 2.2 (ready 4.2)
    assert c.chained == pytest.approx(4.2 + 1.0) and c.chained < c.per_turn
    assert c.llm_only == pytest.approx(4.0)
    r = c.reductions()
    assert r["per_turn"] < r["chained"] < r["llm_only"]


def test_a_write_is_waited_for_and_what_follows_it_starts_after_it() -> None:
    turns = [
        Turn(1.0, (details(1.5, early=False),)),  # a write: never early
        Turn(1.0, (forecast(3.0),)),  # needs the write's result, and comes after it
        Turn(1.0),
    ]
    c = ceilings(PROMPT, turns)
    assert c.llm_only == pytest.approx(3.0 + 1.5)
    # the forecast cannot start before the write finished (at 2.5): it waits 2.0 s either way
    assert c.per_turn == c.chained == pytest.approx(3.0 + 1.5 + 2.0)


def test_values_from_the_users_words_start_at_once() -> None:
    # the forecast's argument is in the prompt: a perfect chain starts it at the outset
    late = Timed("forecast", {"city": "Lyon"}, {"sky": "sun"}, 3.0, True)
    turns = [Turn(1.0, (search(0.5),)), Turn(1.0, (late,)), Turn(1.0)]
    c = ceilings(PROMPT, turns)
    assert c.per_turn == pytest.approx(3.0 + 2.0)
    assert c.chained == pytest.approx(3.0 + 1.0)  # started at 0, ready at 3.0; asked at 2.0
