"""A small OpenAI-messages workload shaped like Codex sessions over an MCP docs server.

Each session: Codex's `<environment_context>` user message, the user's prompt,
then a chain search_docs -> get_doc of each hit (parallel) -> get_team of the
top hit's owner. Every tool output reaches the model the way Codex shows it:
a timing line, then JSON whose `result` is JSON in a string.

    python -m tests.wrapped_outputs > tests/data/wrapped_outputs.jsonl
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

TOPICS = [
    "billing", "refunds", "payroll", "onboarding", "security", "invoices", "pricing",
    "latency", "backups", "alerts", "quotas", "exports", "webhooks", "sso", "audit logs",
    "rate limits", "migrations", "retention", "tax", "discounts", "support", "status page",
    "sandbox", "api keys",
]  # fmt: skip
NS = "mcp__docs__"


def _id(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=3).hexdigest()


def _wrapped(value: Any, seconds: float) -> str:
    return f"Wall time: {seconds:.4f} seconds\nOutput:\n" + json.dumps(
        {"result": json.dumps(value)}
    )


def _tool(name: str, param: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {param: {"type": "string"}}, "required": [param]}
    return {"type": "function", "function": {"name": NS + name, "parameters": schema}}


TOOLS = [_tool("search_docs", "query"), _tool("get_doc", "doc_id"), _tool("get_team", "team_id")]


def session(i: int, topic: str) -> dict[str, Any]:
    slug = topic.replace(" ", "-")
    hits = [
        {"id": f"doc-{slug}-{_id(i, k)}", "title": f"{topic.title()} guide {k}"} for k in range(2)
    ]
    teams = [f"team-{_id(i, k, 'team')}" for k in range(2)]
    calls: list[tuple[str, dict[str, Any], Any]] = []
    n = iter(range(100))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent."},
        {
            "role": "user",
            "content": "<environment_context>\n  <cwd>/home/dev/proj"
            f"{i % 3}</cwd>\n  <approval_policy>never</approval_policy>\n"
            "  <shell>bash</shell>\n</environment_context>",
        },
        {"role": "user", "content": f"Find the docs about {topic} and tell me who owns them."},
    ]

    def turn(*batch: tuple[str, dict[str, Any], Any]) -> None:
        ids = [f"call_{i}_{next(n)}" for _ in batch]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": NS + name, "arguments": json.dumps(args)},
                    }
                    for cid, (name, args, _) in zip(ids, batch, strict=True)
                ],
            }
        )
        for cid, (_, _, result) in zip(ids, batch, strict=True):
            messages.append({"role": "tool", "tool_call_id": cid, "content": _wrapped(result, 0.4)})
        calls.extend(batch)

    turn(("search_docs", {"query": topic}, {"hits": hits}))
    turn(
        *(
            ("get_doc", {"doc_id": h["id"]}, {**h, "owner_team": teams[k], "body": "..."})
            for k, h in enumerate(hits)
        )
    )
    turn(("get_team", {"team_id": teams[0]}, {"id": teams[0], "name": f"Team {topic}"}))
    messages.append({"role": "assistant", "content": f"The {topic} docs belong to Team {topic}."})
    return {"id": f"codex-{i}", "tools": TOOLS, "messages": messages}


def sessions() -> list[dict[str, Any]]:
    return [session(i, t) for i, t in enumerate(TOPICS)]


if __name__ == "__main__":
    for record in sessions():
        print(json.dumps(record, sort_keys=True))
