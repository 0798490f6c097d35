"""Workload importers: the sessions they write are well-formed replay input.

The suites are optional (not prefire dependencies); their tests skip when a suite is
not installed.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from prefire.replay.importers import SuiteMissingError
from prefire.replay.importers.__main__ import main
from prefire.replay.importers._common import require

JSON_SCHEMA_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def check_session(session: dict[str, Any]) -> None:
    """The shape DESIGN.md's "Replay inputs" asks for, with real, paired results."""
    assert isinstance(session["id"], str) and session["id"]
    offered = {t["function"]["name"] for t in session["tools"]}
    assert all(t["type"] == "function" for t in session["tools"])
    assert set(session["tool_labels"]) <= offered
    assert set(session["tool_labels"].values()) <= {"read", "write"}
    pending: dict[str, str] = {}
    seen: set[str] = set()
    for msg in session["messages"]:
        if msg["role"] == "assistant" and msg.get("tool_calls"):
            # The previous step's results are all in before the next step is issued.
            assert not pending, f"{session['id']}: calls left unanswered: {pending}"
            for tc in msg["tool_calls"]:
                assert tc["type"] == "function"
                assert tc["id"] not in seen, "tool_call ids are unique in a session"
                seen.add(tc["id"])
                assert tc["function"]["name"] in offered
                args = json.loads(tc["function"]["arguments"])
                assert isinstance(args, dict)
                pending[tc["id"]] = tc["function"]["name"]
        elif msg["role"] == "tool":
            assert msg["tool_call_id"] in pending, "a tool message answers an issued call"
            del pending[msg["tool_call_id"]]
            assert isinstance(msg["content"], str) and msg["content"].strip()
        else:
            assert msg["role"] in ("system", "user", "assistant")
            assert isinstance(msg["content"], str) and msg["content"]
    assert not pending, f"{session['id']}: calls left unanswered: {pending}"
    assert session["messages"][-1]["role"] == "assistant"


def calls_of(session: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (tc["function"]["name"], json.loads(tc["function"]["arguments"]))
        for msg in session["messages"]
        for tc in msg.get("tool_calls") or ()
    ]


def test_missing_suite_says_the_pip_command() -> None:
    with pytest.raises(SuiteMissingError) as info:
        require("prefire_no_such_suite.sub", "Some suite", ("--no-deps some-suite",))
    assert f"{sys.executable} -m pip install --no-deps some-suite" in str(info.value)


def test_cli_tau2_needs_a_domain(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tau2", "--out", "-"])
    assert info.value.code == 2
    assert "--domain" in capsys.readouterr().err


# --- BFCL -------------------------------------------------------------------------


def _walk_types(schema: dict[str, Any]) -> list[str]:
    found = [schema["type"]] if "type" in schema else []
    for sub in (schema.get("properties") or {}).values():
        found += _walk_types(sub)
    if isinstance(schema.get("items"), dict):
        found += _walk_types(schema["items"])
    return found


@pytest.fixture(scope="module")
def bfcl_sessions() -> list[dict[str, Any]]:
    pytest.importorskip("bfcl_eval")
    from prefire.replay.importers import bfcl

    try:
        return list(bfcl.iter_sessions())
    except SuiteMissingError as exc:
        pytest.skip(str(exc))


def test_bfcl_sessions_are_well_formed(bfcl_sessions: list[dict[str, Any]]) -> None:
    categories = {s["meta"]["category"] for s in bfcl_sessions}
    assert categories == {
        "multi_turn_base",
        "multi_turn_miss_func",
        "multi_turn_miss_param",
        "multi_turn_long_context",
    }
    for session in bfcl_sessions:
        check_session(session)
        for tool in session["tools"]:
            params = tool["function"]["parameters"]
            assert params["type"] == "object"
            assert set(_walk_types(params)) <= JSON_SCHEMA_TYPES


def test_bfcl_results_are_real(bfcl_sessions: list[dict[str, Any]]) -> None:
    first = bfcl_sessions[0]
    assert first["id"] == "multi_turn_base_0"
    # Positional ground truth `sort('final_report.pdf')` becomes a named argument.
    assert ("sort", {"file_name": "final_report.pdf"}) in calls_of(first)
    results = [m["content"] for m in first["messages"] if m["role"] == "tool"]
    # grep over the file the entry's initial_config holds: the API really ran.
    assert any("budget analysis" in r and "matching_lines" in r for r in results)


def test_bfcl_labels_follow_state_changes(bfcl_sessions: list[dict[str, Any]]) -> None:
    labels: dict[str, str] = {}
    for session in bfcl_sessions:
        labels.update(session["tool_labels"])
    assert labels["ls"] == labels["cat"] == labels["get_flight_cost"] == "read"
    assert labels["cd"] == labels["mkdir"] == labels["post_tweet"] == "write"


def test_bfcl_limit_keeps_the_labels(bfcl_sessions: list[dict[str, Any]]) -> None:
    from prefire.replay.importers import bfcl

    few = list(bfcl.iter_sessions(limit=2))
    assert few == bfcl_sessions[:2]


# --- tau2 -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["retail", "airline", "telecom"])
def tau2_domain(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    pytest.importorskip("tau2")
    from prefire.replay.importers import tau2_bench

    try:
        return request.param, list(tau2_bench.iter_sessions(request.param, limit=6))
    except SuiteMissingError as exc:
        pytest.skip(str(exc))


def test_tau2_sessions_are_well_formed(tau2_domain: tuple[str, list[dict[str, Any]]]) -> None:
    domain, sessions = tau2_domain
    assert len(sessions) == 6
    for session in sessions:
        check_session(session)
        assert session["messages"][0]["role"] == "system"
        assert "<policy>" in session["messages"][0]["content"]
        assert session["messages"][1]["role"] == "user"
        assert session["meta"]["domain"] == domain


def test_tau2_write_tools_are_labelled_write(
    tau2_domain: tuple[str, list[dict[str, Any]]],
) -> None:
    domain, sessions = tau2_domain
    from tau2.environment.toolkit import ToolType

    env = importlib.import_module(f"tau2.domains.{domain}.environment").get_environment()
    for session in sessions:
        for name in env.tools.tools:
            kind = env.tools.tool_type(name)
            if kind == ToolType.WRITE:
                assert session["tool_labels"][name] == "write"
            elif kind == ToolType.READ:
                assert session["tool_labels"][name] == "read"
            else:
                assert name not in session["tool_labels"]
    called = {name for s in sessions for name, _ in calls_of(s)}
    assert any(sessions[0]["tool_labels"].get(n) == "write" for n in called)


def test_tau2_cli_writes_jsonl(tmp_path: Path) -> None:
    # The domain module, not just the package: its import-time dependencies must be in.
    pytest.importorskip("tau2.domains.airline.environment")
    out = tmp_path / "airline.jsonl"
    assert main(["tau2", "--domain", "airline", "--limit", "2", "--out", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    for line in lines:
        check_session(json.loads(line))
