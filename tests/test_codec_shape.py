"""The helpers all codecs share: the edge cases every codec inherits from them."""

from __future__ import annotations

from typing import Any

import pytest

from prefire.wire.providers.base import ASSISTANT, TOOL_CALL, Item
from prefire.wire.providers.shape import (
    arguments,
    content_text,
    dump,
    json_or_text,
    model_action,
    object_arguments,
    route,
    text_runs,
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions?api-version=2024-10-21", "/v1/chat/completions"),
        ("/v1/messages/?beta=true", "/v1/messages"),
        ("/", ""),
        (None, ""),
        (b"/v1/messages", ""),
    ],
)
def test_route(path: Any, expected: str) -> None:
    assert route(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            ("gemini-2.5-flash", "generateContent"),
        ),
        (
            "/publishers/anthropic/models/claude-opus-4@20250514:rawPredict",
            ("claude-opus-4@20250514", "rawPredict"),
        ),
        ("/v1/messages", ("", "")),
        ("", ("", "")),
    ],
)
def test_model_action(path: str, expected: tuple[str, str]) -> None:
    assert model_action(path) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', ({"a": 1}, '{"a": 1}')),
        ("", ({}, "")),
        (" \n\t", ({}, " \n\t")),
        ("{not json", (None, "{not json")),
        ("null", (None, "null")),
        (None, (None, "")),
        ({"a": 1}, ({"a": 1}, '{"a":1}')),
        ({"big": 2**70}, (None, "")),
    ],
)
def test_arguments(raw: Any, expected: tuple[Any, str]) -> None:
    assert arguments(raw) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, 2]}, ({"a": [1, 2]}, '{"a":[1,2]}')),
        (None, ({}, "{}")),
        ('{"a": 1}', ({"a": 1}, '{"a": 1}')),
        ("", ({}, "")),
        ({"big": 10**30}, ({"big": 10**30}, f'{{"big":{10**30}}}')),
    ],
)
def test_object_arguments(value: Any, expected: tuple[Any, str]) -> None:
    assert object_arguments(value) == expected


def test_dump_falls_back_to_stdlib_then_gives_up() -> None:
    assert dump({"é": 10**30}) == f'{{"é":{10**30}}}'
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    assert dump(nested) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"temp_c": 18}', {"temp_c": 18}),
        ("[1, 2]", [1, 2]),
        ("42", 42),
        (" null\n", None),
        ("nul", "nul"),
        ("", ""),
        ("14:05", "14:05"),
        ("\ud800", "\ud800"),
    ],
)
def test_json_or_text(text: str, expected: Any) -> None:
    assert json_or_text(text) == expected


def test_content_text() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"text": "untyped"},
        {"type": "image_url"},
        {"type": "text", "text": 5},
        None,
        {"type": "output_text", "text": "b"},
    ]
    assert content_text("plain", {"text"}) == "plain"
    assert content_text(parts, {"text"}) == "a"
    assert content_text(parts, {"text"}, default_kind="text") == "a\nuntyped"
    assert content_text(parts, {"text", "output_text"}) == "a\nb"
    assert content_text(None, {"text"}) == ""


def test_text_runs_join_consecutive_texts_only() -> None:
    call = Item(TOOL_CALL, call_id="c", name="f")
    entries = ["a", None, "b", call, "c", None]
    assert text_runs(entries, ASSISTANT) == [
        Item(ASSISTANT, text="a\nb"),
        call,
        Item(ASSISTANT, text="c"),
    ]
    assert text_runs([], ASSISTANT) == []
