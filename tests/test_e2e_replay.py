"""Replay end-to-end: a session captured through `prefire run --capture` is scored offline,
from its events file and from its raw flows, with the same result."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.agent_script import weather_conversation
from tests.conftest import point_env_at, start_proxy, stop_proxy


async def replay_json(*args: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prefire.proxy.cli",
        "replay",
        *args,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_capture_replays_the_same_from_events_and_flows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await start_proxy(tmp_path)
    point_env_at(proxy, monkeypatch)
    for _ in range(3):  # the same task three times: the third run can be predicted
        await weather_conversation("sk-replay-test")
    assert await stop_proxy(proxy) == 0

    (events_file,) = proxy.capture_dir.glob("events-*.jsonl")
    (flows_file,) = proxy.capture_dir.glob("flows-*.mitm")
    # The scripted tools answer in milliseconds: at the default cost of a wasted call no
    # guess is worth that little saving. Cost 0 scores every likely call.
    rules = tmp_path / "free.yaml"
    rules.write_text('rules:\n  - match: {tool: "*"}\n    prefire: true\n    cost: 0\n')
    from_events = await replay_json(str(events_file), "--rules", str(rules))
    from_flows = await replay_json(str(flows_file), "--rules", str(rules))
    assert from_events["sessions"] == 3
    assert from_events["tool_calls"] == 9  # two streamed calls and one more after the results
    for key in ("sessions", "tool_calls", "eligible_calls", "hits", "prefired", "next_call_top3"):
        assert from_flows[key] == from_events[key], key
    # the weather/time pair repeats with the same arguments: learned by the third session
    assert from_events["hits"] >= 2
