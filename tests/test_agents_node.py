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

from pathlib import Path

import pytest

from tests.agent_checks import through_prefire

TIMEOUT_S = 300  # three passes of three client processes, two at once
# what each client sends the model
SHAPES = {
    "claude-code": {"messages streamed"},
    "claude-code-native": {"messages streamed"},
    "codex": {"responses streamed"},
}


@pytest.mark.parametrize("name", ["claude-code", "claude-code-native"])
async def test_claude_code_through_prefire(name: str, tmp_path: Path) -> None:
    await through_prefire(name, SHAPES[name], tmp_path, TIMEOUT_S, predicted=False)


async def test_codex_through_prefire(tmp_path: Path) -> None:
    # not only the calls the model had emitted (eager): the chain's next ones, predicted
    await through_prefire("codex", SHAPES["codex"], tmp_path, TIMEOUT_S, predicted=True)
