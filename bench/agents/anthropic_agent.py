"""An agent on Anthropic's Python SDK as its docs show it: the beta tool runner
(`client.beta.messages.tool_runner`) with the MCP server's tools turned into runnable tools by
the SDK's own MCP helpers (`anthropic.lib.tools.mcp.async_mcp_tool`) over an mcp 2.x
`Client` (streamable HTTP), one MCP connection per task.

    python bench/agents/anthropic_agent.py --llm URL --mcp URL --tasks FILE [--stream]

--stream has the runner stream each reply (tool_runner(stream=True)).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anthropic import AsyncAnthropic
from anthropic.lib.tools.mcp import async_mcp_tool
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_cli import SYSTEM, Task, main, parser

MODEL = "claude-sonnet-4-5"  # any name: the scripted model answers to all
MAX_ITERATIONS = 10


async def run_task(task: Task, llm: str, mcp: str, args: argparse.Namespace) -> dict[str, Any]:
    # the SDK adds /v1/messages to its base URL
    model = AsyncAnthropic(base_url=llm.removesuffix("/v1"), api_key="sk-ant-scripted")
    calls: dict[str, list[Any]] = {}
    answer = ""
    async with Client(mcp) as session:
        listed = await session.list_tools()
        runner = model.beta.messages.tool_runner(
            model=MODEL,
            max_tokens=1024,
            system=SYSTEM,
            tools=[async_mcp_tool(t, session) for t in listed.tools],
            messages=[{"role": "user", "content": task["prompt"]}],
            max_iterations=MAX_ITERATIONS,
            stream=args.stream,
        )
        async for item in runner:
            message = await item.get_final_message() if args.stream else item
            for block in message.content:
                if block.type == "tool_use":
                    calls[block.id] = [block.name, block.input, None]
                elif block.type == "text":
                    answer = block.text
            response = await runner.generate_tool_call_response()
            for result in response["content"] if response else []:
                calls[result["tool_use_id"]][2] = result.get("content")
    return {"answer": answer, "tool_calls": list(calls.values())}


if __name__ == "__main__":
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--stream", action="store_true", help="tool_runner(stream=True)")
    sys.exit(main(run_task, "anthropic", "anthropic", p.parse_args()))
