"""Check a `prefire replay --live --html` page in headless Chromium against the JSON figures.

    prefire replay --live CAPTURE --rules R --json --html page.html > report.json
    python bench/check_html.py report.json page.html

Chromium (Debian `chromium`) loads the page, runs its inline script (which measures the
drawn timeline after layout) and dumps the DOM; this script then checks, per session and
pass, that the drawing says what the JSON says: the completion time (measured from the
drawn end marker, to within a pixel), the number of request bars, the number of hits, and
the totals table. Exit status 0 when everything matches, 1 with the differences, 2 when
Chromium is missing or fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


class _Dom(HTMLParser):
    """The elements the check reads, with their attributes, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.body: dict[str, str] = {}
        self.sections: list[dict[str, str]] = []
        self.passes: list[dict[str, str]] = []  # each with the section it is in
        self.rows: list[dict[str, str]] = []
        self.svgs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "body":
            self.body = a
        elif tag == "section" and "session" in classes:
            self.sections.append(a)
        elif tag == "svg" and "timeline" in classes:
            self.svgs.append(a)
        elif tag == "g" and "pass" in classes and self.sections:
            self.passes.append({**a, "session": self.sections[-1].get("data-session", "")})
        elif tag == "tr" and "data-session" in a:
            self.rows.append(a)


def render_dom(page: Path) -> str:
    exe = next((shutil.which(c) for c in CHROMIUM if shutil.which(c)), None)
    if exe is None:
        raise FileNotFoundError("no chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="prefire-chromium-") as profile:
        proc = subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",  # needed as root; the page is our own file
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--window-size=1200,900",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    if proc.returncode != 0 or "<body" not in proc.stdout:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def check(report: dict[str, Any], dom_text: str) -> list[str]:
    dom = _Dom()
    dom.feed(dom_text)
    problems: list[str] = []
    if dom.body.get("data-rendered") != "yes":
        problems.append("the page's script did not run (no data-rendered on <body>)")
    sessions = {s["id"]: s for s in report["sessions"]}
    seen = {sec.get("data-session") for sec in dom.sections}
    if seen != set(sessions):
        problems.append(f"sessions drawn {sorted(seen)} != in the JSON {sorted(sessions)}")
    px = {
        sec.get("data-session"): float(svg.get("data-px-per-s", "0") or 0)
        for sec, svg in zip(dom.sections, dom.svgs, strict=False)
    }
    timelines = {t["id"]: t for t in report["timelines"]}
    for g in dom.passes:
        sid, name = g["session"], g.get("data-pass", "")
        s = sessions.get(sid)
        if s is None:
            continue
        want = s[f"{name}_s"]
        tolerance = 1.0 / px[sid] + 0.002 if px.get(sid) else 0.01  # one pixel
        drawn = float(g.get("data-rendered-completion-s", "nan"))
        if not abs(drawn - want) <= tolerance:
            problems.append(f"{sid} {name}: completion drawn at {drawn} s, JSON says {want} s")
        if float(g.get("data-completion-s", "nan")) != want:
            problems.append(f"{sid} {name}: data-completion-s != {want}")
        n = len(timelines[sid][name]["requests"])
        if int(g.get("data-rendered-requests", "-1")) != n or n != s["requests"]:
            problems.append(
                f"{sid} {name}: {g.get('data-rendered-requests')} request bars drawn, "
                f"{n} in the timeline, {s['requests']} requests in the JSON"
            )
        hits = int(g.get("data-rendered-hits", "-1"))
        if hits != (s["hits"] if name == "speculative" else 0):
            problems.append(f"{sid} {name}: {hits} hit bars drawn, JSON says {s['hits']} hits")
        last = float(g.get("data-rendered-last-end-s", "nan"))
        if not last <= want + tolerance:
            problems.append(f"{sid} {name}: a request bar ends at {last} s, after completion")
    rows = {r["data-session"]: r for r in dom.rows}
    for sid, row_of in [*((k, v) for k, v in sessions.items()), ("total", report["totals"])]:
        row = rows.get(sid)
        if row is None:
            problems.append(f"no totals-table row for {sid}")
            continue
        for key in ("baseline_s", "speculative_s", "hits", "wasted"):
            attr = "data-" + key.replace("_", "-")
            if float(row.get(attr, "nan")) != float(row_of[key]):
                problems.append(f"table row {sid}: {attr}={row.get(attr)} != {row_of[key]}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(argv[0]).read_text())
    try:
        dom_text = render_dom(Path(argv[1]))
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"check_html: {exc}", file=sys.stderr)
        return 2
    problems = check(report, dom_text)
    for p in problems:
        print(f"MISMATCH {p}")
    if problems:
        return 1
    passes = sum(1 for _ in report["sessions"]) * 2
    print(f"OK: {len(report['sessions'])} sessions checked ({passes} timelines) in Chromium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
