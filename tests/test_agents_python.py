"""The Python SDK agents people run, through a real `prefire run`: the OpenAI Agents SDK on mcp
2.x (also streamed, chaining turns with previous_response_id) and on mcp 1.x, and
LangGraph's prebuilt ReAct agent with LangChain's MCP adapters (a new MCP session per tool
call), and the providers' own SDKs on mcp 2.x (anthropic's beta tool runner with its MCP
helpers, on message threads; google-genai's automatic function calling with an MCP session
as a tool, on the Gemini API), streamed or not, each running two tasks at once in its own
venv (.venv-agents/, made by bench/agents/setup.sh) against the scripted model and a real
MCP server. Without speculation prefire runs nothing itself; with it (after a warm-up it
learns from) early calls are fired and served, the agent sees exactly the same answers and
tool results, no write runs early, and no early call runs in an MCP session an agent task
used.

Wall time is measured by bench/agents.py, not here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent_checks import through_prefire

TIMEOUT_S = 240  # three passes take about a minute

# what each client sends the model: the API, streamed or whole, chained or not
SHAPES = {
    "agents-sdk-mcp2": {"responses whole"},
    "agents-sdk-mcp1": {"responses whole"},
    "agents-sdk-mcp2-streamed": {
        "responses streamed",  # each task's first turn
        "responses streamed previous_response_id",
    },
    "langgraph": {"chat whole"},
    # anthropic 2.x's tool runner: message threads, each turn sending only its new messages
    "anthropic-sdk": {"messages whole", "messages whole thread"},
    "anthropic-sdk-streamed": {"messages streamed", "messages streamed thread"},
    # google-genai 3.x, automatic function calling with the MCP session as a tool
    "genai": {"gemini whole"},
    "genai-streamed": {"gemini streamed"},
}


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_agent_through_prefire(name: str, tmp_path: Path) -> None:
    await through_prefire(name, SHAPES[name], tmp_path, TIMEOUT_S, predicted=True)
