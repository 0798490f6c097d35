"""`prefire replay --live --html FILE`: one self-contained page (inline CSS and SVG, a few
lines of inline script, no external assets) with the totals table and, per session, the
baseline and the speculative timeline one above the other on the same time scale.

Each bar is one request as the playback client saw it, from sent to answered: LLM turns
in one lane, tool calls in the next; in the speculative timeline a tool call prefire
answered from an early start is coloured by how that start came about: eager (the
LLM's stream had just closed the call), predicted at a decision point (chain depth 0),
or chained from another early result (depth 1, depth 2 and more); outlined when it was
still running and was promoted. The time it took in the baseline is drawn behind it
(what was hidden), and prefire's early calls to the tool servers have a lane of their
own, coloured the same way once they served the agent (orange: never used).

Every element carries its figures as data attributes (the same numbers as `--json`); the
inline script measures the drawn bars after layout and writes what it measured back as
`data-rendered-*` attributes, so a headless browser can check the drawing against them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIDTH = 960
LABEL_W = 110
LANE_H = 18
LANE_GAP = 6
PASS_GAP = 22
COLORS = {
    "llm": "#7b61c9",
    "tool": "#3b7dd8",
    "mcp": "#8a97a8",
    "http": "#8a97a8",
    "eager": "#9bb83a",
    "hit": "#2e9e5b",  # predicted at a decision point: chain depth 0
    "chained1": "#1d9aa0",
    "chained2": "#b8368f",  # depth 2 and more
    "early": "#e08a1e",
    "early_unrecorded": "#c0392b",
}

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 4px}
.meta,.summary{color:#556;margin:2px 0 8px}
table{border-collapse:collapse;margin:12px 0}
th,td{padding:3px 8px;border-bottom:1px solid #dde;text-align:right;font-size:13px}
th:first-child,td:first-child{text-align:left;max-width:260px;overflow:hidden;
  text-overflow:ellipsis;white-space:nowrap}
tr.total td{font-weight:600;border-top:2px solid #889}
.no{color:#c0392b;font-weight:600}
svg{display:block;background:#fbfbfd;border:1px solid #e3e5ee;border-radius:4px}
svg text{font-size:11px;fill:#445}
svg .passname{font-weight:600;fill:#1d2330}
rect.hidden{fill:url(#hatch);stroke:#9aa3b5;stroke-width:.5}
line.end{stroke:#1d2330;stroke-width:1.5;stroke-dasharray:3 2}
line.tick{stroke:#e3e5ee}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:-1px}
ul.notes{color:#556}
"""

_SCRIPT = """
for (const svg of document.querySelectorAll('svg.timeline')) {
  const pps = parseFloat(svg.dataset.pxPerS);
  const x0 = svg.querySelector('line.origin').getBoundingClientRect().left;
  for (const g of svg.querySelectorAll('g.pass')) {
    const end = g.querySelector('line.end').getBoundingClientRect().left;
    g.dataset.renderedCompletionS = ((end - x0) / pps).toFixed(3);
    g.dataset.renderedRequests = g.querySelectorAll('rect.req').length;
    g.dataset.renderedHits = g.querySelectorAll('rect.req.hit').length;
    let widest = 0;
    for (const r of g.querySelectorAll('rect.req')) {
      widest = Math.max(widest, (r.getBoundingClientRect().right - x0) / pps);
    }
    g.dataset.renderedLastEndS = widest.toFixed(3);
  }
}
document.body.dataset.rendered = 'yes';
"""


def write_html(path: Path, report: dict[str, Any]) -> None:
    path.write_text(render(report), encoding="utf-8")


def render(report: dict[str, Any]) -> str:
    t = report["totals"]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>prefire replay --live</title>",
        f"<style>{_CSS}</style></head>",
        f'<body data-baseline-s="{t["baseline_s"]}" data-speculative-s="{t["speculative_s"]}">',
        "<h1>prefire replay --live</h1>",
        f'<p class="meta">{_e(", ".join(report["inputs"]))} &middot; rules: {_e(report["rules"])}'
        f" &middot; speed {report['speed']:g}</p>",
        _totals_table(report),
        _legend(),
    ]
    by_id = {s["id"]: s for s in report["sessions"]}
    for tl in report["timelines"]:
        parts.append(_session(by_id[tl["id"]], tl))
    notes = list(report["notes"]) + [f"input error: {e}" for e in report["input_errors"]]
    if notes:
        parts.append('<h2>Notes</h2><ul class="notes">')
        parts += [f"<li>{_e(n)}</li>" for n in notes]
        parts.append("</ul>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _totals_table(report: dict[str, Any]) -> str:
    head = (
        "<tr><th>session</th><th>requests</th><th>tool calls</th><th>baseline s</th>"
        "<th>speculative s</th><th>reduction</th><th>hits</th><th>promotions</th>"
        "<th>wasted</th><th>identical</th><th>offline hits</th></tr>"
    )

    def row(name: str, r: dict[str, Any], cls: str, sid: str) -> str:
        same = "yes" if r["identical"] else '<span class="no">NO</span>'
        return (
            f'<tr class="{cls}" data-session="{_e(sid)}" data-baseline-s="{r["baseline_s"]}" '
            f'data-speculative-s="{r["speculative_s"]}" data-hits="{r["hits"]}" '
            f'data-wasted="{r["wasted"]}">'
            f"<td>{_e(name)}</td><td>{r['requests']}</td><td>{r['tool_calls']}</td>"
            f"<td>{r['baseline_s']:.2f}</td><td>{r['speculative_s']:.2f}</td>"
            f"<td>{_pct(r['reduction'])}</td><td>{r['hits']}</td><td>{r['promotions']}</td>"
            f"<td>{r['wasted']}</td><td>{same}</td><td>{r['offline_hits']}</td></tr>"
        )

    rows = [row(f"{s['id']} {s['label']}", s, "session", s["id"]) for s in report["sessions"]]
    rows.append(row("total (wall time of each pass)", report["totals"], "total", "total"))
    return f'<table class="totals">{head}{"".join(rows)}</table>'


def _legend() -> str:
    items = [
        ("llm", "LLM turn"),
        ("tool", "tool call"),
        ("eager", "served: eager start"),
        ("hit", "served: predicted (depth 0)"),
        ("chained1", "served: chained, depth 1"),
        ("chained2", "served: chained, depth 2+"),
        ("early", "prefire's early call, never used"),
        ("early_unrecorded", "early call the recording has no answer for"),
    ]
    spans = [f'<span><i style="background:{COLORS[k]}"></i>{_e(v)}</span>' for k, v in items]
    spans.append(
        '<span><i style="border:1.5px solid #1d2330;box-sizing:border-box"></i>'
        "outlined: promoted (the early call was still running)</span>"
    )
    hatch = "repeating-linear-gradient(45deg,#cfd5e1 0 2px,#fbfbfd 2px 4px)"
    spans.append(
        f'<span><i style="background:{hatch}"></i>what the call took in the baseline '
        "(hidden)</span>"
    )
    return f'<p class="legend">{"".join(spans)}</p>'


@dataclass(slots=True)
class _Layout:
    """One session's drawing: its time scale, and each pass's lanes, with the row of each
    bar in its lane (parallel requests in one lane get rows of their own)."""

    span: float
    pps: float  # pixels per second
    lanes: dict[str, list[str]]
    rows: dict[str, dict[str, list[int]]]
    depth: dict[str, dict[str, int]]
    heights: dict[str, int]

    @classmethod
    def of(cls, s: dict[str, Any], tl: dict[str, Any]) -> _Layout:
        span = max(s["baseline_s"], s["speculative_s"], 1e-3)
        for name in ("baseline", "speculative"):
            for r in tl[name]["requests"]:
                span = max(span, r["end"])
            for r in tl[name]["early"]:
                span = max(span, r["end"])
        lanes = {"baseline": ["llm", "tool"], "speculative": ["llm", "tool", "early"]}
        rows: dict[str, dict[str, list[int]]] = {}
        for name in lanes:
            rows[name] = {
                "llm": _pack([r for r in tl[name]["requests"] if r["kind"] == "llm"]),
                "tool": _pack([r for r in tl[name]["requests"] if r["kind"] != "llm"]),
                "early": _pack(tl[name]["early"]),
            }
        depth = {n: {lane: max(rows[n][lane], default=0) + 1 for lane in lanes[n]} for n in lanes}
        heights = {
            n: 18 + sum(depth[n][lane] * LANE_H + LANE_GAP for lane in lanes[n]) for n in lanes
        }
        return cls(span, (WIDTH - LABEL_W - 56) / span, lanes, rows, depth, heights)


def _session(s: dict[str, Any], tl: dict[str, Any]) -> str:
    layout = _Layout.of(s, tl)
    span, pps = layout.span, layout.pps
    height = 20 + layout.heights["baseline"] + PASS_GAP + layout.heights["speculative"] + 10
    out = [
        f'<section class="session" id="session-{_e(s["id"])}" data-session="{_e(s["id"])}" '
        f'data-baseline-s="{s["baseline_s"]}" data-speculative-s="{s["speculative_s"]}" '
        f'data-hits="{s["hits"]}" data-promotions="{s["promotions"]}" '
        f'data-wasted="{s["wasted"]}" data-requests="{s["requests"]}">',
        f"<h2>{_e(s['id'])} &mdash; {_e(s['label'] or '(no user message)')}</h2>",
        f'<p class="summary">baseline {s["baseline_s"]:.2f} s &rarr; speculative '
        f"{s['speculative_s']:.2f} s ({_pct(s['reduction'])} less); {s['hits']} hits "
        f"({s['eager_hits']} eager), {s['promotions']} promoted, {s['wasted']} wasted; "
        f"responses {'identical' if s['identical'] else 'NOT identical'}</p>",
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" data-px-per-s="{pps:.6f}" data-span-s="{span:.4f}">',
        '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="2" height="4" fill="#cfd5e1"/></pattern>'
        "</defs>",
    ]
    out += _axis(span, pps, height)
    y = 20
    completion = {"baseline": s["baseline_s"], "speculative": s["speculative_s"]}
    for name in ("baseline", "speculative"):
        out += _pass_group(name, tl, layout, y, completion[name])
        y += layout.heights[name] + PASS_GAP
    out.append("</svg></section>")
    return "\n".join(out)


def _pass_group(
    name: str, tl: dict[str, Any], layout: _Layout, y: int, completion: float
) -> list[str]:
    """One pass's lanes: its requests, its early starts, and where it completed."""
    out = [
        f'<g class="pass" data-pass="{name}" data-completion-s="{completion}" '
        f'data-requests="{len(tl[name]["requests"])}">',
        f'<text class="passname" x="4" y="{y + 10}">{name}</text>',
    ]
    lane_y, ly = {}, y + 16
    for lane in layout.lanes[name]:
        lane_y[lane] = ly
        ly += layout.depth[name][lane] * LANE_H + LANE_GAP
    for lane, ly in lane_y.items():
        label = {"llm": "LLM", "tool": "tools", "early": "early starts"}[lane]
        out.append(f'<text x="14" y="{ly + 13}">{label}</text>')
    baseline_time = {r["step"]: r["end"] - r["start"] for r in tl["baseline"]["requests"]}
    out += _request_bars(tl[name]["requests"], layout.rows[name], lane_y, layout.pps, baseline_time)
    early_rows = iter(layout.rows[name]["early"])
    for r in tl[name]["early"]:
        ly = lane_y["early"] + next(early_rows) * LANE_H
        x, w = LABEL_W + r["start"] * layout.pps, max(1.0, (r["end"] - r["start"]) * layout.pps)
        color = COLORS["early" if r["recorded"] else "early_unrecorded"]
        if r.get("served"):
            color = COLORS[_start_color(r["served"], r.get("depth"))]
        title = f"early {r['tool']}: {r['end'] - r['start']:.3f} s"
        title += f", {r['served']}, depth {r.get('depth') or 0}" if r.get("served") else ""
        out.append(
            f'<rect class="early" data-depth="{r.get("depth") or 0}" '
            f'data-start-s="{r["start"]}" data-end-s="{r["end"]}" '
            f'x="{x:.2f}" y="{ly}" width="{w:.2f}" height="{LANE_H}" rx="2" '
            f'fill="{color}"><title>{_e(title)}</title></rect>'
        )
    end_x = LABEL_W + completion * layout.pps
    bottom = y + layout.heights[name] - 4
    out.append(
        f'<line class="end" x1="{end_x:.2f}" x2="{end_x:.2f}" y1="{y}" y2="{bottom}">'
        f"<title>{name}: {completion:.3f} s</title></line>"
    )
    out.append(f'<text x="{end_x + 4:.2f}" y="{y + 10}">{completion:.2f} s</text>')
    out.append("</g>")
    return out


def _request_bars(
    requests: list[dict[str, Any]],
    rows: dict[str, list[int]],
    lane_y: dict[str, int],
    pps: float,
    baseline_time: dict[int, float],
) -> list[str]:
    """A pass's requests as bars; one prefire answered early is coloured, with the time it
    took in the baseline drawn behind it (what was hidden)."""
    out = []
    llm_rows, tool_rows = iter(rows["llm"]), iter(rows["tool"])
    for r in requests:
        lane = "llm" if r["kind"] == "llm" else "tool"
        ly = lane_y[lane] + next(llm_rows if lane == "llm" else tool_rows) * LANE_H
        x, w = LABEL_W + r["start"] * pps, max(1.0, (r["end"] - r["start"]) * pps)
        cls, color = r["kind"], COLORS.get(r["kind"], COLORS["http"])
        title = f"{r['label']}: {r['end'] - r['start']:.3f} s"
        stroke = ""
        if r["served"]:
            cls += " hit" + (" promoted" if r["promoted"] else "") + f" depth{r.get('depth') or 0}"
            color = COLORS[_start_color(r["served"], r.get("depth"))]
            if r["promoted"]:
                stroke = ' stroke="#1d2330" stroke-width="1.5"'
            title += f", chain depth {r.get('depth') or 0}" if r["served"] == "chained" else ""
            before = baseline_time.get(r["step"], 0.0)
            hidden = max(0.0, before - (r["end"] - r["start"]))
            title += f", {r['served']} start, {hidden:.3f} s hidden"
            out.append(
                f'<rect class="hidden" data-step="{r["step"]}" data-hidden-s="{hidden:.4f}" '
                f'x="{x:.2f}" y="{ly + 3}" width="{max(1.0, before * pps):.2f}" '
                f'height="{LANE_H - 6}"/>'
            )
        out.append(
            f'<rect class="req {cls}" data-step="{r["step"]}" data-start-s="{r["start"]}" '
            f'data-end-s="{r["end"]}" x="{x:.2f}" y="{ly}" width="{w:.2f}" '
            f'height="{LANE_H}" rx="2" fill="{color}"{stroke}><title>{_e(title)}</title></rect>'
        )
    return out


def _start_color(served: str, depth: int | None) -> str:
    """The colour of a call served from an early start, by how that start came about."""
    if served == "eager":
        return "eager"
    if served == "chained":
        return "chained2" if (depth or 1) >= 2 else "chained1"
    return "hit"


def _pack(bars: list[dict[str, Any]]) -> list[int]:
    """A row for each bar, in order, so that bars in one row do not overlap."""
    ends: list[float] = []
    out = []
    for bar in bars:
        row = next((i for i, end in enumerate(ends) if end <= bar["start"]), len(ends))
        if row == len(ends):
            ends.append(bar["end"])
        else:
            ends[row] = bar["end"]
        out.append(row)
    return out


def _axis(span: float, pps: float, height: int) -> list[str]:
    step = _tick_step(span)
    out = [
        f'<line class="origin" x1="{LABEL_W}" x2="{LABEL_W}" y1="0" y2="{height}" stroke="#889"/>'
    ]
    n = 1
    while n * step <= span + 1e-9:
        x = LABEL_W + n * step * pps
        out.append(f'<line class="tick" x1="{x:.2f}" x2="{x:.2f}" y1="12" y2="{height}"/>')
        out.append(f'<text x="{x - 8:.2f}" y="10">{n * step:g} s</text>')
        n += 1
    return out


def _tick_step(span: float) -> float:
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if span / step <= 12:
            return step
    return 1200
