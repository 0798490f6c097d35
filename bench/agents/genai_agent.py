"""An agent on Google's Gen AI SDK as its docs show it: `client.aio.models.generate_content`
with the MCP session itself as a tool (the SDK lists its tools and runs them by automatic
function calling), over an mcp 2.x `Client` (streamable HTTP), one MCP connection per task.

    python bench/agents/genai_agent.py --llm URL --mcp URL --tasks FILE [--stream]

--stream uses generate_content_stream (streamGenerateContent?alt=sse). (The SDK's chats,
which it recommends for automatic function calling, deep-copy the config, which an mcp 2.x
session cannot survive, and lose the function-calling history when streamed.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_cli import SYSTEM, Task, main, parser

MODEL = "gemini-3-flash"  # any name: the scripted model answers to all
MAX_CALLS = 30  # automatic function calling's bound on tool calls per task


async def run_task(task: Task, llm: str, mcp: str, args: argparse.Namespace) -> dict[str, Any]:
    # the SDK adds /v1beta/models/MODEL:generateContent to its base URL
    http = types.HttpOptions(base_url=llm.removesuffix("/v1"))
    model = genai.Client(api_key="scripted", http_options=http)
    async with Client(mcp) as session:
        # a dict, not a GenerateContentConfig: the SDK deep-copies the latter, which an mcp
        # 2.x session (it holds asyncio tasks) cannot survive
        config: dict[str, Any] = {
            "system_instruction": SYSTEM,
            "tools": [session.session],
            "automatic_function_calling": {"maximum_remote_calls": MAX_CALLS},
        }
        if args.stream:
            answer, history = "", None
            stream = await model.aio.models.generate_content_stream(
                model=MODEL,
                contents=task["prompt"],
                config=config,
            )
            async for chunk in stream:
                answer += chunk.text or ""
                history = chunk.automatic_function_calling_history or history
        else:
            response = await model.aio.models.generate_content(
                model=MODEL,
                contents=task["prompt"],
                config=config,
            )
            answer, history = response.text or "", response.automatic_function_calling_history
    return {"answer": answer, "tool_calls": _calls(history or [])}


def _calls(history: list[types.Content]) -> list[list[Any]]:
    """Each function call of the history with its response, paired in order by name."""
    calls: list[list[Any]] = []
    for content in history:
        for part in content.parts or []:
            if part.function_call:
                calls.append([part.function_call.name, part.function_call.args, None])
            elif part.function_response:
                name = part.function_response.name
                call = next(c for c in calls if c[0] == name and c[2] is None)
                # as sent to the model (the SDK keeps the MCP result object in it)
                call[2] = part.function_response.model_dump(mode="json")["response"]
    return calls


if __name__ == "__main__":
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--stream", action="store_true", help="generate_content_stream")
    sys.exit(main(run_task, "google-genai", "google-genai", p.parse_args()))
