"""bench/agents/profile.py: a task's wall time split into start-up, model, between and tail
from the scripted model's request times, with overlapping requests counted once and other
tasks' requests (another prompt, or the same prompt in another pass) left out."""

from __future__ import annotations

from bench.agents.profile import Timeline, breakdown


def test_a_task_splits_into_startup_model_between_and_tail() -> None:
    timeline = Timeline(
        [
            (101.0, 102.0, b'{"messages": [{"content": "find shoes"}]}'),
            (101.5, 102.5, b'{"messages": [{"content": "find shoes"}, "side request"]}'),
            (103.0, 104.0, b'{"messages": [{"content": "find shoes"}, "results"]}'),
            (103.0, 104.0, b'{"messages": [{"content": "find hats"}]}'),  # another task
            (203.0, 204.0, b'{"messages": [{"content": "find shoes"}]}'),  # another pass
        ]
    )
    tasks = [{"id": "t1", "at": 100.0, "wall_s": 5.0}, {"id": "t0", "wall_s": 1.0}]
    got = breakdown(tasks, {"t1": "find shoes", "t0": "find hats"}, timeline)
    assert got == {
        "startup_s": 1.0,
        "model_s": 2.5,  # 101-102.5 merged, 103-104
        "between_s": 0.5,
        "tail_s": 1.0,
        "model_requests": 3,
    }


def test_the_agents_own_calls_are_counted_by_why_they_were_not_early() -> None:
    from bench.agents.harness import Pass

    def call(rpc_id: str, tool: str, args: dict, t0: float) -> dict:
        return {"method": "tools/call", "rpc_id": rpc_id, "tool": tool, "arguments": args, "t0": t0}

    seville, bergen = {"city": "Seville"}, {"city": "Bergen"}
    report = {
        "tasks": [
            {
                "id": "t1",
                "answer": "",
                "tool_calls": [
                    ["get_forecast", seville, "r"],
                    ["get_forecast", seville, "r"],
                    ["get_forecast", bergen, "r"],
                    ["get_team", {"team_id": "a"}, "r"],
                    ["get_team", {"team_id": "b"}, "r"],
                    ["create_ticket", {"team_id": "a"}, "r"],
                ],
            }
        ]
    }
    log = [
        call("prefire-1", "get_forecast", seville, 1.0),  # served the first Seville call
        call("7", "get_forecast", seville, 2.0),  # the second went upstream
        call("prefire-2", "get_team", {"team_id": "a"}, 1.0),  # invalidated, then asked
        call("8", "get_team", {"team_id": "a"}, 3.0),
        call("9", "get_team", {"team_id": "b"}, 3.0),  # never fired
        call("10", "create_ticket", {"team_id": "a"}, 2.5),
    ]
    assert Pass("speculative", report, log, []).misses() == {
        "same call twice in a task": 1,
        "fired, gone before the call": 1,
        "not fired before the call": 1,
        "write": 1,
    }


def test_no_breakdown_when_requests_do_not_carry_the_prompt() -> None:
    timeline = Timeline(
        [
            (101.0, 102.0, b'{"input": "find shoes"}'),
            (103.0, 104.0, b'{"previous_response_id": "resp_1", "input": [{"output": "x"}]}'),
        ]
    )
    tasks = [{"id": "t1", "at": 100.0, "wall_s": 5.0}]
    assert breakdown(tasks, {"t1": "find shoes"}, timeline) is None


def test_the_reduction_after_start_up_sets_the_start_up_aside() -> None:
    from bench.agents.profile import after_startup

    base = {"startup_s": 10.0, "model_s": 30.0, "between_s": 20.0, "tail_s": 0.0}
    spec = {"startup_s": 25.0, "model_s": 30.0, "between_s": 8.0, "tail_s": 0.0}
    assert after_startup(base, spec) == 0.24  # 50 s -> 38 s
    assert after_startup(base, None) is None
