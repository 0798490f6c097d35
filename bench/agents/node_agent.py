"""Claude Code or OpenAI's Codex CLI (from npm, bench/agents/node_clients.py) as the agent:
each task is one `claude -p` or `codex exec` process with the MCP server by URL and the model
at the given base URL; the report is built from the client's own JSON event stream.

    python bench/agents/node_agent.py --client claude-code|claude-code-native|codex
        [--tool-search] --llm URL --mcp URL --tasks FILE [--concurrency 2]

--tool-search defers Claude Code's MCP tools behind ToolSearch (ENABLE_TOOL_SEARCH=true;
the native build does so by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_cli import Task, main, parser
from node_clients import NodeClient, command, find_client, run
from world import READ_TOOLS, WRITE_TOOLS

TASK_TIMEOUT_S = 300.0


async def run_task(task: Task, llm: str, mcp: str, args: argparse.Namespace) -> dict[str, Any]:
    client: NodeClient = args.node_client
    home = Path(tempfile.mkdtemp(prefix=f"prefire-{client.name}-"))
    try:
        cmd = command(
            client,
            task["prompt"],
            home=home,
            llm_url=llm,
            mcp_url=mcp,
            tools=[*READ_TOOLS, *WRITE_TOOLS],
            env=dict(os.environ),
            tool_search=args.tool_search,
        )
        async with asyncio.timeout(TASK_TIMEOUT_S):
            done = await run(client, cmd)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0 or not done.answer:
        raise RuntimeError(
            f"{client.name} failed on task {task['id']} (exit status {done.returncode}, "
            f"answer {done.answer!r}):\n{done.stderr[-3000:]}"
        )
    return {"answer": done.answer, "tool_calls": done.tool_calls}


if __name__ == "__main__":
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--client", choices=("claude-code", "claude-code-native", "codex"))
    p.add_argument("--tool-search", action="store_true", help="Claude Code: deferred tools")
    args = p.parse_args()
    found = find_client(args.client)
    if isinstance(found, str):
        print(f"node_agent: {found}", file=sys.stderr)
        sys.exit(2)
    args.node_client = found
    sys.exit(main(run_task, found.name, "", args, client_version=found.version))
