"""What every real agent must show through a real `prefire run` (tests/test_agents_*.py):
bench/agents/harness.py runs a warm-up, a --no-speculate baseline and a speculative pass
of one client, two tasks at once; these are the checks on its summary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bench.agents.harness import CLIENTS, measure

THINK_S = (0.35, 0.5)  # short think and tool times keep each test near a minute
LATENCY_SCALE = 0.4


async def through_prefire(
    name: str, shapes: set[str], tmp_path: Path, timeout_s: float, predicted: bool
) -> dict[str, Any]:
    """Run client `name` (skipped, saying why, when it is not installed) and check its
    summary; `shapes`: the LLM request shapes it must send; `predicted`: whether calls the
    model had not emitted yet must have been served too."""
    client = CLIENTS[name]
    reason = client.unavailable()
    if reason:
        pytest.skip(f"{name}: {reason}")
    async with asyncio.timeout(timeout_s):  # stops the proxy, servers and agent on expiry
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
    assert set(s["llm_requests"]) == shapes, summary
    assert s["baseline_early_calls"] == 0, summary  # --no-speculate runs nothing itself
    assert s["stats_error"] is None, summary
    assert s["early_calls"] > 0 and s["fired"] > 0, summary
    # the server took every early call, made as the agent makes its own
    assert s["early_failed"] == 0, summary
    assert s["early_unlike_agent"] == 0, summary
    assert s["hits"] > 0, summary  # early results the agent's own calls were served from
    if predicted:
        # predicted before the model asked, not only started when its answer named the call
        assert s["hits_by_kind"].get("predicted", 0) > 0, summary
    assert s["identical"], summary
    assert s["same_tool_results"], summary
    assert s["writes"]["speculative"] == s["writes"]["baseline"] == {"create_ticket": 1}, summary
    assert s["early_writes"] == 0, summary
    # the agent stays in its own sessions: a served result must not hand it prefire's (Claude
    # Code 2.1.112's MCP transport takes the Mcp-Session-Id header of every response)
    assert s["agent_in_prefire_sessions"] == 0, summary
    assert s["early_in_agent_sessions"] == 0, summary
    return summary
