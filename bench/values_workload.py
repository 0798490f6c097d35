"""A synthetic travel workload that exercises what the model reads from the user's
words and the tool schemas: relative dates counted from a date the system prompt
states, times and guest counts in words, two parallel opening searches, then
details for the top N hotels, N in words. A mechanism check, written to these
mechanisms: not a benchmark (the real workloads come from replay.importers).

    python bench/values_workload.py --out data/values_travel.jsonl [--sessions 40]
    prefire replay data/values_travel.jsonl --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

CITIES = ["Lisbon", "Paris", "Oslo", "Rome", "Berlin", "Madrid", "Vienna", "Prague"]
WHEN = [("tomorrow", 1), ("the day after tomorrow", 2), ("in two weeks", 14), ("in 3 days", 3)]
GUESTS = [("two", 2), ("three", 3), ("four", 4)]
TOP = [("top two", 2), ("three best", 3)]


def _tool(name: str, props: dict[str, Any]) -> dict[str, Any]:
    params = {"type": "object", "properties": props, "required": sorted(props)}
    return {"type": "function", "function": {"name": name, "parameters": params}}


TOOLS = [
    _tool(
        "search_hotels",
        {
            "city": {"type": "string"},
            "check_in": {"type": "string", "description": "YYYY-MM-DD"},
            "guests": {"type": "integer"},
        },
    ),
    _tool(
        "search_flights",
        {
            "to": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "time": {"type": "string", "description": "HH:MM"},
        },
    ),
    _tool("hotel_details", {"hotel_id": {"type": "string"}}),
]


def _call(cid: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def session(i: int, rnd: random.Random) -> dict[str, Any]:
    today = dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randrange(700))
    city = rnd.choice(CITIES)
    when, days = rnd.choice(WHEN)
    guests_word, guests = rnd.choice(GUESTS)
    top_words, top = rnd.choice(TOP)
    hour = rnd.randrange(6, 11)
    day = (today + dt.timedelta(days=days)).isoformat()
    ids = [f"H{rnd.randrange(10**5)}" for _ in range(5)]
    text = (
        f"I want to go to {city} {when} on the {hour} AM flight, {guests_word} of us. "
        f"Show details of the {top_words} hotels."
    )
    flights = {"to": city, "date": day, "time": f"{hour:02d}:00"}
    hotels = {"city": city, "check_in": day, "guests": guests}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": f"You are a travel agent. Today is {today:%B %d, %Y}."},
        {"role": "user", "content": text},
        {
            "role": "assistant",
            "tool_calls": [
                _call("a", "search_flights", flights),
                _call("b", "search_hotels", hotels),
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": json.dumps({"flights": [{"id": "F1"}]})},
        {
            "role": "tool",
            "tool_call_id": "b",
            "content": json.dumps({"hotels": [{"hotel_id": x, "stars": 4} for x in ids]}),
        },
        {
            "role": "assistant",
            "tool_calls": [
                _call(f"d{j}", "hotel_details", {"hotel_id": ids[j]}) for j in range(top)
            ],
        },
        *[{"role": "tool", "tool_call_id": f"d{j}", "content": "{}"} for j in range(top)],
        {"role": "assistant", "content": "Here they are."},
    ]
    return {"id": f"travel{i}", "tools": TOOLS, "messages": messages}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    with args.out.open("w") as f:
        for i in range(args.sessions):
            f.write(json.dumps(session(i, rnd)) + "\n")


if __name__ == "__main__":
    main()
