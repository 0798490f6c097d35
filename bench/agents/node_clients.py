"""Claude Code and OpenAI's Codex CLI, installed from npm, driven non-interactively.

Each run is one prompt in a fresh home directory (no user config, no session kept),
with the LLM at a local base URL and one MCP server over streamable HTTP, pointed at a
proxy by environment only: `HTTPS_PROXY`/`HTTP_PROXY` and the proxy's CA
(`NODE_EXTRA_CA_CERTS` for Claude Code, `SSL_CERT_FILE` for Codex).

    Claude Code: claude -p PROMPT --mcp-config FILE --strict-mcp-config --allowedTools ...
                 ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY; MCP tools reach the model as
                 mcp__<server>__<tool>; ENABLE_TOOL_SEARCH=true defers them behind ToolSearch.
    Codex:       codex exec PROMPT with $CODEX_HOME/config.toml naming a model provider
                 (wire_api = "responses", env_key = a dummy key's variable) and the MCP
                 server by URL; MCP tools reach the model inside a `namespace` tool.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_PREFIX = REPO / ".venv-agents" / "node"

# the native Claude Code build goes in a prefix of its own: one prefix holds one version
NATIVE_PREFIX = REPO / ".venv-agents" / "claude-native"

SERVER = "docs"  # the MCP server's name in the clients' configs: tools become mcp__docs__<tool>


@dataclass(frozen=True)
class NodeClient:
    name: str  # claude-code | claude-code-native | codex
    version: str
    argv: tuple[str, ...]  # how to start it
    api: str  # anthropic | responses


@dataclass(frozen=True)
class RunResult:
    output: str  # the agent's final answer
    wall_s: float
    returncode: int
    stderr: str


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
    if name == "claude-code":
        cli = NODE_PREFIX / "node_modules/@anthropic-ai/claude-code/cli.js"
        argv: tuple[str, ...] = (node, str(cli))
        where, api = cli, "anthropic"
    elif name == "claude-code-native":
        where = NATIVE_PREFIX / "node_modules/@anthropic-ai/claude-code/bin/claude.exe"
        argv, api = (str(where),), "anthropic"
    elif name == "codex":
        where = NODE_PREFIX / "node_modules/@openai/codex/bin/codex.js"
        argv, api = (node, str(where)), "responses"
    else:
        raise ValueError(f"unknown client {name!r}: claude-code, claude-code-native or codex")
    if not where.exists():
        part = "claude-native" if name == "claude-code-native" else "node"
        failed = REPO / ".venv-agents" / f"{part}.failed"
        why = failed.read_text().strip() if failed.exists() else "bash bench/agents/setup.sh node"
        return f"{name} is not installed ({why})"
    version = _version(argv)
    if version is None:
        return f"{name} is installed but `--version` fails here ({' '.join(argv)})"
    return NodeClient(name, version, argv, api)


def _claude_env(home: Path, llm_url: str, api_key: str, tool_search: bool) -> dict[str, str]:
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": llm_url,
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "true" if tool_search else "false",
    }


def _claude_argv(
    client: NodeClient, home: Path, prompt: str, mcp_url: str, tools: list[str], headers: dict
) -> list[str]:
    config = home / "mcp.json"
    server = {"type": "http", "url": mcp_url, "headers": headers}
    config.write_text(json.dumps({"mcpServers": {SERVER: server}}))
    allowed = ",".join(f"mcp__{SERVER}__{t}" for t in tools)
    return [
        *client.argv, "-p", prompt, "--output-format", "text", "--no-session-persistence",
        "--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", allowed,
    ]  # fmt: skip


def _codex_home(home: Path, llm_url: str, mcp_url: str, headers: dict) -> Path:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    header_lines = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in headers.items())
    (codex_home / "config.toml").write_text(
        'model = "gpt-5.1-codex"\n'
        'model_provider = "scripted"\n'
        "[model_providers.scripted]\n"
        'name = "scripted"\n'
        f"base_url = {json.dumps(llm_url + '/v1')}\n"
        'env_key = "SCRIPTED_LLM_KEY"\n'
        'wire_api = "responses"\n'
        f"[mcp_servers.{SERVER}]\n"
        f"url = {json.dumps(mcp_url)}\n"
        # exec has no one to ask: let the server's tools run without approval
        'default_tools_approval_mode = "approve"\n'
        f"[mcp_servers.{SERVER}.http_headers]\n{header_lines}"
    )
    return codex_home


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    answer: Path  # where the final answer lands (Codex -o); else it is stdout


def command(
    client: NodeClient,
    prompt: str,
    *,
    home: Path,
    llm_url: str,
    mcp_url: str,
    tools: list[str],
    proxy_env: dict[str, str],
    api_key: str = "sk-scripted",
    mcp_headers: dict[str, str] | None = None,
    tool_search: bool = False,
) -> Command:
    """One prompt for one process with a home of its own (written here: the configs)."""
    home.mkdir(parents=True, exist_ok=True)
    headers = mcp_headers or {}
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(proxy_env)
    answer = home / "answer.txt"
    if client.api == "anthropic":
        env.update(_claude_env(home, llm_url, api_key, tool_search))
        return Command(
            _claude_argv(client, home, prompt, mcp_url, tools, headers), env, home, answer
        )
    env["CODEX_HOME"] = str(_codex_home(home, llm_url, mcp_url, headers))
    env["SCRIPTED_LLM_KEY"] = api_key
    work = home / "work"
    work.mkdir(exist_ok=True)
    argv = [
        *client.argv, "exec", "--skip-git-repo-check", "--ephemeral", "--color", "never",
        "-C", str(work), "-o", str(answer), prompt,
    ]  # fmt: skip
    return Command(argv, env, home, answer)


async def run(cmd: Command) -> RunResult:
    """Run it to the end (bound it with asyncio.timeout: the process is killed on cancel)."""
    start = time.monotonic()
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
    wall = time.monotonic() - start
    text = cmd.answer.read_text() if cmd.answer.exists() else out.decode(errors="replace")
    return RunResult(text.strip(), wall, proc.returncode, err.decode(errors="replace"))
