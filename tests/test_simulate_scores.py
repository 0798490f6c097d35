"""Simulation.replay returns each real call's CallScore, and the totals are their sum: what
live playback's offline comparison reads per call is what offline replay counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, read

DATA = Path(__file__).resolve().parent / "data" / "wrapped_outputs.jsonl"


def test_the_totals_are_the_sum_of_the_calls_scores() -> None:
    sim = Simulation()
    sessions = [s for s in read([DATA]) if isinstance(s, ReplaySession)]
    scores = [score for session in sessions for score in sim.replay(session)]
    t = sim.totals
    assert len(scores) == t.tool_calls > 0
    assert sum(s.hit for s in scores) == t.hits > 0
    assert sum(s.eligible for s in scores) == t.eligible_calls
    assert sum(s.top1 for s in scores) == t.top1 and sum(s.top3 for s in scores) == t.top3
    assert sum(s.latency - s.wait for s in scores) == pytest.approx(t.hidden_tool_time_s)
    assert Counter(s.miss for s in scores if s.miss) == Counter(t.misses)
    firsts = Counter(s.first_call_miss for s in scores if s.first_call_miss)
    assert firsts == Counter(t.first_call_misses)
    assert Counter(s.hit_depth for s in scores if s.hit) == Counter(t.depth_used)
    # a hit waits for no more than the call took, a miss for all of it
    assert all(0 <= s.wait <= s.latency for s in scores)
    assert all(s.wait == s.latency for s in scores if not s.hit)
    assert {s.session for s in scores} == {s.id for s in sessions}


def test_an_empty_session_scores_nothing() -> None:
    sim = Simulation()
    assert sim.replay(ReplaySession("empty", [], {}, [], {}, "")) == []
    assert sim.totals.sessions == 0
