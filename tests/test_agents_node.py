"""The Node coding agents people run, from npm, through a real `prefire run`: Claude Code
(2.1.112, the last release that runs as cli.js on Node 20, and the native 2.1.332 build,
whose MCP tools are deferred behind ToolSearch) against the scripted Anthropic Messages
model, and OpenAI's Codex CLI (0.171.0, `codex exec` with a custom Responses provider)
against the scripted Responses model; both with a real FastMCP server over streamable HTTP
and two tasks at once (bench/agents/node_agent.py runs one client process per task).
Without speculation prefire runs nothing itself; with it (after a warm-up it learns from)
early calls are fired and served, the agent sees exactly the same answers and tool results,
no write runs early, and no early call runs in an MCP session an agent task used. For
Codex, calls the model had not emitted yet (predicted, not only eager) are served too.

Each test skips, saying why, when its client is not installed or does not run here
(bash bench/agents/setup.sh node). Wall time is measured by bench/agents.py, not here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.agents.harness import CLIENTS, measure

THINK_S = (0.35, 0.5)  # short think and tool times keep each test near a minute
LATENCY_SCALE = 0.4
TIMEOUT_S = 300  # three passes of three client processes, two at once
# what each client sends the model
SHAPES = {
    "claude-code": {"messages streamed"},
    "claude-code-native": {"messages streamed"},
    "codex": {"responses streamed"},
}


async def through_prefire(name: str, tmp_path: Path) -> dict:
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
    assert s["identical"], summary
    assert s["same_tool_results"], summary
    assert s["writes"]["speculative"] == s["writes"]["baseline"] == {"create_ticket": 1}, summary
    assert s["early_writes"] == 0, summary
    # the agent stays in its own sessions: a served result must not hand it prefire's (Claude
    # Code 2.1.112's MCP transport takes the Mcp-Session-Id header of every response)
    assert s["agent_in_prefire_sessions"] == 0, summary
    assert s["early_in_agent_sessions"] == 0, summary
    return summary


@pytest.mark.parametrize("name", ["claude-code", "claude-code-native"])
async def test_claude_code_through_prefire(name: str, tmp_path: Path) -> None:
    await through_prefire(name, tmp_path)


async def test_codex_through_prefire(tmp_path: Path) -> None:
    summary = await through_prefire("codex", tmp_path)
    # not only the calls the model had emitted (eager): the chain's next ones, predicted
    assert summary["hits_by_kind"].get("predicted", 0) > 0, summary
