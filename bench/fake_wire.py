"""The fake upstreams' wire pieces the benchmarks send and answer with: OpenAI chat
completions (realistic sizes: the proxy parses both bodies as JSON, so a toy body would
understate its work) and an MCP tools/call. One builder for every bench script (the tests
have theirs in tests/openai_wire.py); run as `python bench/x.py`, so imported by name."""

from __future__ import annotations

import json
from typing import Any

CHAT_PATH = "/v1/chat/completions"

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and a 3-day forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Search one-way flights between two airports on a date.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "description": "IATA code of the origin"},
                    "destination": {"type": "string", "description": "IATA code"},
                    "date": {"type": "string", "format": "date"},
                    "cabin": {"type": "string", "enum": ["economy", "business", "first"]},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                "required": ["origin", "destination", "date"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current local time in an IANA time zone.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "Europe/Paris"}},
                "required": ["timezone"],
                "additionalProperties": False,
            },
        },
    },
]

MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a travel assistant. Use the tools to answer; never guess prices, "
        "times or weather. Prefer direct flights. Answer in the user's language and keep "
        "answers short. Today is 2025-03-10.",
    },
    {
        "role": "user",
        "content": "I'm flying from Berlin to Paris on Friday. What will the weather be like, "
        "and are there morning flights in economy?",
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_kX2v9T3cQmB7hVn1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_kX2v9T3cQmB7hVn1",
        "content": '{"city": "Paris", "now": {"temp": 11, "sky": "overcast"}, "forecast": ['
        '{"day": "2025-03-14", "min": 6, "max": 13, "sky": "light rain"}]}',
    },
]


def chat_request(stream: bool) -> bytes:
    """The body an OpenAI SDK sends mid-conversation: history, tools, sampling options."""
    body: dict[str, Any] = {
        "model": "gpt-4o-2024-08-06",
        "messages": MESSAGES,
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": 0.2,
        "max_completion_tokens": 1024,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


FLIGHT_ARGS = {
    "origin": "BER",
    "destination": "CDG",
    "date": "2025-03-14",
    "cabin": "economy",
    "max_results": 5,
}


def chat_response() -> bytes:
    """A non-streamed completion asking for one tool call (about 1 KB, like the real API)."""
    body = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "annotations": [],
                    "tool_calls": [
                        {
                            "id": "call_Qw8rT2mZp4LxYb6N",
                            "type": "function",
                            "function": {
                                "name": "search_flights",
                                "arguments": json.dumps(FLIGHT_ARGS),
                            },
                        },
                        {
                            "id": "call_Hd3sK9vWq1JcFe5R",
                            "type": "function",
                            "function": {
                                "name": "get_time",
                                "arguments": '{"timezone": "Europe/Paris"}',
                            },
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 412,
            "completion_tokens": 61,
            "total_tokens": 473,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_f9f4fb6dbf",
    }
    return json.dumps(body).encode()


def chat_stream() -> list[bytes]:
    """SSE events of a streamed completion that calls search_flights."""
    base = {
        "id": "chatcmpl-B9MCe1xZ0aTfGq2Wn8rYk3LhVb7Po",
        "object": "chat.completion.chunk",
        "created": 1741569953,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_f9f4fb6dbf",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    args = json.dumps(FLIGHT_ARGS)
    pieces = [args[i : i + 16] for i in range(0, len(args), 16)]
    events: list[dict[str, Any]] = [
        chunk({"role": "assistant", "content": None, "refusal": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_Qw8rT2mZp4LxYb6N",
                        "type": "function",
                        "function": {"name": "search_flights", "arguments": ""},
                    }
                ]
            }
        ),
        *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces),
        chunk({}, "tool_calls"),
        {**base, "choices": [], "usage": {"prompt_tokens": 412, "completion_tokens": 38}},
    ]
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


MCP_PATH = "/mcp"
MCP_REPLY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "content": [{"type": "text", "text": json.dumps({"city": "Paris", "temp": 11})}],
            "structuredContent": {"city": "Paris", "temp": 11},
            "isError": False,
        },
    }
).encode()


def mcp_request(n: int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": n,
            "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": "Paris"}},
        }
    ).encode()


def agent_chat_request(agent: int, turn: int, stream: bool) -> bytes:
    """A request of agent `agent`'s own conversation, `turn` tool results long."""
    body = json.loads(chat_request(stream))
    body["messages"][1]["content"] += f" (agent {agent})"
    for k in range(turn % 6):
        call_id = f"call_{agent}_{k}"
        body["messages"].append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"timezone": "UTC"}'},
                    }
                ],
            }
        )
        body["messages"].append({"role": "tool", "tool_call_id": call_id, "content": "12:00"})
    return json.dumps(body).encode()


REQUEST_JSON = chat_request(stream=False)
REQUEST_SSE = chat_request(stream=True)
RESPONSE_JSON = chat_response()
RESPONSE_SSE = chat_stream()
SSE_LEN = sum(map(len, RESPONSE_SSE))
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    # A credential, so that prefire computes a scope as it would for a real agent.
    "Authorization": "Bearer sk-bench-0000000000000000000000000000",
    "User-Agent": "OpenAI/Python 1.66.3",
}


def completion(
    message: dict[str, Any], finish: str, *, completion_id: str = "chatcmpl-x", model: str = "m"
) -> dict[str, Any]:
    """A minimal non-streamed `chat.completion` with one choice."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
