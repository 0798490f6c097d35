"""The Responses API as Codex sends it: `store: false` with the whole `input` every turn,
`prompt_cache_key`, reasoning items between calls, namespaced parallel calls, outputs
wrapped in text. Requests go through the observer (codec + sessions) into the pattern
model: conversations must link, and the chain must be predicted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from prefire.patterns.events import Event, LLMRequest, ToolCall, ToolResult, UserMessage
from prefire.patterns.model import PatternModel
from prefire.wire.observer import Observer
from tests import wrapped_outputs

NS = "mcp__docs"
URL = "http://api.local/v1/responses"
HEADERS = [("authorization", "Bearer sk-codex"), ("content-type", "application/json")]
TOOLS = [
    {"type": "function", "name": "shell", "parameters": {"type": "object"}},
    {
        "type": "namespace",
        "name": NS,
        "description": "docs MCP server",
        "tools": [
            {"type": "function", "name": n, "parameters": {"type": "object"}}
            for n in ("search_docs", "get_doc", "get_team")
        ],
    },
]


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n".encode()
        for i, e in enumerate(events)
    )


@dataclass
class Codex:
    """One Codex conversation: it resends its whole input every turn (store: false)."""

    obs: Observer
    rec: Recorder
    sid: str
    topic: str
    input: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0

    def __post_init__(self) -> None:
        self.input = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}
            for t in (
                "# AGENTS.md instructions for /repo\n\n<INSTRUCTIONS>\nBe brief.\n</INSTRUCTIONS>",
                "<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>",
                f"Find the docs about {self.topic} and tell me who owns them.",
            )
        ]

    def turn(self, calls: list[tuple[str, dict[str, Any]]], t: float) -> None:
        """A request with the whole input so far; the model answers with a reasoning item
        and these calls in parallel (or a message when there are none)."""
        self.turns += 1
        xid = f"{self.sid}-{self.turns}"
        body = {
            "model": "gpt-5-codex",
            "instructions": "You are Codex.",
            "input": self.input,
            "tools": TOOLS,
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": False,
            "stream": True,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": self.sid,
        }
        self.rec.feed(
            self.obs.request(xid, "POST", URL, "/v1/responses", HEADERS, orjson.dumps(body), t)
        )
        reasoning = {
            "type": "reasoning",
            "id": f"rs_{xid}",
            "summary": [],
            "encrypted_content": f"gAAAA{xid}",
        }
        items: list[dict[str, Any]] = [reasoning]
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {"id": f"resp_{xid}", "status": "x"}},
            {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
            {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        ]
        for k, (name, args) in enumerate(calls, start=1):
            item = {
                "type": "function_call",
                "id": f"fc_{xid}_{k}",
                "call_id": f"call_{xid}_{k}",
                "name": name,
                "namespace": NS,
                "arguments": json.dumps(args),
            }
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": k,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                },
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": k,
                    "delta": item["arguments"],
                },
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": k,
                    "arguments": item["arguments"],
                },
                {
                    "type": "response.output_item.done",
                    "output_index": k,
                    "item": {**item, "status": "completed"},
                },
            ]
            items.append(item)
        if not calls:
            text = {"type": "message", "role": "assistant", "id": f"msg_{xid}"}
            items.append({**text, "content": [{"type": "output_text", "text": "Done."}]})
        events.append(
            {"type": "response.completed", "response": {"id": f"resp_{xid}", "status": "ok"}}
        )
        assert self.obs.stream(xid, 200)
        self.rec.feed(self.obs.chunk(xid, sse(events), t + 0.5))
        self.rec.feed(self.obs.response(xid, 200, "text/event-stream", None, t + 0.6))
        self.input += items

    def outputs(self, results: list[Any]) -> None:
        """The tool outputs, as Codex shows them to the model."""
        calls = [i for i in self.input if i.get("type") == "function_call"][-len(results) :]
        for call, result in zip(calls, results, strict=True):
            output = "Wall time: 0.4000 seconds\nOutput:\n" + json.dumps(
                {"result": json.dumps(result)}
            )
            self.input.append(
                {"type": "function_call_output", "call_id": call["call_id"], "output": output}
            )


def chain(i: int, topic: str) -> list[tuple[list[tuple[str, dict[str, Any]]], list[Any]]]:
    """(calls, results) per turn of the search -> get_doc of each hit -> get_team chain, with
    the values of the OpenAI-messages workload."""
    record = wrapped_outputs.session(i, topic)
    turns = []
    messages = record["messages"]
    for n, m in enumerate(messages):
        if m["role"] != "assistant" or not m.get("tool_calls"):
            continue
        calls = [
            (c["function"]["name"].removeprefix(NS + "__"), json.loads(c["function"]["arguments"]))
            for c in m["tool_calls"]
        ]
        outputs = messages[n + 1 : n + 1 + len(calls)]
        results = [
            json.loads(json.loads(o["content"].split("Output:\n", 1)[1])["result"]) for o in outputs
        ]
        turns.append((calls, results))
    return turns


@dataclass
class Recorder:
    """Feeds the observer's events to a pattern model and notes what it predicted at each
    decision point, before the LLM answered."""

    model: PatternModel = field(default_factory=PatternModel)
    events: list[Event] = field(default_factory=list)
    predicted: dict[Any, list[list[tuple[str, Any]]]] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.model.observe(event)
        if isinstance(event, LLMRequest):
            got = [(c.tool, c.arguments) for c in self.model.predict(event.session)]
            self.predicted.setdefault(event.session, []).append(got)

    def feed(self, events: list[Event]) -> None:
        for event in events:
            self(event)


def play(obs: Observer, tasks: list[tuple[Codex, list[Any]]], t0: float) -> None:
    """Play tasks turn by turn, interleaved: every task's turn n before any task's n+1."""
    t = t0
    for n in range(max(len(turns) for _, turns in tasks) + 1):
        for codex, turns in tasks:
            if n < len(turns):
                calls, results = turns[n]
                codex.turn(calls, t)
                codex.outputs(results)
            elif n == len(turns):
                codex.turn([], t)
            t += 1.0


def test_store_false_conversations_link_and_the_chain_is_predicted() -> None:
    rec = Recorder()
    obs = Observer()
    topics = wrapped_outputs.TOPICS
    for i in range(0, 8, 2):  # two tasks at a time, interleaved
        pair = [(Codex(obs, rec, f"s{j}", topics[j]), chain(j, topics[j])) for j in (i, i + 1)]
        play(obs, pair, float(i * 100))
    sessions = {e.session for e in rec.events}
    assert len(sessions) == 8, "each task is one conversation, never two, never shared"
    for session in sessions:
        own = [e for e in rec.events if e.session == session]
        calls = [e for e in own if isinstance(e, ToolCall)]
        assert [c.name for c in calls] == [
            "mcp__docs__search_docs",
            "mcp__docs__get_doc",
            "mcp__docs__get_doc",
            "mcp__docs__get_team",
        ]
        assert len({c.call_id for c in calls}) == 4  # history repeats them: announced once
        assert sum(isinstance(e, ToolResult) for e in own) == 4
        users = [e.text for e in own if isinstance(e, UserMessage) and e.role == "user"]
        assert len(users) == 3 and users[-1].startswith("Find the docs about")
    # the last task: after the search, both get_doc calls were predicted, then get_team
    last = next(
        e.session
        for e in rec.events
        if isinstance(e, UserMessage) and e.text.startswith(f"Find the docs about {topics[7]} ")
    )
    record = chain(7, topics[7])
    predicted = rec.predicted[last]
    for turn in (1, 2):
        for name, args in record[turn][0]:
            assert ("mcp__docs__" + name, args) in predicted[turn][:3], (turn, predicted[turn])
    # Codex's own messages are context: only the prompt is the user's
    assert list(rec.model.memory(last).user_texts) == [
        f"Find the docs about {topics[7]} and tell me who owns them."
    ]


def test_the_same_task_twice_at_once_stays_two_conversations() -> None:
    rec = Recorder()
    obs = Observer()
    topic = wrapped_outputs.TOPICS[0]
    play(obs, [(Codex(obs, rec, f"twin{j}", topic), chain(0, topic)) for j in (0, 1)], 0.0)
    sessions = {e.session for e in rec.events}
    assert len(sessions) == 2
    for session in sessions:
        calls = [e for e in rec.events if isinstance(e, ToolCall) and e.session == session]
        assert len(calls) == 4 and len({c.call_id.split("-")[0] for c in calls}) == 1
