"""The typed report of `prefire replay --live`: its `--json` keeps the key names and order
users' scripts read (pinned here, every kind of row), and the table reads the same report."""

from __future__ import annotations

import orjson

from prefire.replay.live_report import (
    ClientError,
    Difference,
    DoorRow,
    LiveReport,
    PassTimeline,
    SessionRow,
    SessionTimeline,
    StreamTiming,
    TimelineEarly,
    TimelineRequest,
    TotalsRow,
    UnansweredRecording,
    UnmatchedDoor,
    UnmatchedRequest,
    WorstGap,
    format_table,
)

SESSION_KEYS = [
    "id", "label", "file", "requests", "tool_calls", "baseline_s", "speculative_s",
    "reduction", "hits", "eager_hits", "chained_hits", "promotions", "fired", "wasted",
    "identical", "same_as_recorded", "offline_hits", "hits_differ",
]  # fmt: skip
TOTALS_KEYS = [
    "sessions", "requests", "requests_sent", "tool_calls", "baseline_s", "speculative_s",
    "reduction", "hits", "eager_hits", "chained_hits", "depth_used", "promotions", "fired",
    "wasted", "failed", "identical", "same_as_recorded", "offline_hits", "offline_prefired",
    "offline_prefired_used",
]  # fmt: skip
TOP_KEYS = [
    "inputs", "rules", "speed", "warmup", "sessions", "totals", "speculative_requests",
    "upstream_calls", "unrecorded_speculative", "unmatched", "client_errors", "stream_timing",
    "input_errors", "notes", "timelines",
]  # fmt: skip


def report() -> LiveReport:
    session = SessionRow(
        "s1", "find flights", "f.mitm", 4, 2, 2.0, 1.5, 0.25, 1, 1, 0, 1, 2, 1, True, True, 0,
        {"eager": Difference(1, ["search"], "served by an eager start")},
    )  # fmt: skip
    totals = TotalsRow(
        1, 4, {"baseline": 4, "speculative": 4}, 2, 2.1, 1.6, 0.2381, 1, 1, 0, {"0": 1}, 1, 2,
        1, 0, True, True, 0, 3, 2,
    )  # fmt: skip
    door = DoorRow("search", "POST", "http://t/mcp", "no recorded answer", 0.4)
    request = TimelineRequest(0, "llm", "gpt", 0.0, 0.8, 0.8, None, False, None)
    served = TimelineRequest(1, "tool", "search", 0.8, 0.9, 0.5, "eager", True, 0)
    early = TimelineEarly("search", 0.5, 0.9, True, "eager", 0)
    timeline = PassTimeline([request, served], [early])
    return LiveReport(
        inputs=["f.mitm"],
        rules="rules.yaml",
        speed=2.0,
        warmup=None,
        sessions=[session],
        totals=totals,
        speculative_requests={"search": 2},
        upstream_calls={"baseline": {"search": 1}, "speculative": {"search": 2}},
        unrecorded_speculative=[door],
        unmatched=[
            UnmatchedDoor("baseline", None, "GET", "http://t/x", "no recorded answer", 0.1),
            UnmatchedRequest("speculative", "GET http://t/y", "never recorded"),
            UnansweredRecording("both", "POST", "http://t/z", "answered with 502"),
        ],
        client_errors=[ClientError("speculative", "POST", "http://t/mcp", "ClientError()")],
        stream_timing={
            "baseline": StreamTiming(3, 4, 0.02, 0.09, 0.05, WorstGap(0.09, 2, 0.1, 0.109)),
            "speculative": StreamTiming(3, 0, 0.0, 0.0, 0.0, None),
        },
        input_errors=["f.mitm:9: flow 9 cannot be read"],
        notes=["credentials are redacted"],
        timelines=[SessionTimeline("s1", "find flights", timeline, timeline)],
    )


def test_the_json_keeps_every_key_name_and_order() -> None:
    out = orjson.loads(orjson.dumps(report().to_json()))
    assert list(out) == TOP_KEYS
    assert list(out["sessions"][0]) == SESSION_KEYS
    assert out["sessions"][0]["hits_differ"] == {
        "eager": {"calls": 1, "tools": ["search"], "why": "served by an eager start"}
    }
    assert list(out["totals"]) == TOTALS_KEYS
    assert out["totals"]["requests_sent"] == {"baseline": 4, "speculative": 4}
    assert out["unrecorded_speculative"] == [
        {
            "tool": "search",
            "method": "POST",
            "url": "http://t/mcp",
            "why": "no recorded answer",
            "answered_after_s": 0.4,
        }
    ]
    assert [list(u) for u in out["unmatched"]] == [
        ["pass", "tool", "method", "url", "why", "answered_after_s"],
        ["pass", "url", "why"],
        ["pass", "method", "url", "why"],
    ]
    assert out["unmatched"][0]["tool"] is None and out["unmatched"][2]["pass"] == "both"
    assert out["client_errors"] == [
        {"pass": "speculative", "method": "POST", "url": "http://t/mcp", "error": "ClientError()"}
    ]
    timing = out["stream_timing"]
    assert list(timing["baseline"]) == [
        "streams", "gaps", "median_gap_error", "max_gap_error", "max_stream_error", "worst",
    ]  # fmt: skip
    assert timing["baseline"]["worst"] == {
        "error": 0.09, "step": 2, "recorded_gap_s": 0.1, "replayed_gap_s": 0.109,
    }  # fmt: skip
    assert timing["speculative"]["worst"] is None
    entry = out["timelines"][0]
    assert list(entry) == ["id", "label", "baseline", "speculative"]
    assert list(entry["baseline"]) == ["requests", "early"]
    assert list(entry["baseline"]["requests"][1]) == [
        "step", "kind", "label", "start", "end", "recorded_s", "served", "promoted", "depth",
    ]  # fmt: skip
    assert entry["baseline"]["early"] == [
        {
            "tool": "search",
            "start": 0.5,
            "end": 0.9,
            "recorded": True,
            "served": "eager",
            "depth": 0,
        }
    ]
    assert out["totals"]["depth_used"] == {"0": 1}


def test_the_table_reads_the_same_report() -> None:
    table = format_table(report())
    assert "1 file(s), 1 sessions, 4 requests a pass, speed 2, rules: rules.yaml" in table
    assert "s1: 1 call(s) (search): served by an eager start" in table
    assert "  search: 1" in table  # early calls with no recorded answer, by tool
    assert "[baseline] GET http://t/x: no recorded answer" in table
    assert "[speculative]  GET http://t/y: never recorded" in table  # no method: none shown
    assert "[speculative] POST http://t/mcp: ClientError()" in table
    assert "stream timing (baseline): 3 streams, 4 chunk gaps" in table
    assert table.endswith("note: credentials are redacted\n")
