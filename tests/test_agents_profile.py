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
    got = breakdown(tasks, {"t1": "find shoes", "t0": "find socks"}, timeline)
    assert got == {
        "startup_s": 1.0,
        "model_s": 2.5,  # 101-102.5 merged, 103-104
        "between_s": 0.5,
        "tail_s": 1.0,
        "model_requests": 3,
    }
