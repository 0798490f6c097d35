"""Chat-completions wire pieces the tests' fake LLM servers send: one builder for them all."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"  # the end of a chat-completions stream


def chunk(
    delta: dict[str, Any],
    finish: str | None = None,
    *,
    chunk_id: str = "c",
    model: str = "m",
    created: int = 1,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def completion(
    message: dict[str, Any],
    finish: str,
    *,
    completion_id: str = "x",
    model: str = "m",
    created: int = 1,
) -> dict[str, Any]:
    """A non-streamed `chat.completion` with a single choice."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def data(body: dict[str, Any]) -> bytes:
    """One server-sent `data:` event carrying `body` as JSON."""
    return f"data: {json.dumps(body)}\n\n".encode()


def tool_call(call_id: str, name: str, arguments: Any, index: int = 0) -> dict[str, Any]:
    """A whole tool call in one delta (`arguments` as the JSON text the model writes)."""
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
