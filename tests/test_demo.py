"""`prefire demo` end to end, small: two tasks, short think time, so it stays well under a
minute while still running both proxies, both agent runs and all three servers."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from prefire.proxy.demo.runner import TaskProgress


def test_demo_json_reports_both_runs_with_identical_results() -> None:
    # three passes, each starting a proxy and an agent process: about 25 s on an idle
    # machine, twice that on a busy one
    args = ["demo", "--json", "--tasks", "2", "--warmup", "2", "--think", "0.6", "--timeout", "90"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefire.proxy.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo stops its proxies and agent; SIGKILL would not
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"prefire demo took over 100 s:\n{err}")
    assert proc.returncode == 0, err
    summary = json.loads(out)  # exactly one JSON object, nothing else
    for key in ("baseline_s", "speculative_s", "reduction", "hits", "wasted", "identical"):
        assert key in summary
    assert summary["baseline_s"] > 0 and summary["speculative_s"] > 0
    assert summary["identical"] is True
    assert summary["gave_up"] == 0  # every task reached its scripted answer
    assert summary["writes_run_early"] is False
    assert summary["stats_error"] is None, summary["stats_error"]
    assert isinstance(summary["hits"], int) and isinstance(summary["wasted"], int)
    # progress on stderr (not a terminal here): a line per task of each run, as it finishes
    for run, tasks in (("warm-up", 2), ("baseline", 2), ("speculative", 2)):
        done = [line for line in err.splitlines() if line.startswith(f"    {run}: task ")]
        assert len(done) == tasks and done[-1].endswith(f"({tasks}/{tasks})"), err


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        bar = TaskProgress("baseline", 4, stream)
        for i in range(4):
            bar.task_done(f"t{i}", 1.25)
    assert tty.getvalue().count("\r") == 5  # drawn at the start and after each task
    assert tty.getvalue().endswith("\r    baseline [" + "#" * 30 + "] 4/4 tasks\n")
    assert "[" + "#" * 15 + "." * 15 + "] 2/4" in tty.getvalue()
    assert log.getvalue().splitlines() == [
        f"    baseline: task t{i} done in 1.2 s ({i + 1}/4)" for i in range(4)
    ]
