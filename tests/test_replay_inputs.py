"""Replay inputs: a malformed line is named with its file and line, the rest is scored."""

from __future__ import annotations

import io
import json
from pathlib import Path

from prefire.replay import report


def session(i: int) -> dict:
    return {
        "id": f"s{i}",
        "tools": [{"type": "function", "function": {"name": "search"}}],
        "messages": [
            {"role": "user", "content": "find Oslo"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"q": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"n": 1}'},
            {"role": "assistant", "content": "done"},
        ],
        "timing": {"llm_s": [1.5, 0.5], "tool_s": {"c1": 0.25}},
    }


def test_malformed_lines_are_reported_and_the_rest_scored(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps(session(0)),
        "{broken",
        json.dumps({"id": "x", "messages": []}),
        json.dumps(session(1)),
    ]
    path.write_text("\n".join(lines) + "\n")
    out, err = io.StringIO(), io.StringIO()
    assert report.run([path], as_json=True, out=out, err=err) == 0
    result = json.loads(out.getvalue())
    assert result["sessions"] == 2 and result["tool_calls"] == 2 and result["input_errors"] == 2
    messages = err.getvalue()
    assert f"{path}:2: not JSON" in messages
    assert f'{path}:3: "messages" must be a non-empty list' in messages
    # recorded timings are used: two LLM turns and one 0.25 s call per session
    assert result["tool_time_s"] == 0.5
    assert result["e2e_time_s"] == 2 * (1.5 + 0.25 + 0.5)


def test_missing_input_file(tmp_path: Path) -> None:
    err = io.StringIO()
    assert report.run([tmp_path / "nope.jsonl"], err=err) == 2
    assert "no such file" in err.getvalue()
