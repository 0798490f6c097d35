"""An agent on LangGraph as its docs show it: the prebuilt ReAct agent
(`create_react_agent`) with a `ChatOpenAI` model at a given base URL and the MCP server's
tools from LangChain's MCP adapters (`MultiServerMCPClient`, which opens a new MCP session
for every tool call).

    python bench/agents/langgraph_agent.py --llm URL --mcp URL --tasks FILE [--stream]

--stream has the model stream its answers (ChatOpenAI(streaming=True)).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_cli import MODEL, SYSTEM, Task, main, parser

RECURSION_LIMIT = 20  # graph steps: about two per model turn


async def run_task(task: Task, llm: str, mcp: str, args: argparse.Namespace) -> dict[str, Any]:
    client = MultiServerMCPClient({"docs": {"url": mcp, "transport": "streamable_http"}})
    tools = await client.get_tools()
    model = ChatOpenAI(model=MODEL, base_url=llm, api_key="sk-scripted", streaming=args.stream)
    agent = create_react_agent(model, tools, prompt=SYSTEM)
    state = await agent.ainvoke(
        {"messages": [("user", task["prompt"])]}, {"recursion_limit": RECURSION_LIMIT}
    )
    calls: dict[str, list[Any]] = {}
    for message in state["messages"]:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[call["id"]] = [call["name"], call["args"], None]
        elif isinstance(message, ToolMessage):
            calls[message.tool_call_id][2] = _without_block_ids(message.content)
    return {"answer": str(state["messages"][-1].content), "tool_calls": list(calls.values())}


def _without_block_ids(content: Any) -> Any:
    """LangChain gives each content block a random id (lc_<uuid>) of its own: not what the
    tool returned, and different in every run, so left out of the report."""
    if isinstance(content, list):
        return [
            {k: v for k, v in b.items() if k != "id"} if isinstance(b, dict) else b for b in content
        ]
    return content


if __name__ == "__main__":
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--stream", action="store_true", help="ChatOpenAI(streaming=True)")
    sys.exit(main(run_task, "langgraph", "langgraph", p.parse_args()))
