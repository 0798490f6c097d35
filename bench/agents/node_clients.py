"""Claude Code and OpenAI's Codex CLI, installed from npm, driven non-interactively: one
process per prompt, in a home of its own (no user config, no session kept), the model at a
base URL, one MCP server over streamable HTTP. Whether the traffic goes through a proxy is
up to the environment given (HTTPS_PROXY/HTTP_PROXY and the proxy's CA:
NODE_EXTRA_CA_CERTS for Claude Code, SSL_CERT_FILE for Codex), as for any user.

    Claude Code  claude -p PROMPT --output-format stream-json --verbose
                 --mcp-config FILE --strict-mcp-config --allowedTools mcp__docs__...
                 with ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY. MCP tools reach the model as
                 mcp__<server>__<tool>. The native build defers them (ToolSearch: the model
                 loads their schemas first); cli.js 2.1.112 does with ENABLE_TOOL_SEARCH=true.
    Codex        codex exec --json PROMPT with $CODEX_HOME/config.toml naming a model
                 provider (wire_api = "responses", env_key = a dummy key's variable) and the
                 MCP server by URL, its tools approved (exec has nobody to ask). MCP tools
                 reach the model inside a Responses `namespace` tool (mcp__docs).

Standard library only: it runs in the agents' venvs (bench/agents/node_agent.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# where bench/agents/setup.sh installs them (one npm prefix holds one version of a package)
NODE_PREFIX = REPO / ".venv-agents" / "node"
NATIVE_PREFIX = REPO / ".venv-agents" / "claude-native"
SERVER = "docs"  # the MCP server's name in the clients' configs
API_KEY = "sk-scripted"


@dataclass(frozen=True)
class NodeClient:
    name: str  # claude-code | claude-code-native | codex
    version: str
    argv: tuple[str, ...]  # how to start it
    api: str  # anthropic | responses


def _version(argv: tuple[str, ...]) -> str | None:
    try:
        done = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\d+\.\d+\.\d+", done.stdout)
    return found.group(0) if done.returncode == 0 and found else None


def find_client(name: str) -> NodeClient | str:
    """The installed client, or why it cannot run here (to skip with)."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH"
    part = "node"
    if name == "claude-code":
        where = NODE_PREFIX / "node_modules/@anthropic-ai/claude-code/cli.js"
        argv: tuple[str, ...] = (node, str(where))
    elif name == "claude-code-native":
        part = "claude-native"
        where = NATIVE_PREFIX / "node_modules/@anthropic-ai/claude-code/bin/claude.exe"
        argv = (str(where),)
    elif name == "codex":
        where = NODE_PREFIX / "node_modules/@openai/codex/bin/codex.js"
        argv = (node, str(where))
    else:
        raise ValueError(f"unknown client {name!r}: claude-code, claude-code-native or codex")
    if not where.exists():
        failed = REPO / ".venv-agents" / f"{part}.failed"
        why = failed.read_text().strip() if failed.exists() else "bash bench/agents/setup.sh node"
        return f"{name} is not installed ({why})"
    version = _version(argv)
    if version is None:
        return f"{name} is installed but `--version` fails here ({' '.join(argv)})"
    return NodeClient(name, version, argv, "responses" if name == "codex" else "anthropic")


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def command(
    client: NodeClient,
    prompt: str,
    *,
    home: Path,
    llm_url: str,
    mcp_url: str,
    tools: list[str],
    env: dict[str, str],
    tool_search: bool = False,
) -> Command:
    """One prompt for one process; writes its configs into `home`. `llm_url` is the model's
    base URL ending in /v1; `env` is the environment to start from (the proxy settings in
    it are what the client gets); `tools`: the MCP tools it may run without asking."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**env, "HOME": str(home)}
    if client.api == "anthropic":
        env |= {
            "ANTHROPIC_BASE_URL": llm_url.removesuffix("/v1"),
            "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        if tool_search:
            env["ENABLE_TOOL_SEARCH"] = "true"
        if "SSL_CERT_FILE" in env:  # Node reads its extra CAs from here only
            env.setdefault("NODE_EXTRA_CA_CERTS", env["SSL_CERT_FILE"])
        config = home / "mcp.json"
        config.write_text(json.dumps({"mcpServers": {SERVER: {"type": "http", "url": mcp_url}}}))
        allowed = ",".join(f"mcp__{SERVER}__{t}" for t in tools)
        argv = [
            *client.argv, "-p", prompt, "--output-format", "stream-json", "--verbose",
            "--no-session-persistence", "--mcp-config", str(config), "--strict-mcp-config",
            "--allowedTools", allowed,
        ]  # fmt: skip
        return Command(argv, env, home)
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model = "gpt-5.1-codex"\n'
        'model_provider = "scripted"\n'
        "[model_providers.scripted]\n"
        'name = "scripted"\n'
        f"base_url = {json.dumps(llm_url)}\n"
        'env_key = "SCRIPTED_LLM_KEY"\n'
        'wire_api = "responses"\n'
        f"[mcp_servers.{SERVER}]\n"
        f"url = {json.dumps(mcp_url)}\n"
        'default_tools_approval_mode = "approve"\n'
    )
    env |= {"CODEX_HOME": str(codex_home), "SCRIPTED_LLM_KEY": API_KEY}
    work = home / "work"
    work.mkdir(exist_ok=True)
    argv = [
        *client.argv, "exec", "--json", "--skip-git-repo-check", "--ephemeral",
        "--color", "never", "-C", str(work), prompt,
    ]  # fmt: skip
    return Command(argv, env, home)


@dataclass(frozen=True)
class Transcript:
    """What the agent saw: its final answer and each MCP tool call with its result, in the
    order the model made them."""

    answer: str
    tool_calls: list[list[Any]]  # [server's tool name, arguments, result as shown]
    returncode: int
    stderr: str


async def run(client: NodeClient, cmd: Command) -> Transcript:
    """Run it to the end (bound it with asyncio.timeout: the process is killed on cancel)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cmd.env,
        cwd=cmd.cwd,
    )
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    events = _json_lines(out)
    answer, calls = _claude(events) if client.api == "anthropic" else _codex(events)
    return Transcript(answer, calls, proc.returncode or 0, err.decode(errors="replace"))


def _json_lines(out: bytes) -> list[dict[str, Any]]:
    events = []
    for line in out.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _claude(events: list[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    """stream-json: assistant messages with tool_use blocks, user messages with their
    tool_result blocks, a closing `result` event with the final answer."""
    calls: dict[str, list[Any]] = {}
    answer = ""
    prefix = f"mcp__{SERVER}__"
    for event in events:
        content = (event.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use" and block.get("name", "").startswith(prefix):
                calls[block["id"]] = [block["name"].removeprefix(prefix), block.get("input"), None]
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in calls:
                calls[block["tool_use_id"]][2] = block.get("content")
        if event.get("type") == "result":
            answer = str(event.get("result") or "")
    return answer, list(calls.values())


def _codex(events: list[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    """--json: item.started/item.completed events; mcp_tool_call items in the order they
    started (parallel calls finish in any order), agent_message items for the answer."""
    calls: dict[str, list[Any]] = {}
    answer = ""
    for event in events:
        item = event.get("item") or {}
        if item.get("type") == "mcp_tool_call":
            entry = calls.setdefault(item["id"], [item.get("tool"), item.get("arguments"), None])
            if event.get("type") == "item.completed":
                entry[2] = item.get("result") if item.get("error") is None else item["error"]
        elif item.get("type") == "agent_message" and event.get("type") == "item.completed":
            answer = str(item.get("text") or "")
    return answer, list(calls.values())
