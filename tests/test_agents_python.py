"""The Python SDK agents people run, through a real `prefire run`: the OpenAI Agents SDK on
mcp 2.x (also streamed, chaining turns with previous_response_id) and on mcp 1.x, and
LangGraph's prebuilt ReAct agent with LangChain's MCP adapters (a new MCP session per tool
call), each running two tasks at once in its own venv (.venv-agents/, made by
bench/agents/setup.sh) against the scripted model and a real MCP server. Without
speculation prefire runs nothing itself; with it (after a warm-up it learns from) early
calls are fired and served, the agent sees exactly the same answers and tool results, no
write runs early, and no early call runs in an MCP session an agent task used.

Wall time is measured by bench/agents.py, not here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.agents.harness import CLIENTS, measure

THINK_S = (0.35, 0.5)  # short think and tool times keep each test near a minute
LATENCY_SCALE = 0.4
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
}


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_agent_through_prefire(name: str, tmp_path: Path) -> None:
    client = CLIENTS[name]
    reason = client.unavailable()
    if reason:
        pytest.skip(f"{name}: {reason}")
    async with asyncio.timeout(TIMEOUT_S):  # stops the proxy, servers and agent on expiry
        s = await measure(
            client,
            tmp_path,
            tasks=3,  # one of each kind: owners, offsite, ticket (the write)
            warmup=3,
            think_s=THINK_S,
            latency_scale=LATENCY_SCALE,
            concurrency=2,
        )
    summary = {k: v for k, v in s.items() if k != "speculation"}
    assert set(s["llm_requests"]) == SHAPES[name], summary
    assert s["baseline_early_calls"] == 0, summary  # --no-speculate runs nothing itself
    assert s["stats_error"] is None, summary
    assert s["early_calls"] > 0 and s["fired"] > 0, summary
    # the server took every early call, made as the agent makes its own
    assert s["early_failed"] == 0, summary
    assert s["early_unlike_agent"] == 0, summary
    assert s["hits"] > 0, summary  # early results the agent's own calls were served from
    # predicted before the model asked, not only started when its answer named the call
    assert s["hits_by_kind"].get("predicted", 0) > 0, summary
    assert s["identical"], summary
    assert s["same_tool_results"], summary
    assert s["writes"]["speculative"] == s["writes"]["baseline"] == {"create_ticket": 1}, summary
    assert s["early_writes"] == 0, summary
    assert s["early_in_agent_sessions"] == 0, summary
