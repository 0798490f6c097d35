"""Client context is not the user: tagged or repeated blocks stay out of the user's words."""

from __future__ import annotations

from typing import Any

import pytest

from prefire.patterns import snapshot
from prefire.patterns.context import split_context
from prefire.patterns.events import LLMRequest, UserMessage
from prefire.patterns.model import PatternModel
from tests.patterns_util import Script

ENV = (
    "<environment_context>\n  <cwd>/home/dev/proj</cwd>\n  <shell>bash</shell>\n"
    "  <current_date>2026-12-04</current_date>\n</environment_context>"
)
REMINDER = (
    "<system-reminder>\nAs you answer the user's questions, you can use the following "
    "context: " + " ".join(f"codebase rule number {i} applies here" for i in range(20)) + "\n"
    "</system-reminder>"
)


def test_codex_environment_context_is_one_block() -> None:
    assert split_context(ENV) == ("", [ENV])


def test_claude_code_reminders_around_the_prompt() -> None:
    text = (
        f"{REMINDER}\nWhat is the weather in Oslo?\n<system-reminder>Plan mode.</system-reminder>"
    )
    user, blocks = split_context(text)
    assert user == "What is the weather in Oslo?"
    assert blocks == [REMINDER, "<system-reminder>Plan mode.</system-reminder>"]


@pytest.mark.parametrize(
    "text",
    [
        "make the word <b>bold</b> in the title",  # a tag inside prose
        "<unclosed>\nfind flights to Oslo",
        "<a> then </a> more text on the same line",  # the close tag does not end the line
        "compare 3 < 4 and 5 > 2",
    ],
)
def test_prose_is_left_alone(text: str) -> None:
    assert split_context(text) == (text, [])


def _weather_or_flights(i: int, prefix: str) -> Script:
    city = ["Oslo", "Rome", "Paris", "Lima", "Kyiv", "Quito"][i % 6]
    if i % 2:
        s = Script(f"w{i}", ["weather", "flights"]).user(f"{prefix}\nweather forecast for {city}")
        return s.turn(("weather", {"city": city}, {"temp": 3}))
    s = Script(f"f{i}", ["weather", "flights"]).user(f"{prefix}\nbook flights to {city}")
    return s.turn(("flights", {"to": city}, {"ids": [1]}))


def _first_predictions(model: PatternModel, script: Script) -> list[tuple[str, Any]]:
    got: list[Any] = []
    for e in script.events:
        model.observe(e)
        if isinstance(e, LLMRequest) and not got:
            got = [(c.tool, c.arguments) for c in model.predict(e.session)]
    model.end_session(script.key)
    return got


def test_a_long_reminder_does_not_crowd_the_prompt_out_of_the_intent_model() -> None:
    # The intent model reads a message's first 64 words: the reminder has more.
    m = PatternModel()
    for i in range(12):
        _first_predictions(m, _weather_or_flights(i, REMINDER))
    assert _first_predictions(m, _weather_or_flights(13, REMINDER))[0] == (
        "weather",
        {"city": "Rome"},
    )
    assert _first_predictions(m, _weather_or_flights(14, REMINDER))[0] == (
        "flights",
        {"to": "Paris"},
    )


def _shell_session(i: int) -> Script:
    cwd = f"/home/dev/proj{i}"
    env = ENV.replace("/home/dev/proj", cwd)
    s = Script(f"s{i}", ["list_files", "read_file"])
    s.events.append(UserMessage(session=s.key, t=0.0, text=env))
    s.user(f"What is in the project? ({i})")
    return s.turn(("list_files", {"path": cwd}, {"files": ["a.py"]}))


def test_values_in_the_context_stay_sources() -> None:
    m = PatternModel()
    for i in range(4):
        _first_predictions(m, _shell_session(i))
    s = _shell_session(9)
    assert _first_predictions(m, s)[0] == ("list_files", {"path": "/home/dev/proj9"})
    mem = m.memory(s.key)
    sources = {src[0] for _, h in m.args.items() for src in h.stats}
    assert "ctx" in sources and "user" not in sources
    assert not any("environment_context" in t for t in mem.user_texts)


AGENTS_MD = "# AGENTS.md instructions for /repo\n\nRun the tests before you commit."


def _agents_session(i: int, model: PatternModel) -> tuple[list[str], list[str]]:
    s = Script(f"a{i}", ["search"])
    s.events.append(UserMessage(session=s.key, t=0.0, text=AGENTS_MD))
    s.user("Run the same task again")
    for e in s.events:
        model.observe(e)
    mem = model.memory(s.key)
    return list(mem.user_texts), list(mem.context_texts)


def test_a_text_other_sessions_sent_verbatim_is_context_unless_it_is_the_last() -> None:
    m = PatternModel()
    for i in range(2):
        assert _agents_session(i, m) == ([AGENTS_MD, "Run the same task again"], [])
    # From the third session on, the instructions are the client's; the prompt, though
    # repeated as well, is the last text of its turn and stays the user's.
    assert _agents_session(2, m) == (["Run the same task again"], [AGENTS_MD])
    # learned once, kept in the snapshot
    restored = snapshot.load(snapshot.dump(m))
    assert _agents_session(3, restored) == (["Run the same task again"], [AGENTS_MD])
