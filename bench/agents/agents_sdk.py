"""An agent on the OpenAI Agents SDK as its docs show it: an `Agent` with an MCP server over
streamable HTTP (`MCPServerStreamableHttp`), a Responses model at a given base URL, run by
`Runner.run`. Each task opens its own MCP connection, as separate requests of a service do.

    python bench/agents/agents_sdk.py --llm URL --mcp URL --tasks FILE [--stream]
        [--chain full|previous]

--stream runs with Runner.run_streamed; --chain previous sends only the new items with
`previous_response_id` (the default, full, sends the whole input every turn).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_cli import MODEL, SYSTEM, Task, main, parser

MAX_TURNS = 10


async def run_task(task: Task, llm: str, mcp: str, args: argparse.Namespace) -> dict[str, Any]:
    model = OpenAIResponsesModel(MODEL, AsyncOpenAI(base_url=llm, api_key="sk-scripted"))
    async with MCPServerStreamableHttp(
        params={"url": mcp, "timeout": 30}, name="docs", cache_tools_list=True
    ) as server:
        agent = Agent(name="assistant", instructions=SYSTEM, model=model, mcp_servers=[server])
        chain = args.chain == "previous"
        if args.stream:
            result: Any = Runner.run_streamed(
                agent, task["prompt"], max_turns=MAX_TURNS, auto_previous_response_id=chain
            )
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(
                agent, task["prompt"], max_turns=MAX_TURNS, auto_previous_response_id=chain
            )
    calls: dict[str, list[Any]] = {}
    for item in result.new_items:
        if isinstance(item, ToolCallItem):
            raw = item.raw_item
            calls[raw.call_id] = [raw.name, raw.arguments, None]
        elif isinstance(item, ToolCallOutputItem):
            calls[item.raw_item["call_id"]][2] = item.output
    return {"answer": str(result.final_output), "tool_calls": list(calls.values())}


if __name__ == "__main__":
    set_tracing_disabled(True)  # traces would go to OpenAI's servers
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--stream", action="store_true", help="Runner.run_streamed")
    p.add_argument("--chain", choices=("full", "previous"), default="full")
    sys.exit(main(run_task, "openai-agents", "openai-agents", p.parse_args()))
