"""Helpers the codecs share: read untrusted JSON values by their shape, never raising.

A wire value of the wrong type reads as empty ("" / {} / []), so a codec can
chain lookups without checking each step.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable
from typing import Any

import orjson

from prefire.patterns.canonical import loads_or_none
from prefire.wire.providers.base import TOOL_CALL, CallDraft, Item

# Characters JSON allows around a value.
_JSON_SPACE = " \t\r\n"


def as_str(value: Any) -> str:
    """`value` when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is a dict, else {}."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` when it is a list, else []."""
    return value if isinstance(value, list) else []


def route(path: Any) -> str:
    """The URL path without query string or trailing slash; "" when it is not a string.

    Clients add queries (Azure ?api-version=, Claude Code ?beta=true, Gemini
    ?alt=sse) and sometimes a trailing slash.
    """
    return path.partition("?")[0].rstrip("/") if isinstance(path, str) else ""


def model_action(route: str) -> tuple[str, str]:
    """(model, action) of a Google-style route ".../models/MODEL:ACTION"; ("", "") without one."""
    model, sep, action = route.rpartition("/")[2].partition(":")
    return (model, action) if sep else ("", "")


def dump(value: Any) -> str:
    """Compact JSON text of a value the wire sent as an object; "" when it has none."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass  # orjson refuses ints beyond 64 bits, deep nesting and lone surrogates
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return ""


def arguments(raw: Any) -> tuple[Any, str]:
    """(parsed, raw JSON text) of tool call arguments the wire sends as JSON text.

    Blank text means no arguments, {}, as agent SDKs read it; text that is not
    JSON parses to None. A few servers send an object instead: it is kept.
    """
    if isinstance(raw, str):
        return (loads_or_none(raw) if raw.strip() else {}), raw
    if raw is None:
        return None, ""
    try:
        return raw, orjson.dumps(raw).decode()
    except TypeError:  # orjson.JSONEncodeError, e.g. an integer wider than 64 bits
        return None, ""


def object_arguments(value: Any) -> tuple[Any, str]:
    """(arguments, raw JSON text) of arguments the wire sends as an object; missing means {}.

    Some gateways pass JSON text through instead: it reads as `arguments` reads it.
    """
    if isinstance(value, str):
        return arguments(value)
    value = {} if value is None else value
    return value, dump(value)


def json_or_text(text: str) -> Any:
    """Parsed JSON when `text` is JSON (so "null" gives None), else the text itself."""
    parsed = loads_or_none(text)
    if parsed is None and text.strip(_JSON_SPACE) != "null":
        return text
    return parsed


def content_text(content: Any, kinds: Container[str], default_kind: str = "") -> str:
    """A content string as is, or the texts of its parts whose type is in `kinds`, one per line.

    `default_kind` is the type of a part that names none.
    """
    if isinstance(content, str):
        return content
    parts = [as_dict(p) for p in as_list(content)]
    return "\n".join(
        p["text"]
        for p in parts
        if as_str(p.get("type", default_kind)) in kinds and isinstance(p.get("text"), str)
    )


def call_item(draft: CallDraft) -> Item:
    """The history item of a tool call."""
    return Item(
        TOOL_CALL,
        call_id=draft.call_id,
        name=draft.name,
        arguments=draft.arguments,
        raw_arguments=draft.raw_arguments,
    )


def text_runs(entries: Iterable[str | Item | None], role: str) -> list[Item]:
    """The items in order, each run of consecutive texts joined by newlines into one `role` item.

    None stands for a block that is neither and does not end a run.
    """
    items: list[Item] = []
    texts: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            texts.append(entry)
            continue
        if entry is None:
            continue
        if texts:
            items.append(Item(role, text="\n".join(texts)))
            texts = []
        items.append(entry)
    if texts:
        items.append(Item(role, text="\n".join(texts)))
    return items
