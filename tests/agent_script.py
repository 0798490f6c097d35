"""A small agent turn on the real openai SDK: stream a request with tools, answer the
calls with results, send the follow-up. Goes wherever the environment's proxy says."""

from __future__ import annotations

import json

import openai

from tests.upstreams import LLMUpstream, serve


def function_tool(name: str) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


async def weather_conversation(api_key: str) -> list[dict]:
    """Returns the tool calls the SDK assembled from the stream."""
    up = LLMUpstream()
    async with serve(up.app) as base:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=api_key)
        messages: list[dict] = [{"role": "user", "content": "Weather and time in Paris?"}]
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            tools=[function_tool("get_weather"), function_tool("get_time")],
        )
        calls: dict[int, dict] = {}
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or []:
                c = calls.setdefault(
                    tc.index, {"id": tc.id, "name": tc.function.name, "arguments": ""}
                )
                c["arguments"] += tc.function.arguments or ""
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls.values()
                ],
            }
        )
        messages += [
            {"role": "tool", "tool_call_id": "call_a", "content": json.dumps({"temp_c": 21})},
            {"role": "tool", "tool_call_id": "call_b", "content": "14:05"},
        ]
        await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        await client.close()
    return list(calls.values())
